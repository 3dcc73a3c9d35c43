use std::{fs, os::unix::fs::FileExt};

use super::*;

fn spool_in(dir: &tempfile::TempDir, max: u64) -> Spool {
    Spool::open(&dir.path().join("t.spool"), max).expect("open spool")
}

fn drain(s: &mut Spool) -> Vec<String> {
    std::iter::from_fn(|| s.next_record().expect("read"))
        .map(|(_, b)| String::from_utf8(b).expect("utf-8"))
        .collect()
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("temp dir")
}

#[test]
fn records_come_back_in_order_after_a_reopen() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    for i in 0..5 {
        assert!(s.append(format!("report {i}").as_bytes()).unwrap());
    }
    s.sync().unwrap();
    drop(s);
    let mut s = spool_in(&d, 1 << 16);
    assert_eq!(s.records(), 5);
    assert_eq!(s.discarded_bytes, 0);
    assert_eq!(
        drain(&mut s),
        (0..5).map(|i| format!("report {i}")).collect::<Vec<_>>()
    );
}

#[test]
fn acknowledged_records_are_not_sent_again_after_a_reopen() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    for i in 0..4 {
        s.append(format!("r{i}").as_bytes()).unwrap();
    }
    let (_, first) = s.next_record().unwrap().unwrap();
    let (second_end, _) = s.next_record().unwrap().unwrap();
    assert_eq!(first, b"r0");
    s.consume_to(second_end).unwrap();
    assert_eq!(s.records(), 2);
    drop(s);
    let mut s = spool_in(&d, 1 << 16);
    assert_eq!(drain(&mut s), ["r2", "r3"]);
}

#[test]
fn rewind_hands_out_unacknowledged_records_again() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    for i in 0..3 {
        s.append(format!("r{i}").as_bytes()).unwrap();
    }
    let (end, _) = s.next_record().unwrap().unwrap();
    s.next_record().unwrap();
    s.consume_to(end).unwrap();
    s.rewind();
    assert_eq!(drain(&mut s), ["r1", "r2"]);
}

#[test]
fn a_fully_acknowledged_spool_shrinks_to_its_header() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    s.append(&[7; 500]).unwrap();
    let (end, _) = s.next_record().unwrap().unwrap();
    s.consume_to(end).unwrap();
    assert_eq!(s.records(), 0);
    assert_eq!(fs::metadata(s.path()).unwrap().len(), HEADER);
    assert!(!s.has_unsent());
}

#[test]
fn the_cap_is_never_exceeded_and_a_record_that_does_not_fit_is_refused() {
    let d = dir();
    let mut s = spool_in(&d, 4096);
    let mut stored = 0;
    while s.append(&[1; 100]).unwrap() {
        stored += 1;
    }
    assert_eq!(stored, (4096 - HEADER) / (RECORD_HEAD + 100));
    assert!(fs::metadata(s.path()).unwrap().len() <= 4096);
    assert_eq!(s.records() as u64, stored);
}

#[test]
fn acknowledged_space_is_reused_by_compaction() {
    let d = dir();
    let mut s = spool_in(&d, 4096);
    while s.append(b"old report, acknowledged").unwrap() {}
    let before = s.records();
    // The broker acknowledges half: their space comes back on the next
    // append of the same size, which did not fit before.
    let mut end = None;
    for _ in 0..before / 2 {
        end = s.next_record().unwrap().map(|r| r.0);
    }
    s.consume_to(end.unwrap()).unwrap();
    assert!(s.append(b"new report after compact").unwrap());
    let live = before - before / 2 + 1;
    assert_eq!(s.records(), live);
    // Compacted: the live records now start right after the header.
    let record = RECORD_HEAD + 24;
    assert_eq!(
        fs::metadata(s.path()).unwrap().len(),
        HEADER + live as u64 * record
    );
    s.rewind();
    let all = drain(&mut s);
    assert_eq!(
        all.last().map(String::as_str),
        Some("new report after compact")
    );
    assert_eq!(all.len(), live);
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, SPOOL_MODE, "compaction kept the spool's mode");
    drop(s);
    // The compacted file is what a restart finds.
    let mut s = spool_in(&d, 4096);
    assert_eq!(drain(&mut s).len(), live);
}

#[test]
fn a_record_torn_by_a_power_cut_is_cut_away_and_counted() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    s.append(b"whole").unwrap();
    s.append(b"also whole").unwrap();
    let path = s.path().to_owned();
    drop(s);
    // Half a record: its length says 100 bytes, 3 are there.
    let f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut torn = 100u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0, 0, 0, 0, 1, 2, 3]);
    f.write_all_at(&torn, len).unwrap();
    let mut s = spool_in(&d, 1 << 16);
    assert_eq!(s.discarded_bytes, torn.len() as u64);
    assert_eq!(drain(&mut s), ["whole", "also whole"]);
    // And appends go on from the last whole record.
    s.append(b"after").unwrap();
    s.rewind();
    assert_eq!(drain(&mut s), ["whole", "also whole", "after"]);
}

#[test]
fn a_damaged_record_ends_the_spool_where_it_starts() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    s.append(b"first").unwrap();
    s.append(b"second").unwrap();
    s.append(b"third").unwrap();
    let path = s.path().to_owned();
    drop(s);
    // Flip a payload byte of "second": its CRC no longer matches.
    let f = fs::OpenOptions::new().write(true).open(&path).unwrap();
    let second_payload = HEADER + RECORD_HEAD + 5 + RECORD_HEAD;
    f.write_all_at(b"X", second_payload).unwrap();
    let mut s = spool_in(&d, 1 << 16);
    assert_eq!(drain(&mut s), ["first"]);
    assert!(s.discarded_bytes > 0);
}

#[test]
fn a_file_that_is_not_a_spool_is_replaced_and_counted() {
    let d = dir();
    let path = d.path().join("t.spool");
    fs::write(&path, b"something else entirely").unwrap();
    let mut s = spool_in(&d, 1 << 16);
    assert_eq!(s.discarded_bytes, 23);
    assert_eq!(s.records(), 0);
    assert!(s.append(b"fresh").unwrap());
    assert_eq!(drain(&mut s), ["fresh"]);
}

#[test]
fn an_empty_record_is_never_written_nor_trusted() {
    let d = dir();
    let mut s = spool_in(&d, 1 << 16);
    assert!(!s.append(b"").unwrap(), "an empty payload is refused");
    s.append(b"kept").unwrap();
    let path = s.path().to_owned();
    drop(s);
    // A zeroed length (a block of flash that reads back as zeros) with a
    // matching CRC of nothing is damage, not an empty report.
    let f = fs::OpenOptions::new().append(true).open(&path).unwrap();
    let len = f.metadata().unwrap().len();
    let mut zero = 0u32.to_le_bytes().to_vec();
    zero.extend_from_slice(&crc32fast::hash(b"").to_le_bytes());
    f.write_all_at(&zero, len).unwrap();
    let mut s = spool_in(&d, 1 << 16);
    assert_eq!(s.discarded_bytes, RECORD_HEAD);
    assert_eq!(drain(&mut s), ["kept"]);
}
