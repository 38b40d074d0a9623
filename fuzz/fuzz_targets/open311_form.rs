//! An Open311 service request as a form body.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let params = reports::open311::Params::parse(data);
    let _ = reports::open311::new_report(&params);
});
