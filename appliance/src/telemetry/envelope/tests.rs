use super::*;

const BOOT_ID: &str = "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b";

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|n| (*n).to_owned()).collect()
}

fn boot_id() -> [u8; 16] {
    parse_boot_id(BOOT_ID).expect("test boot id parses")
}

/// A small report with every kind of value and every health.
fn report() -> Report {
    Report {
        boot_id: boot_id(),
        seq: 41,
        unix_ms: 1_795_000_000_123,
        uptime_ms: 86_400_000,
        rss_bytes: 11 << 20,
        dropped_total: 3,
        components: vec![
            ComponentSample {
                name: "proccache".into(),
                health: 0,
                reason: None,
                schema: Schema::id_of("proccache", &names(&["drops", "mode", "rate"])),
                values: vec![
                    Value::Counter(u64::MAX),
                    Value::Text("events".into()),
                    Value::Float(1824.5),
                ],
            },
            ComponentSample {
                name: "fileserver".into(),
                health: 1,
                reason: Some("tc classifier refused on eth1".into()),
                schema: Schema::id_of("fileserver", &names(&["connections_open"])),
                values: vec![Value::Gauge(-1)],
            },
            ComponentSample {
                name: "fleet".into(),
                health: 2,
                reason: Some("not started".into()),
                schema: Schema::id_of("fleet", &[]),
                values: vec![],
            },
        ],
    }
}

fn schema() -> Schema {
    Schema::new("proccache", names(&["drops", "mode", "rate"]))
}

/// Frames `body` as a message of `kind` with this build's header.
fn framed(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![MAGIC, VERSION, kind];
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn report_round_trips() {
    let r = report();
    assert_eq!(decode(&r.encode()), Ok(Message::Report(r)));
}

#[test]
fn schema_round_trips() {
    let s = schema();
    assert_eq!(decode(&s.encode()), Ok(Message::Schema(s)));
}

#[test]
fn empty_report_round_trips() {
    let r = Report {
        components: vec![],
        ..report()
    };
    assert_eq!(decode(&r.encode()), Ok(Message::Report(r)));
}

#[test]
fn header_is_magic_version_kind() {
    let r = report().encode();
    assert_eq!(r[..3], [0x4e, VERSION, 1]);
    let s = schema().encode();
    assert_eq!(s[..3], [0x4e, VERSION, 2]);
    assert_eq!(MAGIC, b'N');
    assert!(r.len() > 3 && s.len() > 3, "a body follows the header");
}

#[test]
fn shorter_than_the_header_is_truncated() {
    assert_eq!(decode(&[]), Err(DecodeError::Truncated(0)));
    assert_eq!(decode(&[MAGIC]), Err(DecodeError::Truncated(1)));
    assert_eq!(decode(&[MAGIC, VERSION]), Err(DecodeError::Truncated(2)));
}

#[test]
fn wrong_magic_is_refused_first() {
    let mut bytes = report().encode();
    bytes[0] = b'{';
    assert_eq!(decode(&bytes), Err(DecodeError::Magic(b'{')));
    // The magic is checked before version and kind.
    assert_eq!(decode(&[0, 0, 99]), Err(DecodeError::Magic(0)));
    let err = DecodeError::Magic(0x7b).to_string();
    assert!(err.contains("0x7b") && err.contains("0x4e"), "{err}");
}

#[test]
fn version_zero_is_refused() {
    let mut bytes = report().encode();
    bytes[1] = 0;
    assert_eq!(decode(&bytes), Err(DecodeError::Version));
}

#[test]
fn unknown_kind_is_refused() {
    let mut bytes = report().encode();
    for kind in [0, 3, 255] {
        bytes[2] = kind;
        assert_eq!(decode(&bytes), Err(DecodeError::Kind(kind)));
    }
}

#[test]
fn malformed_bodies_are_body_errors() {
    let is_body = |bytes: &[u8]| matches!(decode(bytes), Err(DecodeError::Body(_)));
    // Header only: no body at all.
    assert!(is_body(&framed(KIND_REPORT, &[])));
    assert!(is_body(&framed(KIND_SCHEMA, &[])));
    // A report cut short in its last value.
    let full = report().encode();
    for len in [4, full.len() / 2, full.len() - 1] {
        assert!(is_body(&full[..len]), "cut at {len} of {}", full.len());
    }
    // A schema whose component name is not UTF-8.
    assert!(is_body(&framed(KIND_SCHEMA, &[2, 0xff, 0xfe, 0, 0])));
    // A value whose variant no version defines.
    let mut body = postcard::to_allocvec(&Report {
        components: vec![ComponentSample {
            values: vec![Value::Counter(1)],
            ..report().components[0].clone()
        }],
        ..report()
    })
    .expect("serializes");
    // The last two bytes are the value: variant 0 (Counter), then 1.
    let variant = body.len() - 2;
    assert_eq!(body[variant..], [0, 1]);
    body[variant] = 9;
    assert!(is_body(&framed(KIND_REPORT, &body)));
}

#[test]
fn fields_appended_by_a_later_version_are_ignored() {
    // A later version appends fields after the last one this build knows.
    let r = report();
    let mut bytes = r.encode();
    let later = postcard::to_allocvec(&(7u32, "a later field".to_owned(), vec![1u64, 2, 3]))
        .expect("serializes");
    bytes.extend_from_slice(&later);
    assert_eq!(decode(&bytes), Ok(Message::Report(r)));

    let s = schema();
    let mut bytes = s.encode();
    bytes.extend_from_slice(&later);
    assert_eq!(decode(&bytes), Ok(Message::Schema(s)));
}

#[test]
fn a_later_envelope_version_with_a_known_kind_decodes() {
    let r = report();
    for version in [VERSION + 1, 255] {
        let mut bytes = r.encode();
        bytes[1] = version;
        assert_eq!(decode(&bytes), Ok(Message::Report(r.clone())), "v{version}");
    }
    let s = schema();
    let mut bytes = s.encode();
    bytes[1] = VERSION + 1;
    bytes.push(0x2a); // and an appended field
    assert_eq!(decode(&bytes), Ok(Message::Schema(s)));
}

#[test]
fn schema_id_depends_on_component_and_every_name() {
    let base = Schema::id_of("fileserver", &names(&["requests", "bytes_sent"]));
    assert_eq!(
        base,
        Schema::id_of("fileserver", &names(&["requests", "bytes_sent"])),
        "deterministic"
    );
    for (component, list) in [
        ("fileserver", &["requests", "bytes_received"][..]),
        ("fileserver", &["bytes_sent", "requests"]),
        ("fileserver", &["requests"]),
        ("fileserver", &["requests", "bytes_sent", "hot_files"]),
        ("proccache", &["requests", "bytes_sent"]),
        // NUL separation: moving a boundary changes the id.
        ("fileserver", &["request", "sbytes_sent"]),
        ("fileserverrequests", &["bytes_sent"]),
    ] {
        assert_ne!(
            base,
            Schema::id_of(component, &names(list)),
            "{component} {list:?}"
        );
    }
}

#[test]
fn schema_id_is_fnv1a_and_stable_across_builds() {
    // FNV-1a 32 of the single byte NUL (the published test vector).
    assert_eq!(Schema::id_of("", &[]), 0x050c_5d1f);
    // "proccache\0drops\0events\0", computed independently.
    assert_eq!(
        Schema::id_of("proccache", &names(&["drops", "events"])),
        0x7728_1a38
    );
    let s = Schema::new("proccache", names(&["drops", "events"]));
    assert_eq!(s.id, 0x7728_1a38);
    assert_eq!(s.component, "proccache");
}

#[test]
fn resolve_names_values_from_the_schema() {
    let r = report();
    let s = schema();
    let named = NamedReport::resolve("board-7", &r, |c, id| {
        (c == s.component && id == s.id).then_some(&s)
    });
    assert_eq!(named.device, "board-7");
    assert_eq!(named.boot_id, BOOT_ID);
    assert_eq!(
        (
            named.seq,
            named.unix_ms,
            named.uptime_ms,
            named.rss_bytes,
            named.dropped_total
        ),
        (r.seq, r.unix_ms, r.uptime_ms, r.rss_bytes, r.dropped_total)
    );
    let pc = &named.components[0];
    assert_eq!(
        (pc.name.as_str(), pc.health, &pc.reason),
        ("proccache", "healthy", &None)
    );
    assert_eq!(
        serde_json::to_value(&pc.stats).expect("json"),
        serde_json::json!({"drops": u64::MAX, "mode": "events", "rate": 1824.5})
    );
    let fs = &named.components[1];
    assert_eq!(fs.health, "degraded");
    assert_eq!(fs.reason.as_deref(), Some("tc classifier refused on eth1"));
    assert_eq!(named.components[2].health, "unavailable");
}

#[test]
fn resolve_falls_back_to_indexes_without_a_schema() {
    let r = report();
    let named = NamedReport::resolve("board-7", &r, |_, _| None);
    let keys: Vec<&str> = named.components[0]
        .stats
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["#0", "#1", "#2"]);
    assert_eq!(named.components[0].stats["#1"], "events");
    assert_eq!(named.components[1].stats["#0"], serde_json::Value::from(-1));
}

#[test]
fn resolve_names_only_what_a_short_schema_covers() {
    let r = report();
    let short = Schema::new("proccache", names(&["drops"]));
    let named = NamedReport::resolve("b", &r, |c, _| (c == "proccache").then_some(&short));
    let keys: Vec<&str> = named.components[0]
        .stats
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["#1", "#2", "drops"]);
}

#[test]
fn named_report_json_omits_a_missing_reason() {
    let named = NamedReport::resolve("b", &report(), |_, _| None);
    let json = serde_json::to_value(&named).expect("json");
    assert!(json["components"][0].get("reason").is_none(), "{json}");
    assert_eq!(
        json["components"][1]["reason"],
        "tc classifier refused on eth1"
    );
    assert_eq!(json["boot_id"], BOOT_ID);
}

#[test]
fn health_codes_and_names_agree() {
    for h in [
        Health::Healthy,
        Health::Degraded("x".into()),
        Health::Unavailable("y".into()),
    ] {
        assert_eq!(health_name(health_code(&h)), h.state());
    }
    assert_eq!(health_name(3), "unknown");
}

#[test]
fn boot_id_round_trips() {
    let id = boot_id();
    assert_eq!(
        id,
        [
            0x6f, 0x1c, 0x2a, 0x9e, 0x3b, 0x4d, 0x4e, 0x5f, 0x8a, 0x7b, 0x0c, 0x1d, 0x2e, 0x3f,
            0x4a, 0x5b
        ]
    );
    assert_eq!(format_boot_id(&id), BOOT_ID);
    let all: [u8; 16] = std::array::from_fn(|i| (i as u8) * 17);
    assert_eq!(parse_boot_id(&format_boot_id(&all)), Some(all));
    assert_eq!(
        format_boot_id(&[0; 16]),
        "00000000-0000-0000-0000-000000000000"
    );
}

#[test]
fn boot_id_parses_as_proc_writes_it() {
    // /proc/sys/kernel/random/boot_id ends with a newline.
    assert_eq!(parse_boot_id(&format!("{BOOT_ID}\n")), Some(boot_id()));
    assert_eq!(
        parse_boot_id(&BOOT_ID.to_uppercase()),
        Some(boot_id()),
        "hex digits in either case"
    );
}

#[test]
fn bad_boot_ids_are_refused() {
    for bad in [
        "",
        "\n",
        "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5", // one digit short
        "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5b0", // one digit long
        "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4a5g", // not hex
        "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4aé", // 32 bytes, a pair not hex
        "6f1c2a9e-3b4d-4e5f-8a7b-0c1d2e3f4é5", // 32 bytes, a pair splits a char
        "6f1c2a9e 3b4d 4e5f 8a7b 0c1d2e3f4a5b", // spaces inside
    ] {
        assert_eq!(parse_boot_id(bad), None, "{bad:?}");
    }
}

#[test]
fn values_are_plain_json() {
    use serde_json::json;
    assert_eq!(Value::Counter(u64::MAX).to_json(), json!(u64::MAX));
    assert_eq!(Value::Gauge(i64::MIN).to_json(), json!(i64::MIN));
    assert_eq!(Value::Gauge(-3).to_json(), json!(-3));
    assert_eq!(Value::Float(2.5).to_json(), json!(2.5));
    assert_eq!(Value::Text("fifo:1".into()).to_json(), json!("fifo:1"));
    // JSON has no NaN or infinity.
    assert_eq!(Value::Float(f32::NAN).to_json(), serde_json::Value::Null);
    assert_eq!(
        Value::Float(f32::INFINITY).to_json(),
        serde_json::Value::Null
    );
}

#[test]
fn stats_become_values_with_floats_narrowed() {
    assert_eq!(Value::from(&Stat::Counter(7)), Value::Counter(7));
    assert_eq!(Value::from(&Stat::Gauge(-7)), Value::Gauge(-7));
    assert_eq!(Value::from(&Stat::Float(0.1)), Value::Float(0.1f32));
    assert_eq!(
        Value::from(&Stat::Text("events".into())),
        Value::Text("events".into())
    );
}

/// `n` stats of the kinds and magnitudes a running board reports: mostly
/// counters in the thousands to billions, a few gauges, rates and labels.
fn realistic_component(name: &str, n: usize, salt: u64) -> (Schema, ComponentSample) {
    let stat_names = [
        "requests",
        "bytes_sent",
        "connections_open",
        "connections_accepted",
        "latency_p99_us",
        "cache_hits",
        "cache_misses",
        "events_per_s",
        "mode",
        "reconciliations",
        "capacity_used_pct",
        "drops",
    ];
    let names: Vec<String> = stat_names[..n].iter().map(|s| (*s).to_owned()).collect();
    let values = (0..n as u64)
        .map(|i| match i % 6 {
            0 | 3 => Value::Counter(1_000 + salt * 7_919 + i * 104_729),
            1 => Value::Counter(48_318_216_704 + salt * i),
            2 => Value::Gauge(12 + salt as i64 + i as i64),
            4 => Value::Float(312.75 + salt as f32),
            _ => Value::Text(if i < 6 { "events" } else { "fifo:1" }.to_owned()),
        })
        .collect();
    let schema = Schema::new(name, names);
    let sample = ComponentSample {
        name: name.to_owned(),
        health: 0,
        reason: None,
        schema: schema.id,
        values,
    };
    (schema, sample)
}

#[test]
fn a_realistic_report_is_at_most_a_quarter_of_its_json() {
    let (schemas, components): (Vec<Schema>, Vec<ComponentSample>) =
        ["profile", "proccache", "fileserver", "fleet"]
            .iter()
            .zip(1..)
            .map(|(name, salt)| realistic_component(name, 10, salt))
            .unzip();
    let r = Report {
        components,
        ..report()
    };
    let wire = r.encode();
    let named = NamedReport::resolve("7f3a9c0e5b2d4e6f8a1b3c5d7e9f0a2b", &r, |c, id| {
        schemas.iter().find(|s| s.component == c && s.id == id)
    });
    let json = serde_json::to_vec(&named).expect("json");
    assert!(
        named.components.iter().all(|c| !c.stats.contains_key("#0")),
        "every schema resolved"
    );
    assert!(
        wire.len() * 4 <= json.len(),
        "{} bytes on the wire vs {} bytes of JSON ({:.1}%)",
        wire.len(),
        json.len(),
        100.0 * wire.len() as f64 / json.len() as f64
    );
    assert_eq!(decode(&wire), Ok(Message::Report(r)));
}

/// Deterministic mutations (flips, cuts, growth) of real messages: the
/// decoder never panics, and whatever it accepts re-encodes canonically.
/// `fuzz/fuzz_targets/telemetry_decode.rs` explores further.
#[test]
fn never_panics_on_mutated_messages() {
    let seeds = [report().encode(), schema().encode()];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..20_000 {
        let mut bytes = seeds[i % seeds.len()].clone();
        for _ in 0..1 + next() % 4 {
            let at = (next() as usize) % bytes.len().max(1);
            match next() % 4 {
                0 if !bytes.is_empty() => bytes[at] ^= 1 << (next() % 8),
                1 => bytes.truncate(at),
                2 => bytes.insert(at.min(bytes.len()), next() as u8),
                _ if !bytes.is_empty() => bytes[at] = next() as u8,
                _ => {}
            }
        }
        let again = match decode(&bytes) {
            Ok(Message::Report(r)) => r.encode(),
            Ok(Message::Schema(s)) => s.encode(),
            Err(_) => continue,
        };
        let third = match decode(&again) {
            Ok(Message::Report(r)) => r.encode(),
            Ok(Message::Schema(s)) => s.encode(),
            Err(e) => panic!("re-encoded message does not decode: {e}"),
        };
        assert_eq!(again, third);
    }
}
