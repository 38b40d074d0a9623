//! The reports as the province's public page lists and maps them: category, status,
//! agency, due date, result, rating, place and the thumbnail of a photo, and nothing
//! else. The fields are chosen one by one (never a report with some fields taken
//! out), so a field added to [`Report`] stays off the public page until it is added
//! here. The citizen's description is left out too: it is free text, the one field of
//! a report where a reporter may write about themselves.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{Report, Stage};
use crate::open311::w3c;

/// Where the server serves its own photos; a thumbnail is only shown for those (a
/// `media_url` given by the reporter may point anywhere).
const MEDIA_PATH: &str = "/reports/v1/media/";

/// One report on the public page.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PublicReport {
    pub service_request_id: String,
    pub service_code: String,
    pub service_name: String,
    /// Open311's `open` or `closed`.
    pub status: String,
    /// The workflow's stage (`received`, `in_progress`, `resolved`…).
    pub stage: &'static str,
    pub agency_responsible: String,
    pub requested_datetime: String,
    /// When the next step is due.
    pub due: String,
    pub overdue: bool,
    /// What was done (resolved or closed), or why it was rejected.
    pub result: Option<String>,
    /// The reporter's rating, 1–5.
    pub rating: Option<u8>,
    pub lat: Option<f64>,
    pub long: Option<f64>,
    pub commune_name: Option<String>,
    /// The path of the thumbnail of the first photo, if the report has one.
    pub thumbnail: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
}

impl PublicReport {
    pub fn of(r: &Report, now: DateTime<Utc>) -> PublicReport {
        let result = match r.stage {
            Stage::Resolved | Stage::Closed => r.result.clone(),
            Stage::Rejected => r.reason.clone(),
            _ => None,
        };
        PublicReport {
            service_request_id: r.service_request_id.clone(),
            service_code: r.service_code.clone(),
            service_name: r.service_name.clone(),
            status: r.status.clone(),
            stage: r.stage.as_str(),
            agency_responsible: r.agency_responsible.clone(),
            requested_datetime: w3c(r.requested_datetime),
            due: w3c(r.due()),
            overdue: r.is_overdue(now),
            result,
            rating: r.rating,
            lat: r.location.map(|p| p.lat()),
            long: r.location.map(|p| p.lon()),
            commune_name: r.commune_name.clone(),
            thumbnail: r.media_urls.iter().find_map(|u| thumbnail(u)),
            demo: r.demo,
        }
    }
}

/// The public list's last answers, each kept [`RecentAnswers::KEEP`]: the route is
/// anonymous, every open public page asks it every minute, and reading a month of
/// reports is the costliest thing it does. Keyed by the query's bounds; a few keys at
/// most, so that varying them cannot grow it.
#[derive(Default)]
pub struct RecentAnswers {
    kept: Mutex<HashMap<(i64, i64), (Instant, Bytes)>>,
}

impl RecentAnswers {
    pub const KEEP: Duration = Duration::from_secs(30);
    const MAX_KEYS: usize = 16;

    pub fn get(&self, key: (i64, i64)) -> Option<Bytes> {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.get(&key)
            .filter(|(at, _)| at.elapsed() < Self::KEEP)
            .map(|(_, body)| body.clone())
    }

    pub fn put(&self, key: (i64, i64), body: Bytes) {
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        kept.retain(|_, (at, _)| at.elapsed() < Self::KEEP);
        if kept.len() >= Self::MAX_KEYS {
            kept.clear();
        }
        kept.insert(key, (Instant::now(), body));
    }
}

/// `…/reports/v1/media/{id}.jpg` → `/reports/v1/media/{id}-thumb.jpg`; `None` for a
/// photo stored elsewhere.
fn thumbnail(media_url: &str) -> Option<String> {
    let (_, file) = media_url.split_once(MEDIA_PATH)?;
    let id = file.strip_suffix(".jpg")?;
    let plain = !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric());
    plain.then(|| format!("{MEDIA_PATH}{id}-thumb.jpg"))
}

#[cfg(test)]
mod tests {
    use axum::body::Bytes;

    use super::{RecentAnswers, thumbnail};

    #[test]
    fn recent_answers_are_kept_per_query_and_stay_few() {
        let recent = RecentAnswers::default();
        recent.put((30, 200), Bytes::from_static(b"a"));
        assert_eq!(recent.get((30, 200)).as_deref(), Some(&b"a"[..]));
        assert_eq!(recent.get((30, 300)), None);
        for limit in 0..100 {
            recent.put((1, limit), Bytes::from_static(b"b"));
        }
        let kept = recent.kept.lock().expect("the lock").len();
        assert!(kept <= RecentAnswers::MAX_KEYS, "{kept} answers kept");
    }

    #[test]
    fn thumbnails_are_only_for_the_servers_own_photos() {
        for (url, expected) in [
            (
                "https://quangtri.example.vn/reports/v1/media/abc123.jpg",
                Some("/reports/v1/media/abc123-thumb.jpg"),
            ),
            (
                "http://127.0.0.1:8080/reports/v1/media/X9y.jpg",
                Some("/reports/v1/media/X9y-thumb.jpg"),
            ),
            ("https://x.example/reports/v1/media/a-thumb.jpg", None),
            ("https://elsewhere.example/photo.jpg", None),
            ("https://x.example/reports/v1/media/a.png", None),
            ("https://x.example/reports/v1/media/.jpg", None),
            ("https://x.example/reports/v1/media/a\"b.jpg", None),
            ("https://x.example/reports/v1/media/../a.jpg", None),
        ] {
            assert_eq!(thumbnail(url).as_deref(), expected, "{url}");
        }
    }
}
