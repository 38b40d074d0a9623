//! The workflow of a report as pure functions: received → accepted (or rejected with a
//! reason, or merged into another) → assigned → in progress → resolved → closed (after
//! the reporter's rating, or 7 days). A bad rating reopens it; extensions need a
//! reason. Every step is kept in the report's history with its actor.

use chrono::{DateTime, TimeDelta, Utc};
use serde::Deserialize;

use crate::calendar::Calendar;
use crate::model::{Extension, Report, Stage, Transition, Update};

/// Days a resolved report waits for its rating before it closes by itself.
pub const CLOSE_AFTER_DAYS: i64 = 7;
/// Ratings at or below this reopen the report.
pub const BAD_RATING: u8 = 2;
const MAX_NOTE: usize = 2_000;

/// What staff (or the reporter) do to a report.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    Accept {
        #[serde(default)]
        note: Option<String>,
    },
    Reject {
        reason: String,
    },
    /// Into another report of the same problem (its `service_request_id`).
    Merge {
        into: String,
    },
    Assign {
        #[serde(default)]
        agency: Option<String>,
        #[serde(default)]
        officer: Option<String>,
    },
    Start {
        #[serde(default)]
        note: Option<String>,
    },
    Resolve {
        result: String,
    },
    Extend {
        working_days: u32,
        reason: String,
    },
    /// The reporter's rating (1–5) of a resolved report.
    Rate {
        rating: u8,
        #[serde(default)]
        comment: Option<String>,
    },
    /// The reporter says the problem is still there (Open311 update `OPEN`).
    Reopen {
        reason: String,
    },
    /// Resolved and left unrated for 7 days, or the reporter marks it fixed.
    Close {
        #[serde(default)]
        note: Option<String>,
    },
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Accept { .. } => "accept",
            Action::Reject { .. } => "reject",
            Action::Merge { .. } => "merge",
            Action::Assign { .. } => "assign",
            Action::Start { .. } => "start",
            Action::Resolve { .. } => "resolve",
            Action::Extend { .. } => "extend",
            Action::Rate { .. } => "rate",
            Action::Reopen { .. } => "reopen",
            Action::Close { .. } => "close",
        }
    }
}

/// Why an action cannot be done.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a report {from} cannot be {action}ed")]
    NotNow {
        from: &'static str,
        action: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
}

fn text(what: &str, s: &str) -> Result<String, Refused> {
    let t = s.trim();
    if t.is_empty() || t.len() > MAX_NOTE {
        return Err(Refused::Invalid(format!(
            "{what}: 1–{MAX_NOTE} bytes of text"
        )));
    }
    Ok(t.to_string())
}

fn optional(what: &str, s: &Option<String>) -> Result<Option<String>, Refused> {
    match s.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) => text(what, t).map(Some),
    }
}

/// What an action does: the stage it leads to, the note kept in the history, and the
/// public update it adds (its Open311 status and description), if any.
type Outcome = (Stage, Option<String>, Option<(&'static str, String)>);

/// An action's outcome whose public update, of Open311 status `status`, shows the note
/// kept in the history (an empty description without one).
fn noted(to: Stage, status: &'static str, note: Option<String>) -> Outcome {
    let description = note.clone().unwrap_or_default();
    (to, note, Some((status, description)))
}

/// Applies an action at `now` by `actor`; the report is unchanged when refused.
pub fn apply(
    report: &mut Report,
    action: &Action,
    actor: &str,
    now: DateTime<Utc>,
    calendar: &Calendar,
) -> Result<(), Refused> {
    use Stage::*;
    let from = report.stage;
    let not_now = || Refused::NotNow {
        from: from.as_str(),
        action: action.name(),
    };
    let (to, note, public): Outcome = match action {
        Action::Accept { note } => {
            if from != Received {
                return Err(not_now());
            }
            let note = optional("note", note)?;
            noted(Accepted, "OPEN", note)
        }
        Action::Reject { reason } => {
            if !matches!(from, Received | Accepted) {
                return Err(not_now());
            }
            let reason = text("reason", reason)?;
            report.reason = Some(reason.clone());
            noted(Rejected, "NOT_COUNCILS_RESPONSIBILITY", Some(reason))
        }
        Action::Merge { into } => {
            if !matches!(from, Received | Accepted) {
                return Err(not_now());
            }
            if into == &report.service_request_id || !crate::model::valid_code(into) {
                return Err(Refused::Invalid(
                    "merge into another report (its service_request_id)".into(),
                ));
            }
            report.merged_into = Some(into.clone());
            let note = format!("merged into {into}");
            noted(Merged, "DUPLICATE", Some(note))
        }
        Action::Assign { agency, officer } => {
            if !matches!(from, Received | Accepted | Assigned | InProgress) {
                return Err(not_now());
            }
            if let Some(a) = optional("agency", agency)? {
                report.agency_responsible = a;
            }
            report.officer = optional("officer", officer)?;
            let note = format!("assigned to {}", report.agency_responsible);
            noted(Assigned, "OPEN", Some(note))
        }
        Action::Start { note } => {
            if !matches!(from, Accepted | Assigned) {
                return Err(not_now());
            }
            let note = optional("note", note)?;
            noted(InProgress, "IN_PROGRESS", note)
        }
        Action::Resolve { result } => {
            if !matches!(from, Accepted | Assigned | InProgress) {
                return Err(not_now());
            }
            let result = text("result", result)?;
            report.result = Some(result.clone());
            report.resolved_at = Some(now);
            (Resolved, None, Some(("FIXED", result)))
        }
        Action::Extend {
            working_days,
            reason,
        } => {
            if !from.is_open() || from == Received {
                return Err(not_now());
            }
            if !(1..=30).contains(working_days) {
                return Err(Refused::Invalid("extend by 1–30 working days".into()));
            }
            let reason = text("reason", reason)?;
            let old = report.expected_datetime;
            let new = calendar.add_working_days(old, *working_days);
            report.extensions.push(Extension {
                at: now,
                actor: actor.to_string(),
                reason: reason.clone(),
                working_days: *working_days,
                from: old,
                to: new,
            });
            report.expected_datetime = new;
            report.updated_datetime = now;
            // Not a change of stage: the history keeps it, the stage stays.
            report.history.push(Transition {
                at: now,
                from,
                to: from,
                actor: actor.to_string(),
                note: Some(format!(
                    "deadline extended by {working_days} working days: {reason}"
                )),
            });
            return Ok(());
        }
        Action::Rate { rating, comment } => {
            if !matches!(from, Resolved | Closed) || report.rating.is_some() && from == Closed {
                return Err(not_now());
            }
            if !(1..=5).contains(rating) {
                return Err(Refused::Invalid("a rating is 1 to 5".into()));
            }
            let comment = optional("comment", comment)?;
            report.rating = Some(*rating);
            if *rating <= BAD_RATING {
                report.resolved_at = None;
                report.closed_at = None;
                let note = format!(
                    "reopened after a rating of {rating}{}",
                    comment.map(|c| format!(": {c}")).unwrap_or_default()
                );
                noted(InProgress, "OPEN", Some(note))
            } else {
                if from == Closed {
                    report.updated_datetime = now;
                    return Ok(());
                }
                report.closed_at = Some(now);
                noted(Closed, "CLOSED", comment)
            }
        }
        Action::Reopen { reason } => {
            if !matches!(from, Resolved | Closed) {
                return Err(not_now());
            }
            let reason = text("reason", reason)?;
            report.resolved_at = None;
            report.closed_at = None;
            noted(InProgress, "OPEN", Some(reason))
        }
        Action::Close { note } => {
            if from != Resolved {
                return Err(not_now());
            }
            let note = optional("note", note)?;
            report.closed_at = Some(now);
            noted(Closed, "CLOSED", note)
        }
    };
    if report.first_response_at.is_none() && from == Received {
        report.first_response_at = Some(now);
    }
    report.stage = to;
    report.status = if to.is_open() { "open" } else { "closed" }.into();
    report.status_notes = note.clone().or_else(|| report.status_notes.take());
    report.updated_datetime = now;
    report.history.push(Transition {
        at: now,
        from,
        to,
        actor: actor.to_string(),
        note,
    });
    if let Some((status, description)) = public {
        let by = if matches!(action, Action::Rate { .. } | Action::Reopen { .. }) {
            "citizen"
        } else {
            "agency"
        };
        push_update(report, status, description, by, now, None, None);
    }
    Ok(())
}

/// Adds a public update, numbered after the others (`{id}-{n}`); its id.
pub fn push_update(
    report: &mut Report,
    status: &str,
    description: String,
    by: &str,
    now: DateTime<Utc>,
    media_url: Option<String>,
    external_id: Option<String>,
) -> String {
    let update_id = format!("{}-{}", report.service_request_id, report.updates.len() + 1);
    report.updates.push(Update {
        update_id: update_id.clone(),
        status: status.to_string(),
        updated_datetime: now,
        description,
        media_url,
        by: by.to_string(),
        external_id,
    });
    report.updated_datetime = now;
    update_id
}

/// Whether a resolved report has waited long enough for its rating to close.
pub fn closes_by_itself(report: &Report, now: DateTime<Utc>) -> bool {
    report.stage == Stage::Resolved
        && report
            .resolved_at
            .is_some_and(|t| now - t >= TimeDelta::days(CLOSE_AFTER_DAYS))
}
