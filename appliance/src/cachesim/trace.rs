//! Access traces in libCacheSim's formats, read the way libCacheSim reads
//! them so both replay the same requests: oracleGeneral (24-byte
//! little-endian records) and csv (1-based columns, a header detected as
//! libCacheSim does). Requests of size 0 are skipped, as libCacheSim does
//! by default. The sizes are kept: a replay counts every object one unit
//! (a page cache) or weighs it by its size (`--weighted`).

use std::{
    io::{self, BufRead, Read},
    path::Path,
};

/// A trace file's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// libCacheSim's oracleGeneral: per request `u32 time, u64 id, u32
    /// size, i64 next access`, little-endian, no header.
    OracleGeneral,
    /// Text, one request per line.
    Csv {
        /// 1-based column of the object id.
        id_column: usize,
        /// 1-based column of the object size (0: none, every size 1).
        size_column: usize,
        /// The field separator.
        delimiter: u8,
    },
}

/// Errors reading a trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The trace file.
        path: String,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An oracleGeneral file whose length is not whole records.
    #[error("{path}: {len} bytes is not a whole number of 24-byte oracleGeneral records")]
    Truncated {
        /// The trace file.
        path: String,
        /// Its length.
        len: u64,
    },
    /// A csv line without the id column.
    #[error("{path}:{line}: no column {column}")]
    MissingColumn {
        /// The trace file.
        path: String,
        /// 1-based line.
        line: usize,
        /// The column asked for.
        column: usize,
    },
}

/// A trace's object ids, in request order.
#[derive(Debug, Default)]
pub struct Trace {
    /// The requests.
    pub ids: Vec<u64>,
    /// Each request's object size (1 where a csv trace has no size column).
    pub sizes: Vec<u32>,
    /// Requests skipped (size 0).
    pub skipped: u64,
    /// csv ids that were not numbers (read as 0, as libCacheSim does).
    pub unparsable_ids: u64,
}

impl Trace {
    /// Distinct objects requested, and the sum of their sizes (each
    /// object's size at its first request).
    pub fn unique(&self) -> (usize, u64) {
        let mut seen = rustc_hash::FxHashSet::default();
        seen.reserve(self.ids.len() / 4);
        let (mut objects, mut bytes) = (0, 0u64);
        for (id, size) in self.ids.iter().zip(&self.sizes) {
            if seen.insert(*id) {
                objects += 1;
                bytes += u64::from(*size);
            }
        }
        (objects, bytes)
    }
}

/// Reads the trace at `path`.
pub fn read(path: &Path, format: Format) -> Result<Trace, TraceError> {
    let io_err = |source| TraceError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io_err)?;
    let reader = io::BufReader::with_capacity(1 << 20, file);
    match format {
        Format::OracleGeneral => {
            let len = std::fs::metadata(path).map_err(io_err)?.len();
            if len % 24 != 0 {
                return Err(TraceError::Truncated {
                    path: path.display().to_string(),
                    len,
                });
            }
            read_oracle(reader, len / 24).map_err(io_err)
        }
        Format::Csv {
            id_column,
            size_column,
            delimiter,
        } => read_csv(reader, path, id_column, size_column, delimiter),
    }
}

/// Writes requests as libCacheSim's oracleGeneral records (what `nodus
/// cache trace --record` saves, so `nodus cache simulate` and libCacheSim
/// replay the board's own accesses). The next-access field is left at -1
/// (unknown), which the policies here and libCacheSim's LRU, ARC, S3-FIFO
/// and SIEVE do not read.
pub struct OracleWriter<W: io::Write> {
    out: W,
    /// Requests written.
    pub written: u64,
}

impl<W: io::Write> OracleWriter<W> {
    /// Writes to `out` (buffer it: one record is 24 bytes).
    pub fn new(out: W) -> Self {
        OracleWriter { out, written: 0 }
    }

    /// One request for object `id` of `size` bytes at `time` (seconds).
    pub fn request(&mut self, time: u32, id: u64, size: u32) -> io::Result<()> {
        let mut rec = [0u8; 24];
        rec[..4].copy_from_slice(&time.to_le_bytes());
        rec[4..12].copy_from_slice(&id.to_le_bytes());
        rec[12..16].copy_from_slice(&size.to_le_bytes());
        rec[16..].copy_from_slice(&(-1i64).to_le_bytes());
        self.out.write_all(&rec)?;
        self.written += 1;
        Ok(())
    }

    /// Flushes and hands back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn read_oracle(mut r: impl Read, records: u64) -> io::Result<Trace> {
    let mut t = Trace {
        ids: Vec::with_capacity(usize::try_from(records).unwrap_or(0)),
        sizes: Vec::with_capacity(usize::try_from(records).unwrap_or(0)),
        ..Trace::default()
    };
    let mut rec = [0u8; 24];
    for _ in 0..records {
        r.read_exact(&mut rec)?;
        let id = u64::from_le_bytes(rec[4..12].try_into().unwrap_or_default());
        let size = u32::from_le_bytes(rec[12..16].try_into().unwrap_or_default());
        if size == 0 {
            t.skipped += 1;
        } else {
            t.ids.push(id);
            t.sizes.push(size);
        }
    }
    Ok(t)
}

/// C's strtoull with base 0 on the leading number: `0x` hex, a leading 0
/// octal, else decimal; None if no digit.
fn c_number(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let end = digits
        .char_indices()
        .find(|(_, c)| !c.is_digit(radix))
        .map_or(digits.len(), |(i, _)| i);
    if end == 0 {
        return if radix == 8 { Some(0) } else { None };
    }
    u64::from_str_radix(&digits[..end], radix).ok()
}

/// libCacheSim's header test: a first line with more letters than digits
/// is a header.
fn looks_like_header(line: &str) -> bool {
    let digits = line.bytes().filter(u8::is_ascii_digit).count();
    let letters = line.bytes().filter(u8::is_ascii_alphabetic).count();
    digits <= letters
}

fn read_csv(
    r: impl BufRead,
    path: &Path,
    id_column: usize,
    size_column: usize,
    delimiter: u8,
) -> Result<Trace, TraceError> {
    let mut t = Trace::default();
    let delimiter = char::from(delimiter);
    for (n, line) in r.lines().enumerate() {
        let line = line.map_err(|source| TraceError::Io {
            path: path.display().to_string(),
            source,
        })?;
        if line.trim().is_empty() || (n == 0 && looks_like_header(&line)) {
            continue;
        }
        let mut id_field = None;
        let mut size_field = None;
        for (i, field) in line.split(delimiter).enumerate() {
            if i + 1 == id_column {
                id_field = Some(field);
            }
            if i + 1 == size_column {
                size_field = Some(field);
            }
        }
        let Some(id_field) = id_field else {
            return Err(TraceError::MissingColumn {
                path: path.display().to_string(),
                line: n + 1,
                column: id_column,
            });
        };
        let size = if size_column > 0 {
            let size = size_field.and_then(c_number).unwrap_or(0);
            if size == 0 {
                t.skipped += 1;
                continue;
            }
            u32::try_from(size).unwrap_or(u32::MAX)
        } else {
            1
        };
        let id = c_number(id_field).unwrap_or_else(|| {
            t.unparsable_ids += 1;
            0
        });
        t.ids.push(id);
        t.sizes.push(size);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_records_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.oracleGeneral");
        let mut w = OracleWriter::new(std::fs::File::create(&path).unwrap());
        for (t, id) in [(0, 7u64), (1, 9), (1, 7)] {
            w.request(t, id, 4096).unwrap();
        }
        w.request(2, 5, 0).unwrap(); // size 0: skipped on reading
        assert_eq!(w.written, 4);
        w.finish().unwrap();
        let t = read(&path, Format::OracleGeneral).unwrap();
        assert_eq!(t.ids, [7, 9, 7]);
        assert_eq!(t.skipped, 1);
    }

    #[test]
    fn ids_parse_as_c_does() {
        assert_eq!(c_number("42"), Some(42));
        assert_eq!(c_number("010"), Some(8));
        assert_eq!(c_number("0x10"), Some(16));
        assert_eq!(c_number("0"), Some(0));
        assert_eq!(c_number("12abc"), Some(12));
        assert_eq!(c_number("abc"), None);
    }

    #[test]
    fn headers_are_told_from_data() {
        assert!(looks_like_header("time,obj_id,obj_size"));
        assert!(!looks_like_header("1,010,5"));
    }

    #[test]
    fn oracle_records_of_size_zero_are_skipped() {
        let mut bytes = vec![];
        for (id, size) in [(7u64, 4000u32), (8, 0), (7, 1)] {
            bytes.extend_from_slice(&1u32.to_le_bytes());
            bytes.extend_from_slice(&id.to_le_bytes());
            bytes.extend_from_slice(&size.to_le_bytes());
            bytes.extend_from_slice(&(-1i64).to_le_bytes());
        }
        let t = read_oracle(&bytes[..], 3).unwrap();
        assert_eq!(t.ids, [7, 7]);
        assert_eq!(t.skipped, 1);
    }
}
