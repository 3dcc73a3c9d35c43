//! Fuzzes the fleet config document check (`config/desired` payloads come
//! from the broker): it never panics, and with a trusted key the first
//! bytes decide only the payload, so a document `sign` makes from fuzzed
//! text always verifies back to what was signed.
//! Run: `cd appliance/fuzz && cargo +nightly-2026-08-05 fuzz run config_document`.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;
use nodus::fleet::document;

fuzz_target!(|data: &[u8]| {
    let key = SigningKey::from_bytes(&[7; 32]);
    let trusted = [key.verifying_key()];
    // Hostile bytes as they come off the wire.
    let _ = document::verify(data, &trusted, 65_536);
    // Hostile text, signed by the fleet: whatever `sign` accepts verifies.
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(signed) = document::sign(&key, text)
    {
        let doc = document::verify(signed.as_bytes(), &trusted, usize::MAX)
            .expect("a document nodus signed must verify");
        assert_eq!(doc.text, signed);
    }
});
