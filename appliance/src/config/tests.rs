use super::*;

fn parse(text: &str) -> Result<Config, String> {
    Config::parse(text, &Source::File("/etc/nodus/nodus.toml".into())).map_err(|e| e.to_string())
}

#[test]
fn embedded_defaults_equal_typed_defaults() {
    assert_eq!(
        Config::parse(EMBEDDED_DEFAULTS, &Source::Embedded).expect("embedded defaults parse"),
        Config::default()
    );
}

#[test]
fn empty_file_is_all_defaults() {
    assert_eq!(parse("").expect("empty parses"), Config::default());
}

#[test]
fn unknown_key_names_file_key_and_line() {
    let err = parse("[daemon]\nworker_threads = 2\nworkers = 4\n").unwrap_err();
    assert!(err.starts_with("config /etc/nodus/nodus.toml: "), "{err}");
    assert!(err.contains("daemon.workers"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("unknown field `workers`"), "{err}");
    assert!(!err.contains('\n'), "one line: {err}");
}

#[test]
fn unknown_section_is_an_error() {
    let err = parse("[fileserverr]\nroot = \"/srv\"\n").unwrap_err();
    assert!(err.contains("unknown field `fileserverr`"), "{err}");
}

#[test]
fn wrong_type_names_key() {
    let err = parse("[daemon]\nstop_timeout_ms = \"soon\"\n").unwrap_err();
    assert!(err.contains("key daemon.stop_timeout_ms"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

#[test]
fn bad_enum_value_names_key() {
    let err = parse("[log]\nlevel = \"loud\"\n").unwrap_err();
    assert!(err.contains("key log.level"), "{err}");
    assert!(err.contains("loud"), "{err}");
}

#[test]
fn syntax_error_has_a_line() {
    let err = parse("[daemon\n").unwrap_err();
    assert!(err.contains("line 1"), "{err}");
}

#[test]
fn range_checks_name_key() {
    let err = parse("[daemon]\nstop_timeout_ms = 0\n").unwrap_err();
    assert!(
        err.contains("key daemon.stop_timeout_ms: must be between"),
        "{err}"
    );
    let err = parse("[control]\nsocket = \"relative.sock\"\n").unwrap_err();
    assert!(
        err.contains("key control.socket: must be an absolute path"),
        "{err}"
    );
}

#[test]
fn missing_explicit_file_is_an_error() {
    let err = Config::resolve(Some(Path::new("/nonexistent/nodus.toml"))).unwrap_err();
    assert!(err.to_string().contains("/nonexistent/nodus.toml"));
}

#[test]
fn document_keys_name_real_keys_and_never_a_local_only_section() {
    for (entry, why) in [
        ("daemon", "local-only"),
        ("profile.name", "local-only"),
        ("fleet", "local-only"),
        ("fileserver.docroott", "names no config section or key"),
        ("nosuch", "names no config section or key"),
    ] {
        let err = parse(&format!(
            "[fleet]\ndocument_keys = [\"log\", \"{entry}\"]\n"
        ))
        .unwrap_err();
        assert!(
            err.contains("key fleet.document_keys[1]") && err.contains(why),
            "{entry}: {err}"
        );
    }
    let c = parse("[fleet]\ndocument_keys = [\"fileserver\", \"log.level\"]\n").unwrap();
    assert!(c.fleet.document_may_set("fileserver", "docroot"));
    assert!(c.fleet.document_may_set("log", "level"));
    assert!(!c.fleet.document_may_set("log", "target"));
    assert!(!c.fleet.document_may_set("proccache", "capacity"));
    // The defaults tune, they do not widen what the board reads or serves.
    let d = Config::default().fleet;
    assert!(d.document_may_set("fileserver", "max_connections"));
    assert!(d.document_may_set("proccache", "capacity"));
    for (section, key) in [
        ("fileserver", "docroot"),
        ("fileserver", "symlinks_outside"),
        ("log", "syslog_socket"),
        ("daemon", "worker_threads"),
    ] {
        assert!(!d.document_may_set(section, key), "{section}.{key}");
    }
}
