//! The temporal API's parameters, one a line: timerel, timeAt, endTimeAt,
//! timeproperty, lastN, options (comma-separated), aggrMethods, aggrPeriodDuration.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.splitn(8, '\n').collect();
    let at = |i: usize| lines.get(i).copied().filter(|s| !s.is_empty());
    let options: Vec<&str> = at(5).map(|o| o.split(',').collect()).unwrap_or_default();
    let _ = ngsi::temporal::TemporalParams::parse(
        at(0),
        at(1),
        at(2),
        at(3),
        at(4),
        &options,
        at(6),
        at(7),
    );
});
