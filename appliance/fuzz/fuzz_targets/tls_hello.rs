//! Fuzzes the proxy's ClientHello reader: any bytes, cut into reads at any
//! points, either complete a hello, wait for more, or fail with an error;
//! never panic, never hold more than twice the limit plus one record while
//! waiting, and the same bytes give the same answer however they are cut.
//! Run: `cd appliance/fuzz && cargo +nightly-2026-08-05 fuzz run tls_hello`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nodus::proxy::hello::{HelloReader, MAX_HELLO, Progress};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, the rest is the stream.
    let Some((&step, stream)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let whole = HelloReader::new().push(stream);
    let mut pieces = HelloReader::new();
    let mut last = Ok(Progress::NeedMore);
    for chunk in stream.chunks(step) {
        last = pieces.push(chunk);
        match &last {
            Ok(Progress::NeedMore) => {
                // Still reading: bounded, record headers included.
                assert!(pieces.received().len() <= 3 * MAX_HELLO + 5);
            }
            _ => break,
        }
    }
    // However the bytes are cut, the answer is the one read whole.
    assert_eq!(last, whole);
});
