//! Photos of reports: JPEG, PNG or WebP of 10 MB at most, 5 a report, checked by
//! decoding them (never by their name or declared type), re-encoded as JPEG without
//! any metadata (EXIF, GPS, comments: the encoder writes none), scaled to 2048 pixels
//! at most, with a 320-pixel thumbnail. They are kept by the store, as registry records
//! of [`MEDIA`] (base64), so that every node serves them and a report's photos live
//! in the same database as the report.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{DynamicImage, ImageFormat, ImageReader};
use serde::{Deserialize, Serialize};

/// Photos by id.
pub const MEDIA: &str = "reports.media";
/// Largest photo accepted, in bytes.
pub const MAX_BYTES: usize = 10 * 1024 * 1024;
/// Photos per report.
pub const MAX_PHOTOS: usize = 5;
/// Largest side kept, and a thumbnail's.
const MAX_SIDE: u32 = 2048;
const THUMB_SIDE: u32 = 320;
/// Largest picture decoded (pixels): a small file cannot make the server allocate
/// gigabytes.
const MAX_PIXELS: u64 = 64_000_000;

/// Why a photo is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("a photo is at most 10 MB")]
    TooLarge,
    #[error("a photo is a JPEG, PNG or WebP image")]
    NotAnImage,
    #[error("the photo could not be decoded: {0}")]
    Broken(String),
    #[error("the photo is too large in pixels")]
    TooManyPixels,
}

/// A photo ready to keep.
#[derive(Debug, Clone, PartialEq)]
pub struct Photo {
    pub width: u32,
    pub height: u32,
    /// The re-encoded JPEG, and its thumbnail.
    pub jpeg: Vec<u8>,
    pub thumb: Vec<u8>,
}

/// Decodes, checks and re-encodes one photo (CPU work: run it off the async threads).
pub fn process(bytes: &[u8]) -> Result<Photo, Refused> {
    if bytes.len() > MAX_BYTES {
        return Err(Refused::TooLarge);
    }
    let format = image::guess_format(bytes).map_err(|_| Refused::NotAnImage)?;
    if !matches!(
        format,
        ImageFormat::Jpeg | ImageFormat::Png | ImageFormat::WebP
    ) {
        return Err(Refused::NotAnImage);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let (w, h) = reader
        .into_dimensions()
        .map_err(|e| Refused::Broken(e.to_string()))?;
    if u64::from(w) * u64::from(h) > MAX_PIXELS {
        return Err(Refused::TooManyPixels);
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = image::Limits::default();
    limits.max_alloc = Some(MAX_PIXELS * 4);
    reader.limits(limits);
    let img = reader
        .decode()
        .map_err(|e| Refused::Broken(e.to_string()))?;
    // Scaling down averages the source pixels each target pixel covers (integer
    // arithmetic): as sharp as a filtered resize for a reduction, several times faster.
    let img = if img.width().max(img.height()) > MAX_SIDE {
        img.thumbnail(MAX_SIDE, MAX_SIDE)
    } else {
        img
    };
    let thumb = img.thumbnail(THUMB_SIDE, THUMB_SIDE);
    Ok(Photo {
        width: img.width(),
        height: img.height(),
        jpeg: jpeg(&img, 85)?,
        thumb: jpeg(&thumb, 75)?,
    })
}

fn jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, Refused> {
    // RGB only: transparency is flattened, and JPEG has no alpha. The encoder writes a
    // JFIF header and the picture, nothing else (no EXIF, no GPS, no comment).
    let rgb = img.to_rgb8();
    let (Ok(width), Ok(height)) = (u16::try_from(rgb.width()), u16::try_from(rgb.height())) else {
        return Err(Refused::TooManyPixels);
    };
    let mut out = Vec::new();
    jpeg_encoder::Encoder::new(&mut out, quality)
        .encode(rgb.as_raw(), width, height, jpeg_encoder::ColorType::Rgb)
        .map_err(|e| Refused::Broken(e.to_string()))?;
    Ok(out)
}

/// A photo as the registry keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stored {
    pub service_request_id: String,
    pub width: u32,
    pub height: u32,
    pub jpeg: String,
    pub thumb: String,
}

impl Stored {
    pub fn new(service_request_id: &str, p: &Photo) -> Stored {
        Stored {
            service_request_id: service_request_id.to_string(),
            width: p.width,
            height: p.height,
            jpeg: STANDARD.encode(&p.jpeg),
            thumb: STANDARD.encode(&p.thumb),
        }
    }

    pub fn bytes(&self, thumb: bool) -> Option<Vec<u8>> {
        STANDARD
            .decode(if thumb { &self.thumb } else { &self.jpeg })
            .ok()
    }
}

/// Whether `id` has the shape of a photo id.
pub fn is_id(id: &str) -> bool {
    crate::private::is_token(id)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = DynamicImage::ImageRgba8(image::RgbaImage::from_pixel(
            w,
            h,
            image::Rgba([200, 10, 10, 128]),
        ));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn photos_are_checked_by_decoding() {
        assert_eq!(process(b"GIF89a....").unwrap_err(), Refused::NotAnImage);
        assert_eq!(
            process(b"not an image at all").unwrap_err(),
            Refused::NotAnImage
        );
        let mut broken = png(10, 10);
        broken.truncate(40);
        assert!(matches!(process(&broken), Err(Refused::Broken(_))));
        assert_eq!(
            process(&vec![0u8; MAX_BYTES + 1]).unwrap_err(),
            Refused::TooLarge
        );
        let p = process(&png(3000, 1000)).unwrap();
        assert_eq!((p.width, p.height), (2048, 683));
        assert_eq!(&p.jpeg[..2], &[0xFF, 0xD8]);
        let t = image::load_from_memory(&p.thumb).unwrap();
        assert_eq!(t.width(), 320);
    }
}
