//! The alerts service against a real hub (SQLite by default, PostgreSQL with
//! `DOTHI_TEST_STORE=postgres`).

mod backtest;
mod common;
mod deadline;
mod evaluation;
mod nodes;
mod notify;
mod restart;
mod rules;
