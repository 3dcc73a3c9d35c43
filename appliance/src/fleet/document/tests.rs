use std::process::Command;

use super::*;

/// `fleet.max_document_bytes`'s default.
const MAX: usize = 65536;

const PAYLOAD: &str = "version = 7\n\
                       target = \"group:lab\"\n\
                       \n\
                       [fileserver]\n\
                       max_connections = 2000\n\
                       \n\
                       [proccache]\n\
                       capacity = 40000\n";

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// `payload` with a valid signature line, whatever the payload says: for
/// documents `sign` would refuse to make.
fn signed_raw(key: &SigningKey, payload: &str) -> String {
    let signature = key.sign(payload.as_bytes());
    format!(
        "{payload}{SIGNATURE_PREFIX}{}\n",
        BASE64.encode(signature.to_bytes())
    )
}

fn verify_with(key: &SigningKey, text: &str) -> Result<Document, Refusal> {
    verify(text.as_bytes(), &[key.verifying_key()], MAX)
}

/// The reason a validly signed `payload` is refused as malformed, checking
/// that `sign` refuses it for the same reason.
fn malformed(payload: &str) -> String {
    let k = key(1);
    let refusal = verify_with(&k, &signed_raw(&k, payload)).unwrap_err();
    assert_eq!(
        sign(&k, payload).as_ref().err(),
        Some(&refusal),
        "{payload:?}"
    );
    match refusal {
        Refusal::Malformed(why) => why,
        other => panic!("{payload:?}: {other:?}, expected Malformed"),
    }
}

#[test]
fn sign_then_verify_keeps_everything() {
    let k = key(1);
    let text = sign(&k, PAYLOAD).expect("signs");
    assert!(text.starts_with(PAYLOAD), "{text}");
    let last = text.lines().last().expect("lines");
    assert!(last.starts_with(SIGNATURE_PREFIX), "{last}");
    assert!(text.ends_with('\n'));

    let doc = verify_with(&k, &text).expect("verifies");
    assert_eq!(doc.version, 7);
    assert_eq!(doc.scope, Scope::Group);
    assert_eq!(doc.target, "lab");
    assert_eq!(doc.text, text);
    let expected: toml::Table =
        "[fileserver]\nmax_connections = 2000\n[proccache]\ncapacity = 40000\n"
            .parse()
            .expect("toml");
    assert_eq!(doc.overlay, expected, "version and target are not overlay");
}

#[test]
fn device_documents_name_their_device() {
    let k = key(1);
    let text = sign(&k, "version = 1\ntarget = \"device:7f3a9c0e\"\n").expect("signs");
    let doc = verify_with(&k, &text).expect("verifies");
    assert_eq!(
        (doc.scope, doc.target.as_str(), doc.version),
        (Scope::Device, "7f3a9c0e", 1)
    );
    assert!(doc.overlay.is_empty());
    assert_eq!(Scope::Device.to_string(), "device");
    assert_eq!(Scope::Group.to_string(), "group");
}

#[test]
fn sign_ends_a_payload_without_a_final_newline() {
    let k = key(1);
    let payload = PAYLOAD.trim_end();
    let text = sign(&k, payload).expect("signs");
    assert!(
        text.starts_with(&format!("{payload}\n{SIGNATURE_PREFIX}")),
        "{text}"
    );
    assert_eq!(verify_with(&k, &text).expect("verifies").version, 7);
}

#[test]
fn the_document_stays_valid_toml() {
    let text = sign(&key(1), PAYLOAD).expect("signs");
    let table: toml::Table = text.parse().expect("the signature line is a comment");
    assert_eq!(table["version"].as_integer(), Some(7));
}

#[test]
fn oversized_is_refused_before_anything_else() {
    let k = key(1);
    let text = sign(&k, PAYLOAD).expect("signs");
    let len = text.len();
    assert!(
        verify(text.as_bytes(), &[k.verifying_key()], len).is_ok(),
        "at the limit"
    );
    assert_eq!(
        verify(text.as_bytes(), &[k.verifying_key()], len - 1),
        Err(Refusal::Oversized { len, max: len - 1 })
    );
    // Even garbage, unsigned and with no trusted key, is refused for size.
    assert_eq!(
        verify(&[0xff; 100], &[], 99),
        Err(Refusal::Oversized { len: 100, max: 99 })
    );
}

#[test]
fn no_signature_line_is_unsigned() {
    let k = key(1);
    assert_eq!(verify_with(&k, PAYLOAD), Err(Refusal::Unsigned));
    assert_eq!(verify_with(&k, ""), Err(Refusal::Unsigned));
    assert_eq!(verify_with(&k, "version = 7"), Err(Refusal::Unsigned));
    // The signature must be the last line: nothing may follow it.
    let text = sign(&k, PAYLOAD).expect("signs");
    assert_eq!(
        verify_with(&k, &format!("{text}[profile]\n")),
        Err(Refusal::Unsigned)
    );
    // Another scheme's line is no signature.
    let other = text.replace("ed25519 ", "rsa ");
    assert_eq!(verify_with(&k, &other), Err(Refusal::Unsigned));
}

#[test]
fn an_altered_byte_breaks_the_signature() {
    let k = key(1);
    let text = sign(&k, PAYLOAD).expect("signs");
    let altered = text.replacen("2000", "2001", 1);
    assert_ne!(altered, text);
    assert!(matches!(
        verify_with(&k, &altered),
        Err(Refusal::BadSignature(_))
    ));
    // A comment is a byte like any other.
    let commented = format!("# harmless?\n{text}");
    assert!(matches!(
        verify_with(&k, &commented),
        Err(Refusal::BadSignature(_))
    ));
}

#[test]
fn a_signature_by_an_untrusted_key_is_bad() {
    let text = sign(&key(1), PAYLOAD).expect("signs");
    let err = verify(
        text.as_bytes(),
        &[key(2).verifying_key(), key(3).verifying_key()],
        MAX,
    )
    .unwrap_err();
    let Refusal::BadSignature(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.contains("none of the 2 trusted keys"), "{why}");
}

#[test]
fn a_signature_that_is_not_one_is_bad() {
    let k = key(1);
    for garbage in [
        "!!! not base64 !!!",
        "",
        // Base64, but 32 bytes, not 64.
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    ] {
        let text = format!("{PAYLOAD}{SIGNATURE_PREFIX}{garbage}\n");
        assert_eq!(
            verify_with(&k, &text),
            Err(Refusal::BadSignature(
                "not a base64 Ed25519 signature".into()
            )),
            "{garbage:?}"
        );
    }
}

#[test]
fn no_trusted_keys_means_nothing_verifies() {
    let text = sign(&key(1), PAYLOAD).expect("signs");
    let err = verify(text.as_bytes(), &[], MAX).unwrap_err();
    let Refusal::BadSignature(why) = err else {
        panic!("{err:?}")
    };
    assert!(why.contains("fleet.trusted_keys"), "{why}");
}

#[test]
fn any_trusted_key_may_sign() {
    let trusted = [key(1).verifying_key(), key(2).verifying_key()];
    let text = sign(&key(2), PAYLOAD).expect("signs");
    assert_eq!(
        verify(text.as_bytes(), &trusted, MAX)
            .expect("the second key verifies")
            .version,
        7
    );
}

#[test]
fn not_utf8_is_malformed() {
    let mut bytes = sign(&key(1), PAYLOAD).expect("signs").into_bytes();
    bytes[0] = 0xff;
    assert!(matches!(
        verify(&bytes, &[key(1).verifying_key()], MAX),
        Err(Refusal::Malformed(why)) if why.contains("UTF-8")
    ));
}

#[test]
fn not_toml_is_malformed() {
    malformed("version = 7\ntarget = \"group:lab\"\nthis is not toml\n");
    malformed("[fileserver\n");
}

#[test]
fn version_must_be_a_positive_integer() {
    assert_eq!(malformed("target = \"group:lab\"\n"), "no version");
    for version in ["0", "-1", "\"7\"", "7.0", "true"] {
        assert_eq!(
            malformed(&format!("version = {version}\ntarget = \"group:lab\"\n")),
            "version must be a positive integer",
            "version = {version}"
        );
    }
}

#[test]
fn target_must_be_device_or_group() {
    assert_eq!(malformed("version = 7\n"), "no target");
    assert_eq!(
        malformed("version = 7\ntarget = 7\n"),
        "target must be a string"
    );
    for target in ["lab", "host:lab", "Group:lab", "group"] {
        let why = malformed(&format!("version = 7\ntarget = \"{target}\"\n"));
        assert!(why.contains("is not device:<id> or group:<name>"), "{why}");
    }
}

#[test]
fn top_level_keys_must_be_sections() {
    let why = malformed("version = 7\ntarget = \"group:lab\"\nmax_connections = 2000\n");
    assert!(
        why.contains("'max_connections' is not a config section"),
        "{why}"
    );
}

#[test]
fn fleet_and_control_are_local_only() {
    let k = key(1);
    for (section, payload) in [
        ("fleet", "[fleet]\nbroker = \"mqtts://evil:8883\"\n"),
        ("control", "[control]\nsocket = \"/tmp/c.sock\"\n"),
        // A dotted key makes the same section.
        ("fleet", "fleet.trusted_keys = []\n"),
    ] {
        let payload = format!("version = 7\ntarget = \"group:lab\"\n{payload}");
        let expected = Refusal::LocalOnly(section.into());
        assert_eq!(
            verify_with(&k, &signed_raw(&k, &payload)).err().as_ref(),
            Some(&expected),
            "{payload}"
        );
        assert_eq!(sign(&k, &payload), Err(expected), "sign checks too");
    }
}

#[test]
fn sign_refuses_a_signed_payload() {
    let k = key(1);
    let once = sign(&k, PAYLOAD).expect("signs");
    assert_eq!(
        sign(&k, &once),
        Err(Refusal::Malformed("payload is already signed".into()))
    );
}

#[test]
fn public_keys_are_base64_of_32_bytes() {
    let vk = key(5).verifying_key();
    let b64 = public_key_base64(&vk);
    assert_eq!(parse_public_key(&b64), Ok(vk));
    assert_eq!(parse_public_key(&format!("  {b64}\n")), Ok(vk), "trimmed");
    for len in [0, 31, 33, 64] {
        let err = parse_public_key(&BASE64.encode(vec![7u8; len])).unwrap_err();
        assert!(err.starts_with(&format!("{len} bytes")), "{err}");
    }
    for bad in ["not base64!", "AAAA====", "ü"] {
        let err = parse_public_key(bad).unwrap_err();
        assert!(err.starts_with("not base64"), "{bad:?}: {err}");
    }
}

#[test]
fn key_files_that_are_not_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("missing.pem");
    let err = load_signing_key(&missing).unwrap_err();
    assert!(err.starts_with(&missing.display().to_string()), "{err}");
    assert!(load_public_key_pem(&missing).is_err());

    let junk = dir.path().join("junk.pem");
    std::fs::write(
        &junk,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let err = load_signing_key(&junk).unwrap_err();
    assert!(err.contains("not an Ed25519 private key"), "{err}");
    let err = load_public_key_pem(&junk).unwrap_err();
    assert!(err.contains("not an Ed25519 public key"), "{err}");
}

/// Runs `openssl ARGS` in `dir` and checks it succeeded; `None` when
/// openssl is not installed.
fn try_openssl(dir: &Path, args: &[&str]) -> Option<std::process::Output> {
    match Command::new("openssl").args(args).current_dir(dir).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            Some(out)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("openssl: {e}"),
    }
}

/// [`try_openssl`] once openssl is known to be there.
fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    try_openssl(dir, args).expect("openssl ran before")
}

#[test]
fn openssl_signed_documents_verify_and_keys_interoperate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    if try_openssl(d, &["genpkey", "-algorithm", "ed25519", "-out", "k.pem"]).is_none() {
        eprintln!("openssl not on PATH: interop not checked");
        return;
    }
    std::fs::write(d.join("payload"), PAYLOAD).expect("write payload");
    openssl(
        d,
        &[
            "pkeyutl", "-sign", "-inkey", "k.pem", "-rawin", "-in", "payload", "-out", "sig",
        ],
    );
    let sig = std::fs::read(d.join("sig")).expect("signature");
    assert_eq!(sig.len(), 64);
    let text = format!("{PAYLOAD}{SIGNATURE_PREFIX}{}\n", BASE64.encode(&sig));

    let signing = load_signing_key(&d.join("k.pem")).expect("openssl's PKCS#8 PEM");
    let vk = signing.verifying_key();
    let doc = verify(text.as_bytes(), &[vk], MAX).expect("openssl's signature verifies");
    assert_eq!(
        (doc.version, doc.scope, doc.target.as_str()),
        (7, Scope::Group, "lab")
    );
    // Ed25519 is deterministic: nodus signs the same bytes identically.
    assert_eq!(sign(&signing, PAYLOAD), Ok(text));

    openssl(d, &["pkey", "-in", "k.pem", "-pubout", "-out", "pub.pem"]);
    assert_eq!(load_public_key_pem(&d.join("pub.pem")), Ok(vk));

    // And openssl verifies what nodus signs.
    let payload = "version = 8\ntarget = \"device:7f3a9c0e\"\n";
    let ours = sign(&signing, payload).expect("signs");
    let b64 = ours
        .lines()
        .last()
        .and_then(|l| l.strip_prefix(SIGNATURE_PREFIX))
        .expect("signature line");
    std::fs::write(d.join("payload2"), payload).expect("write");
    std::fs::write(d.join("sig2"), BASE64.decode(b64).expect("base64")).expect("write");
    let out = openssl(
        d,
        &[
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "payload2",
            "-sigfile", "sig2",
        ],
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Deterministic mutations of a signed document: `verify` never panics and
/// never accepts a changed byte. `fuzz/fuzz_targets/config_document.rs`
/// explores further.
#[test]
fn never_panics_and_never_accepts_a_mutated_document() {
    let k = key(3);
    let text = sign(
        &k,
        "version = 4\ntarget = \"group:lab\"\n[fileserver]\nmax_connections = 9\n",
    )
    .unwrap();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..5_000 {
        let mut bytes = text.clone().into_bytes();
        let at = (next() as usize) % bytes.len();
        match next() % 3 {
            0 => bytes[at] ^= 1 << (next() % 8),
            1 => bytes.truncate(at),
            _ => bytes.insert(at, next() as u8),
        }
        if bytes == text.as_bytes() {
            continue;
        }
        if let Ok(doc) = verify(&bytes, &[k.verifying_key()], 65_536) {
            // Only a change after the signature's last byte can still verify
            // (e.g. the final newline); the signed payload is untouched.
            assert!(
                text.starts_with(doc.text.trim_end()),
                "accepted {:?}",
                doc.text
            );
        }
    }
}
