//! Fuzzes the telemetry decoder (`nodus telemetry watch` and fleet backends
//! decode whatever arrives on a telemetry topic): it never panics, and what
//! it accepts re-encodes to canonical bytes that decode and re-encode to
//! themselves (bytes, not values: a NaN float is not equal to itself).
//! Run: `cd appliance/fuzz && cargo +nightly-2026-08-05 fuzz run telemetry_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodus::telemetry::envelope::{self, Message, NamedReport};

fuzz_target!(|data: &[u8]| {
    let Ok(message) = envelope::decode(data) else {
        return;
    };
    let again = match &message {
        Message::Report(r) => {
            // Names resolve whatever the values are.
            let _ = NamedReport::resolve("fuzz", r, |_, _| None);
            r.encode()
        }
        Message::Schema(s) => s.encode(),
    };
    let third = match envelope::decode(&again) {
        Ok(Message::Report(r)) => r.encode(),
        Ok(Message::Schema(s)) => s.encode(),
        Err(e) => panic!("re-encoded message does not decode: {e}"),
    };
    assert_eq!(again, third);
});
