//! Geo-queries: georel, geometry, coordinates and geoproperty, one a line.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = text.splitn(4, '\n');
    let georel = parts.next().unwrap_or("");
    let geometry = parts.next().unwrap_or("");
    let coordinates = parts.next().unwrap_or("");
    let geoproperty = parts.next();
    let _ = ngsi::query::parse_geoq(georel, geometry, coordinates, geoproperty);
});
