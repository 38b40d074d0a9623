//! The NGSI-LD query language (`q`): any text is parsed or refused, never a panic,
//! and what parses prints back to text that parses again.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Ok(expr) = ngsi::query::parse_q(text) {
            let printed = expr.to_string();
            assert!(
                ngsi::query::parse_q(&printed).is_ok(),
                "{text:?} printed as {printed:?}"
            );
        }
    }
});
