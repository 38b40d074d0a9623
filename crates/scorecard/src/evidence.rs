//! Evidence files for entered values: a PDF, PNG or JPEG of at most 10 MB, checked by
//! its content (a PDF's header and end-of-file marker; an image by decoding it), never
//! by its name or declared type. The bytes are kept as a registry record of the store
//! ([`FILES`], base64), so every node serves them; the file's description is a
//! `KpiEvidenceFile` entity written in the uploader's scope, so the hub's audit log
//! names who uploaded what. Files are kept as uploaded: their SHA-256 is part of the
//! evidence.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use hub::{Hub, Scope};
use ngsi::{Context, Error};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// The registry collection of evidence files.
pub const FILES: &str = "scorecard.evidence";
/// The largest file accepted, in bytes.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// The largest picture decoded (pixels): a small file cannot make the server allocate
/// gigabytes.
const MAX_PIXELS: u64 = 64_000_000;
/// The entity type describing a file.
pub const FILE_TYPE: &str = "KpiEvidenceFile";

/// The kinds of file taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Kind {
    Pdf,
    Png,
    Jpeg,
}

impl Kind {
    pub fn media_type(self) -> &'static str {
        match self {
            Kind::Pdf => "application/pdf",
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Kind::Pdf => "pdf",
            Kind::Png => "png",
            Kind::Jpeg => "jpg",
        }
    }
}

/// Why a file is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("an evidence file is at most 10 MB")]
    TooLarge,
    #[error("an evidence file is empty")]
    Empty,
    #[error("an evidence file is a PDF, PNG or JPEG")]
    Unknown,
    #[error("the PDF has no end-of-file marker (%%EOF): it is cut short or not a PDF")]
    BrokenPdf,
    #[error("the image could not be decoded: {0}")]
    BrokenImage(String),
    #[error("the image is too large in pixels")]
    TooManyPixels,
}

/// What a file is, by its content (CPU work for images: run it off the async threads).
pub fn check(bytes: &[u8]) -> Result<Kind, Refused> {
    if bytes.len() > MAX_BYTES {
        return Err(Refused::TooLarge);
    }
    if bytes.is_empty() {
        return Err(Refused::Empty);
    }
    if bytes.starts_with(b"%PDF-") {
        // The marker ends the file, give or take the trailing line ends and the
        // garbage some writers leave: look in the last kilobyte.
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(5).any(|w| w == b"%%EOF") {
            return Err(Refused::BrokenPdf);
        }
        return Ok(Kind::Pdf);
    }
    let format = image::guess_format(bytes).map_err(|_| Refused::Unknown)?;
    let kind = match format {
        image::ImageFormat::Png => Kind::Png,
        image::ImageFormat::Jpeg => Kind::Jpeg,
        _ => return Err(Refused::Unknown),
    };
    let reader = || {
        let mut r = image::ImageReader::with_format(Cursor::new(bytes), format);
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(MAX_PIXELS * 4);
        r.limits(limits);
        r
    };
    let (w, h) = reader()
        .into_dimensions()
        .map_err(|e| Refused::BrokenImage(e.to_string()))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Refused::TooManyPixels);
    }
    reader()
        .decode()
        .map_err(|e| Refused::BrokenImage(e.to_string()))?;
    Ok(kind)
}

/// A file as the registry keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stored {
    pub kind: Kind,
    pub size: usize,
    pub sha256: String,
    pub data: String,
}

impl Stored {
    pub fn bytes(&self) -> Option<Vec<u8>> {
        STANDARD.decode(&self.data).ok()
    }
}

/// The entity id of a file.
pub fn file_id(key: &str) -> String {
    format!("urn:ngsi-ld:{FILE_TYPE}:{key}")
}

/// Whether `key` has the shape of a file key (a UUID).
pub fn is_key(key: &str) -> bool {
    uuid::Uuid::parse_str(key).is_ok_and(|u| u.hyphenated().to_string() == key)
}

/// The link a file is downloaded from.
pub fn href(key: &str) -> String {
    format!("/scorecard/v1/evidence/{key}")
}

fn store_error(e: store::StoreError) -> Error {
    Error::new(ngsi::ErrorKind::InternalError, format!("registry: {e}"))
}

/// Keeps an uploaded file in the caller's tenant and describes it in an entity written
/// in the caller's scope. Returns the description.
pub async fn upload(
    hub: &Hub,
    scope: &Scope,
    bytes: Vec<u8>,
    name: Option<String>,
) -> Result<Value, Error> {
    scope.check(hub::auth::Access::Write)?;
    if let Some(n) = &name
        && (n.is_empty() || n.len() > 200 || n.chars().any(char::is_control))
    {
        return Err(Error::bad_data(
            "name is 1 to 200 characters, no control characters",
        ));
    }
    let (kind, bytes) = tokio::task::spawn_blocking(move || check(&bytes).map(|k| (k, bytes)))
        .await
        .map_err(|e| Error::new(ngsi::ErrorKind::InternalError, e.to_string()))?
        .map_err(|r| Error::bad_data(r.to_string()))?;
    let key = uuid::Uuid::new_v4().hyphenated().to_string();
    let sha256: String = Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let stored = Stored {
        kind,
        size: bytes.len(),
        sha256: sha256.clone(),
        data: STANDARD.encode(&bytes),
    };
    let value = serde_json::to_value(&stored)
        .map_err(|e| Error::new(ngsi::ErrorKind::InternalError, e.to_string()))?;
    let records = hub.records();
    records
        .registry_put(
            FILES,
            &scope.tenant,
            vec![(key.clone(), value)],
            store::RegistryWrite::Create,
        )
        .await
        .map_err(store_error)?;
    let mut e = json!({
        "id": file_id(&key),
        "type": FILE_TYPE,
        "mediaType": crate::plan::prop(kind.media_type()),
        "size": crate::plan::prop(bytes.len()),
        "sha256": crate::plan::prop(sha256),
        "uploadedBy": crate::plan::prop(scope.caller.actor.clone()),
        "uploadedAt": crate::plan::prop(ngsi::entity::format_time(&Utc::now())),
        "href": crate::plan::prop(href(&key)),
    });
    if let (Some(n), Some(obj)) = (name, e.as_object_mut()) {
        obj.insert("fileName".into(), crate::plan::prop(n));
    }
    let ctx = Context::core();
    let written = async {
        let entity = ngsi::entity::Reader {
            ctx: &ctx,
            now: ngsi::entity::now(),
        }
        .entity(&e, None)?;
        hub.create_entity(scope, entity).await
    }
    .await;
    if let Err(err) = written {
        // No file without its description (and its audit record).
        let _ = records.registry_delete(FILES, &scope.tenant, &key).await;
        return Err(err);
    }
    Ok(Value::Object(crate::engine::keyvalues(
        &hub.get_entity(scope, &file_id(&key)).await?,
    )))
}

/// A file of the caller's tenant, with its description; the read is the caller's (a
/// caller without read access to the tenant is refused by the hub).
pub async fn download(hub: &Hub, scope: &Scope, key: &str) -> Result<(Kind, Vec<u8>), Error> {
    if !is_key(key) {
        return Err(Error::not_found(format!("no evidence file {key}")));
    }
    // The description, read in the caller's scope: grants are checked there.
    hub.get_entity(scope, &file_id(key)).await?;
    let v = hub
        .records()
        .registry_get(FILES, &scope.tenant, key)
        .await
        .map_err(store_error)?
        .ok_or_else(|| Error::not_found(format!("no evidence file {key}")))?;
    let stored: Stored = serde_json::from_value(v)
        .map_err(|e| Error::new(ngsi::ErrorKind::InternalError, e.to_string()))?;
    let bytes = stored
        .bytes()
        .ok_or_else(|| Error::new(ngsi::ErrorKind::InternalError, "an unreadable file"))?;
    Ok((stored.kind, bytes))
}

/// The description of a file named by a submission, when it is one of the tenant's.
pub async fn describe(hub: &Hub, scope: &Scope, key: &str) -> Result<Value, Error> {
    if !is_key(key) {
        return Err(Error::bad_data(format!(
            "evidenceFile {key:?} is not the id of an uploaded file"
        )));
    }
    let e = hub
        .get_entity(scope, &file_id(key))
        .await
        .map_err(|e| match e.kind {
            ngsi::ErrorKind::ResourceNotFound => {
                Error::bad_data(format!("no uploaded evidence file {key}"))
            }
            _ => e,
        })?;
    let kv = crate::engine::keyvalues(&e);
    Ok(json!({
        "id": key,
        "href": href(key),
        "mediaType": kv.get("mediaType"),
        "size": kv.get("size"),
        "sha256": kv.get("sha256"),
        "fileName": kv.get("fileName"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_pixel(
            w,
            h,
            image::Rgb([10, 120, 200]),
        ));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .expect("a PNG");
        out
    }

    #[test]
    fn files_are_known_by_their_content() {
        let pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
        assert_eq!(check(&pdf), Ok(Kind::Pdf));
        assert_eq!(check(&pdf[..20]), Err(Refused::BrokenPdf));
        assert_eq!(check(&png(4, 3)), Ok(Kind::Png));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(image::RgbImage::new(5, 5))
            .write_to(&mut Cursor::new(&mut jpeg), image::ImageFormat::Jpeg)
            .expect("a JPEG");
        assert_eq!(check(&jpeg), Ok(Kind::Jpeg));
        // A name or a declared type says nothing: an HTML page, a GIF, a cut image.
        assert_eq!(
            check(b"<html><script>alert(1)</script>"),
            Err(Refused::Unknown)
        );
        assert_eq!(check(b"GIF89a\x01\x00\x01\x00"), Err(Refused::Unknown));
        let mut cut = png(50, 50);
        cut.truncate(60);
        assert!(matches!(check(&cut), Err(Refused::BrokenImage(_))));
        assert_eq!(check(&[]), Err(Refused::Empty));
        let mut big = b"%PDF-1.4\n".to_vec();
        big.resize(MAX_BYTES + 1, b' ');
        assert_eq!(check(&big), Err(Refused::TooLarge));
        assert!(is_key("6f1c7a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f"));
        assert!(!is_key("../../etc/passwd"));
    }
}
