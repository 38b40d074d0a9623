//! scopeQ and scope values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = ngsi::query::parse_scope_q(text);
        let _ = ngsi::query::parse_scope(text);
        let _ = ngsi::query::parse_type_expr(text);
    }
});
