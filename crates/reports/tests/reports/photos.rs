//! Photos: checked by decoding, re-encoded without metadata, served with cache headers.

use std::io::Cursor;

use crate::common::{App, DONG_HA, send};

/// The GPS latitude's seconds as the EXIF block writes them (5873/100).
const SECONDS: [u8; 8] = [0, 0, 0x16, 0xF1, 0, 0, 0, 0x64];

/// A JPEG with an EXIF block holding a GPS position.
fn jpeg_with_gps() -> Vec<u8> {
    let img = image::RgbImage::from_fn(64, 48, |x, y| image::Rgb([x as u8 * 4, y as u8 * 5, 90]));
    let mut plain = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut Cursor::new(&mut plain), image::ImageFormat::Jpeg)
        .expect("a JPEG");
    let mut tiff: Vec<u8> = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    // IFD0: one entry, GPSInfo → the GPS IFD at offset 26.
    tiff.extend([0, 1, 0x88, 0x25, 0, 4, 0, 0, 0, 1, 0, 0, 0, 26, 0, 0, 0, 0]);
    // GPS IFD: latitude ref "N", latitude as three rationals at offset 56.
    tiff.extend([0, 2]);
    tiff.extend([0, 1, 0, 2, 0, 0, 0, 2, b'N', 0, 0, 0]);
    tiff.extend([0, 2, 0, 5, 0, 0, 0, 3, 0, 0, 0, 56]);
    tiff.extend([0, 0, 0, 0]);
    tiff.extend([0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 48, 0, 0, 0, 1]);
    tiff.extend(SECONDS);
    let mut app1 = b"Exif\x00\x00".to_vec();
    app1.extend(tiff);
    let len = (app1.len() + 2) as u16;
    let mut out = vec![0xFF, 0xD8, 0xFF, 0xE1];
    out.extend(len.to_be_bytes());
    out.extend(app1);
    out.extend(&plain[2..]);
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

fn png() -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(800, 600, image::Rgba([0, 120, 200, 100]));
    let mut out = Vec::new();
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("a PNG");
    out
}

/// A multipart form of a report with these files (built by hand: the body as a
/// browser or FixMyStreet sends it).
fn form(files: Vec<(&'static str, Vec<u8>)>) -> (String, Vec<u8>) {
    const B: &str = "dothi-test-boundary-7d3f";
    let mut body = Vec::new();
    for (name, value) in [
        ("service_code", "rac-thai"),
        ("lat", DONG_HA.0),
        ("long", DONG_HA.1),
        ("description", "Rác ven đường"),
    ] {
        body.extend(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                .as_bytes(),
        );
    }
    for (name, bytes) in files {
        body.extend(
            format!("--{B}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}.jpg\"\r\nContent-Type: image/jpeg\r\n\r\n")
                .as_bytes(),
        );
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{B}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={B}"), body)
}

async fn post(
    app: &App,
    client: &reqwest::Client,
    path: &str,
    files: Vec<(&'static str, Vec<u8>)>,
) -> crate::common::Answer {
    let (ctype, body) = form(files);
    send(
        client
            .post(app.url(path))
            .header("content-type", ctype)
            .body(body),
    )
    .await
}

#[tokio::test]
async fn a_jpeg_with_gps_exif_comes_out_clean() {
    let app = App::with_categories().await;
    let original = jpeg_with_gps();
    assert!(contains(&original, b"Exif") && contains(&original, &SECONDS));
    image::load_from_memory(&original).expect("the test JPEG decodes");

    let r = post(
        &app,
        &app.anonymous,
        "/open311/v2/requests.json",
        vec![("photo1", original), ("media", png())],
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.first_id();
    let report = app.report(&id).await;
    assert_eq!(report.media_urls.len(), 2);
    let got = app
        .public_json(&format!("/open311/v2/requests/{id}.json"))
        .await;
    let url = got[0]["media_url"]
        .as_str()
        .expect("a media_url")
        .to_string();
    assert!(
        url.contains("/reports/v1/media/") && url.ends_with(".jpg"),
        "{url}"
    );

    let path = &url[url.find("/reports/").expect("a path")..];
    let photo = app
        .anonymous
        .get(app.url(path))
        .send()
        .await
        .expect("the photo");
    assert_eq!(photo.status(), 200);
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    let cache = photo.headers()["cache-control"]
        .to_str()
        .unwrap_or("")
        .to_string();
    assert!(cache.contains("max-age=31536000"), "{cache}");
    let bytes = photo.bytes().await.expect("bytes");
    assert!(!contains(&bytes, b"Exif"), "the EXIF block is gone");
    assert!(!contains(&bytes, &SECONDS), "the GPS position is gone");
    assert!(!contains(&bytes, &[0xFF, 0xE1]), "no APP1 segment at all");
    let decoded = image::load_from_memory(&bytes).expect("a JPEG");
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
    let thumb_path = path.replace(".jpg", "-thumb.jpg");
    let thumb = app
        .anonymous
        .get(app.url(&thumb_path))
        .send()
        .await
        .expect("the thumbnail");
    assert_eq!(thumb.status(), 200);
    let t = image::load_from_memory(&thumb.bytes().await.expect("bytes")).expect("a JPEG");
    assert!(t.width() <= 320);
    // The PNG became a JPEG too, scaled within bounds.
    let second = &report.media_urls[1];
    let p = app
        .anonymous
        .get(app.url(&second[second.find("/reports/").expect("a path")..]))
        .send()
        .await
        .expect("the photo");
    let p = image::load_from_memory(&p.bytes().await.expect("bytes")).expect("a JPEG");
    assert_eq!((p.width(), p.height()), (800, 600));
    assert_eq!(
        app.get(
            &app.anonymous,
            "/reports/v1/media/0123456789abcdef0123456789abcdef.jpg"
        )
        .await
        .status,
        404
    );
}

#[tokio::test]
async fn bad_photos_are_refused_and_nothing_is_stored() {
    let app = App::with_categories().await;
    let not_image = post(
        &app,
        &app.admin,
        "/open311/v2/requests.xml",
        vec![("photo1", b"<svg onload=alert(1)>".to_vec())],
    )
    .await;
    not_image.assert_says(400, "JPEG, PNG or WebP");
    let mut truncated = jpeg_with_gps();
    truncated.truncate(truncated.len() / 3);
    let broken = post(
        &app,
        &app.admin,
        "/open311/v2/requests.xml",
        vec![("photo1", truncated)],
    )
    .await;
    assert_eq!(broken.status, 400, "{}", broken.text);
    let six = (0..6).map(|_| ("photo1", png())).collect();
    let too_many = post(&app, &app.admin, "/open311/v2/requests.xml", six).await;
    assert_eq!(too_many.status, 400, "{}", too_many.text);
    let other = post(
        &app,
        &app.admin,
        "/open311/v2/requests.xml",
        vec![("document", png())],
    )
    .await;
    assert_eq!(other.status, 400, "{}", other.text);
    assert!(app.reports.all().await.expect("all").is_empty());
}
