//! The outbox's overflow on disk: a size-capped FIFO of encoded reports
//! that survives a restart or a power cut.
//!
//! Reports reach the spool only when they would otherwise be lost: the
//! outbox is full during an outage, or nodus is stopping with reports the
//! broker has not acknowledged. Nothing is written while the broker keeps
//! up, so a board's flash sees no telemetry writes in normal operation.
//!
//! Layout: a 16-byte header (`MAGIC`, then the offset of the first record
//! not yet acknowledged) and records appended after it, each a little-endian
//! `u32` length, a CRC-32 of the payload, and the payload. A record cut short
//! by a power cut, or damaged, ends the spool where it starts: the rest is
//! truncated away and counted, never sent half-read; the same check runs
//! on every record read while running (length bound, CRC, not empty), so a
//! record damaged on flash after the open is cut away and counted too
//! ([`Spool::take_lost`]), never trusted. Acknowledged records are skipped
//! by moving the header's offset; the file shrinks back to its header once
//! everything in it was acknowledged, and is compacted when an append would
//! not fit behind an acknowledged prefix.
//!
//! Records handed out are named by their place in the spool's order
//! ([`RecordEnd`] counts records, not bytes), so a compaction that moves
//! records while the broker still holds some of them changes no name: an
//! acknowledgement after it frees exactly the records it covers.

use std::{
    fs::{self, File, OpenOptions},
    io,
    os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt},
    path::{Path, PathBuf},
};

/// First bytes of a spool file; a new layout gets a new magic.
const MAGIC: [u8; 8] = *b"NDSPOOL1";
/// Header: magic, then the `u64` offset of the first unacknowledged record.
const HEADER: u64 = 16;
/// Length and CRC before each payload.
const RECORD_HEAD: u64 = 8;
/// Owner read and write only, also after a compaction replaced the file.
const SPOOL_MODE: u32 = 0o600;
/// No report comes near this; a larger length field is damage.
const MAX_RECORD: u32 = 1 << 20;

/// The header of a spool with no records.
fn empty_header() -> [u8; HEADER as usize] {
    let mut header = [0u8; HEADER as usize];
    header[..8].copy_from_slice(&MAGIC);
    header[8..].copy_from_slice(&HEADER.to_le_bytes());
    header
}

/// An open spool file.
pub struct Spool {
    file: File,
    path: PathBuf,
    max_bytes: u64,
    /// Offset of the first record not yet acknowledged.
    head: u64,
    /// Offset of the next record [`Spool::next_record`] hands out.
    read: u64,
    /// End of the last record.
    tail: u64,
    /// Number (in the spool's order since it was opened) of the record at
    /// `head`, at `read`, and of the next one appended. Compaction moves
    /// offsets, never these.
    head_no: u64,
    read_no: u64,
    tail_no: u64,
    /// Records cut away as damaged while running, not yet reported.
    lost: u64,
    /// Bytes cut away when the spool was opened (torn or damaged records).
    pub discarded_bytes: u64,
}

/// Names the end of a record handed out by [`Spool::next_record`]:
/// acknowledging it means every record up to and including that one may go.
/// It counts records, so it stays true when a compaction moves them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordEnd(u64);

/// Whether a record's length field can be trusted: records are never
/// empty and never larger than [`MAX_RECORD`].
fn check_record(size: u32) -> bool {
    size != 0 && size <= MAX_RECORD
}

impl Spool {
    /// Opens (or creates) the spool at `path`, holding at most `max_bytes`
    /// on disk. What a previous run left there is kept, up to the first
    /// damaged record.
    pub fn open(path: &Path, max_bytes: u64) -> io::Result<Spool> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(SPOOL_MODE)
            .open(path)?;
        let mut spool = Spool {
            file,
            path: path.to_owned(),
            max_bytes: max_bytes.max(HEADER + RECORD_HEAD),
            head: HEADER,
            read: HEADER,
            tail: HEADER,
            head_no: 0,
            read_no: 0,
            tail_no: 0,
            lost: 0,
            discarded_bytes: 0,
        };
        spool.recover()?;
        Ok(spool)
    }

    /// Reads the header and walks the records, truncating at the first
    /// one that is torn or damaged.
    fn recover(&mut self) -> io::Result<()> {
        let len = self.file.metadata()?.len();
        let mut header = [0u8; HEADER as usize];
        let valid_header = len >= HEADER
            && self.file.read_exact_at(&mut header, 0).is_ok()
            && header[..8] == MAGIC;
        if !valid_header {
            self.discarded_bytes = len;
            return self.clear();
        }
        let head = u64::from_le_bytes(header[8..].try_into().unwrap_or_default());
        let mut at = if (HEADER..=len).contains(&head) {
            head
        } else {
            HEADER
        };
        self.head = at;
        while let Some(end) = self.record_end(at, len)? {
            self.tail_no += 1;
            at = end;
        }
        if at < len {
            self.discarded_bytes = len - at;
            self.file.set_len(at)?;
        }
        self.tail = at;
        self.read = self.head;
        if self.tail_no == 0 && self.tail > HEADER {
            self.clear()?;
        }
        Ok(())
    }

    /// The length and CRC in front of the record at `at`.
    fn record_head(&self, at: u64) -> io::Result<(u32, u32)> {
        let mut head = [0u8; RECORD_HEAD as usize];
        self.file.read_exact_at(&mut head, at)?;
        let word = |i: usize| u32::from_le_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        Ok((word(0), word(4)))
    }

    /// Where the whole, intact record at `at` ends, if there is one.
    fn record_end(&self, at: u64, len: u64) -> io::Result<Option<u64>> {
        if at + RECORD_HEAD > len {
            return Ok(None);
        }
        Ok(self.read_record(at, len)?.map(|(end, _)| end))
    }

    /// The whole, intact record at `at` (ending at or before `len`): where it
    /// ends and its payload. `None` if what is there is torn or damaged.
    fn read_record(&self, at: u64, len: u64) -> io::Result<Option<(u64, Vec<u8>)>> {
        if at + RECORD_HEAD > len {
            return Ok(None);
        }
        let (size, crc) = self.record_head(at)?;
        let end = at + RECORD_HEAD + u64::from(size);
        if !check_record(size) || end > len {
            return Ok(None);
        }
        let mut payload = vec![0u8; size as usize];
        self.file.read_exact_at(&mut payload, at + RECORD_HEAD)?;
        Ok((crc32fast::hash(&payload) == crc).then_some((end, payload)))
    }

    /// Empties the file down to a fresh header; what it held is gone.
    pub fn clear(&mut self) -> io::Result<()> {
        self.file.set_len(0)?;
        self.file.write_all_at(&empty_header(), 0)?;
        self.head = HEADER;
        self.read = HEADER;
        self.tail = HEADER;
        // Numbers only grow: a name handed out before stays unambiguous.
        self.head_no = self.tail_no;
        self.read_no = self.tail_no;
        Ok(())
    }

    /// Appends `payload` behind every record already here. `Ok(false)`: it
    /// does not fit under the size cap, or is empty or larger than any
    /// record may be (the caller counts it as dropped).
    pub fn append(&mut self, payload: &[u8]) -> io::Result<bool> {
        let need = RECORD_HEAD + payload.len() as u64;
        if !u32::try_from(payload.len()).is_ok_and(check_record) {
            return Ok(false);
        }
        if self.tail + need > self.max_bytes && self.head > HEADER {
            self.compact()?;
        }
        if self.tail + need > self.max_bytes {
            return Ok(false);
        }
        let mut record = Vec::with_capacity(need as usize);
        record.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        record.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
        record.extend_from_slice(payload);
        if let Err(e) = self.file.write_all_at(&record, self.tail) {
            // Whatever part was written is beyond `tail` and gets
            // overwritten or truncated; keep the file as it was.
            let _ = self.file.set_len(self.tail);
            return Err(e);
        }
        self.tail += need;
        self.tail_no += 1;
        Ok(true)
    }

    /// Moves the unacknowledged records to the front of a new file, so
    /// the space acknowledged records held can be used again. The new file
    /// replaces the old one by rename: a crash leaves one or the other.
    fn compact(&mut self) -> io::Result<()> {
        let live = self.tail - self.head;
        let mut records = vec![0u8; live as usize];
        self.file.read_exact_at(&mut records, self.head)?;
        let mut body = empty_header().to_vec();
        body.extend_from_slice(&records);
        crate::durable::write_atomically(&self.path, &body)?;
        self.file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        // The replacement was created with the default mode; keep the spool's.
        self.file
            .set_permissions(fs::Permissions::from_mode(SPOOL_MODE))?;
        let shift = self.head - HEADER;
        self.read -= shift;
        self.tail -= shift;
        self.head = HEADER;
        Ok(())
    }

    /// The next record not yet handed out, oldest first, and its name.
    ///
    /// Each record is checked again before it is trusted (the flash may have
    /// changed under us): one that fails ends the spool where it starts, and
    /// the records cut away with it are counted in [`Spool::take_lost`].
    pub fn next_record(&mut self) -> io::Result<Option<(RecordEnd, Vec<u8>)>> {
        if self.read >= self.tail {
            return Ok(None);
        }
        let Some((end, payload)) = self.read_record(self.read, self.tail)? else {
            self.lost += self.tail_no - self.read_no;
            self.discarded_bytes += self.tail - self.read;
            self.file.set_len(self.read)?;
            self.tail = self.read;
            self.tail_no = self.read_no;
            return Ok(None);
        };
        self.read = end;
        self.read_no += 1;
        Ok(Some((RecordEnd(self.read_no), payload)))
    }

    /// Records cut away as damaged since the last call (they are gone; the
    /// caller counts them as dropped).
    pub fn take_lost(&mut self) -> u64 {
        std::mem::take(&mut self.lost)
    }

    /// Every record up to `end` was acknowledged: they will not be sent
    /// again, not even after a restart. Empties the file once nothing is left.
    pub fn consume_to(&mut self, end: RecordEnd) -> io::Result<()> {
        // Only records handed out can be acknowledged; they were checked
        // when they were read, so their lengths are known to be sound.
        let end = end.0.clamp(self.head_no, self.read_no);
        while self.head_no < end {
            let (size, _) = self.record_head(self.head)?;
            self.head += RECORD_HEAD + u64::from(size);
            self.head_no += 1;
        }
        if self.head > self.read {
            // Only if the file changed under us: never skip past what was read.
            self.head = self.read;
            self.head_no = self.read_no;
        }
        if self.head == self.tail {
            return self.clear();
        }
        self.file.write_all_at(&self.head.to_le_bytes(), 8)
    }

    /// The link went down: records handed out and not acknowledged are
    /// handed out again, from the oldest.
    pub fn rewind(&mut self) {
        self.read = self.head;
        self.read_no = self.head_no;
    }

    /// Makes every append so far durable.
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Whether a record is waiting to be handed out.
    pub fn has_unsent(&self) -> bool {
        self.read < self.tail
    }

    /// Records not yet acknowledged.
    pub fn records(&self) -> usize {
        usize::try_from(self.tail_no - self.head_no).unwrap_or(usize::MAX)
    }

    /// Bytes the file holds.
    pub fn bytes(&self) -> u64 {
        self.tail
    }

    /// The file's path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests;
