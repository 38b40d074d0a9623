//! Device payloads as the IoT agent receives them: JSON objects or arrays of them, and
//! single values.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = iot::measure::objects(data);
    let _ = iot::measure::single("level", data);
});
