//! Photos of reports: JPEG, PNG or WebP of 10 MB at most, 5 a report, checked by
//! decoding them (never by their name or declared type), re-encoded as JPEG without
//! any metadata (EXIF, GPS, comments: the encoder writes none), scaled to 2048 pixels
//! at most, with a 320-pixel thumbnail. They are kept by the store, as registry records
//! of [`MEDIA`] (base64), so that every node serves them and a report's photos live
//! in the same database as the report.

use std::io::Cursor;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use image::{ImageFormat, ImageReader, RgbImage};
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
    // RGB only: transparency is dropped, and JPEG has no alpha.
    let img = reader
        .decode()
        .map_err(|e| Refused::Broken(e.to_string()))?
        .into_rgb8();
    let (w, h) = fit(img.dimensions(), MAX_SIDE);
    let img = if (w, h) == img.dimensions() {
        img
    } else {
        shrink(&img, w, h)
    };
    let (tw, th) = fit(img.dimensions(), THUMB_SIDE);
    let thumb = shrink(&img, tw, th);
    Ok(Photo {
        width: img.width(),
        height: img.height(),
        jpeg: jpeg(&img, 85)?,
        thumb: jpeg(&thumb, 75)?,
    })
}

/// The size of a picture of `(width, height)` brought within `side` × `side`, its
/// proportions kept (a picture already within is kept as it is, never enlarged).
fn fit((width, height): (u32, u32), side: u32) -> (u32, u32) {
    if width <= side && height <= side {
        return (width, height);
    }
    let scale = |v: u32, long: u32| {
        ((f64::from(v) * f64::from(side) / f64::from(long)).round() as u32).clamp(1, side)
    };
    if width >= height {
        (side, scale(height, width))
    } else {
        (scale(width, height), side)
    }
}

/// How one line of `from` pixels is shrunk to `to` (≤ `from`): for each target pixel,
/// the first source pixel it covers and the weight of each source pixel it covers (its
/// share of the target pixel's span, in 1/65,536ths; the weights of one target pixel
/// add up to 65,536).
fn spans(from: u32, to: u32) -> Vec<(usize, Vec<u32>)> {
    let scale = f64::from(from) / f64::from(to);
    (0..to)
        .map(|i| {
            let (start, end) = (f64::from(i) * scale, f64::from(i + 1) * scale);
            let first = start.floor() as u32;
            let last = (end.ceil() as u32).clamp(first + 1, from);
            let mut weights: Vec<u32> = (first..last)
                .map(|j| {
                    let covered = end.min(f64::from(j + 1)) - start.max(f64::from(j));
                    (covered.max(0.0) / scale * 65_536.0).round() as u32
                })
                .collect();
            // Rounding may leave the sum a unit or two off: the largest weight takes it.
            let sum: u32 = weights.iter().sum();
            if let Some(top) = weights.iter_mut().max() {
                *top = (*top + 65_536).saturating_sub(sum);
            }
            (first as usize, weights)
        })
        .collect()
}

/// Shrinks an RGB picture to `width` × `height` (each at most the source's): each target
/// pixel is the average of the source area it covers, weighted by how much of each
/// source pixel lies in it (a box filter, as sharp as a filtered resize for a
/// reduction). Two passes in integer arithmetic: along columns first, a whole row at a
/// time (which the compiler vectorizes), then along the fewer rows left.
fn shrink(src: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (sw, sh) = src.dimensions();
    let (width, height) = (width.clamp(1, sw.max(1)), height.clamp(1, sh.max(1)));
    let round = |acc: u32| ((acc + 32_768) >> 16).min(255) as u8;
    // Along columns: sw × sh → sw × height.
    let src_row = sw as usize * 3;
    let mut mid = vec![0u8; src_row * height as usize];
    let mut acc = vec![0u32; src_row];
    for ((first, weights), to) in spans(sh, height).iter().zip(mid.chunks_exact_mut(src_row)) {
        acc.fill(0);
        let rows = &src.as_raw()[first * src_row..(first + weights.len()) * src_row];
        for (w, row) in weights.iter().zip(rows.chunks_exact(src_row)) {
            for (a, v) in acc.iter_mut().zip(row) {
                *a += w * u32::from(*v);
            }
        }
        for (o, a) in to.iter_mut().zip(&acc) {
            *o = round(*a);
        }
    }
    // Along rows: sw × height → width × height.
    let across = spans(sw, width);
    let out_row = width as usize * 3;
    let mut out = vec![0u8; out_row * height as usize];
    for (from, to) in mid.chunks_exact(src_row).zip(out.chunks_exact_mut(out_row)) {
        for ((first, weights), pixel) in across.iter().zip(to.chunks_exact_mut(3)) {
            let covered = &from[first * 3..(first + weights.len()) * 3];
            let mut sum = [0u32; 3];
            for (w, p) in weights.iter().zip(covered.chunks_exact(3)) {
                sum[0] += w * u32::from(p[0]);
                sum[1] += w * u32::from(p[1]);
                sum[2] += w * u32::from(p[2]);
            }
            pixel[0] = round(sum[0]);
            pixel[1] = round(sum[1]);
            pixel[2] = round(sum[2]);
        }
    }
    RgbImage::from_raw(width, height, out).unwrap_or_else(|| RgbImage::new(width, height))
}

fn jpeg(rgb: &RgbImage, quality: u8) -> Result<Vec<u8>, Refused> {
    // The encoder writes a JFIF header and the picture, nothing else (no EXIF, no GPS,
    // no comment).
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
    use image::DynamicImage;

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

    #[test]
    fn pictures_are_brought_within_their_side_never_enlarged() {
        assert_eq!(fit((2400, 1800), 2048), (2048, 1536));
        assert_eq!(fit((1000, 3000), 2048), (683, 2048));
        assert_eq!(fit((2048, 683), 320), (320, 107));
        assert_eq!(fit((5000, 1), 320), (320, 1));
        assert_eq!(fit((200, 100), 320), (200, 100));
    }

    #[test]
    fn shrinking_averages_the_area_each_pixel_covers() {
        // One colour stays that colour exactly: the weights add up to one.
        let flat = RgbImage::from_pixel(2400, 1800, image::Rgb([200, 10, 97]));
        let small = shrink(&flat, 2048, 1536);
        assert_eq!(small.dimensions(), (2048, 1536));
        assert!(small.pixels().all(|p| p.0 == [200, 10, 97]));
        // Two columns into one: their mean.
        let pair = RgbImage::from_fn(2, 1, |x, _| image::Rgb([x as u8 * 100, 0, 255]));
        assert_eq!(shrink(&pair, 1, 1).get_pixel(0, 0).0, [50, 0, 255]);
        // A smooth picture: within a level of the image crate's own area average
        // (which rounds each area to whole pixels) on average, and a ramp stays a ramp.
        let busy = RgbImage::from_fn(2400, 1800, |x, y| {
            let (fx, fy) = (f64::from(x), f64::from(y));
            let wave = 128.0 + 100.0 * (fx / 50.0).sin() * (fy / 70.0).cos();
            image::Rgb([
                (fx * 255.0 / 2400.0) as u8,
                (fy * 255.0 / 1800.0) as u8,
                wave as u8,
            ])
        });
        let ours = shrink(&busy, 2048, 1536);
        let theirs = image::imageops::thumbnail(&busy, 2048, 1536);
        let diff: u64 = ours
            .as_raw()
            .iter()
            .zip(theirs.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        let mean = diff as f64 / ours.as_raw().len() as f64;
        assert!(mean < 1.0, "mean difference {mean}");
        let ramp = RgbImage::from_fn(1000, 10, |x, _| image::Rgb([(x / 4) as u8, 0, 0]));
        let shrunk = shrink(&ramp, 300, 3);
        let reds: Vec<u8> = (0..300).map(|x| shrunk.get_pixel(x, 1).0[0]).collect();
        assert!(reds.windows(2).all(|w| w[0] <= w[1]), "{reds:?}");
    }
}
