//! Integration tests of the IoT agent: a real hub over a real SQLite file, spoken to
//! over HTTP, and the real MQTT broker at 127.0.0.1:1883 (Mosquitto; started before
//! the tests on this machine and in CI).

#![allow(clippy::unwrap_used)]

mod backfill;
mod common;

mod ingest_http;
mod ingest_mqtt;
mod provisioning;
mod simulate;
