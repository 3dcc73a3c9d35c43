//! Keeping hot files in memory: small ones as a heap copy answered with one
//! writev, large ones mapped and locked (`mmap` + `mlock`) so sendfile always
//! finds their pages in the page cache and never waits for the disk.
//!
//! Loading happens on one background thread, so a worker never blocks on a
//! disk read to make a file resident; until a file is loaded, it is simply
//! served with sendfile.

use std::{
    io,
    os::unix::fs::FileExt,
    sync::{Arc, mpsc},
};

use crate::fileserver::resource::Variant;

/// A resident copy of a file.
#[derive(Debug)]
pub enum Body {
    /// The whole file on the heap (small files).
    Heap(Arc<[u8]>),
    /// The file mapped and locked in memory (large files).
    Locked(Locked),
}

/// A read-only shared mapping, locked in memory, unmapped on drop.
#[derive(Debug)]
pub struct Locked {
    _map: memmap2::Mmap,
    /// Whether mlock succeeded (else the mapping only hints WILLNEED).
    pub locked: bool,
}

/// Maps `v` read-only and locks it; falls back to MADV_WILLNEED if mlock is
/// refused (RLIMIT_MEMLOCK without CAP_IPC_LOCK).
fn lock(v: &Variant) -> io::Result<Locked> {
    let len = usize::try_from(v.len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // Mapping a file stays unsafe in every crate: nothing can promise the
    // file is not truncated under the mapping. nodus never reads through
    // it (sendfile finds the locked pages in the page cache), so a
    // truncation cannot fault a worker.
    // SAFETY: a read-only shared mapping of a file we hold open, never
    // dereferenced by nodus.
    let map = unsafe { memmap2::MmapOptions::new().len(len).map(&v.file) }?;
    let locked = map.lock().is_ok();
    if !locked {
        let _ = map.advise(memmap2::Advice::WillNeed);
    }
    Ok(Locked { _map: map, locked })
}

/// Reads the whole file and checks it did not change meanwhile: a body is
/// only ever the complete file as it was when opened.
fn read_whole(v: &Variant) -> io::Result<Arc<[u8]>> {
    let len = usize::try_from(v.len).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut buf = vec![0u8; len];
    v.file.read_exact_at(&mut buf, 0)?;
    let meta = v.file.metadata()?;
    if meta.len() != v.len || std::os::unix::fs::MetadataExt::mtime(&meta) != v.mtime {
        return Err(io::Error::other("file changed while being read"));
    }
    Ok(buf.into())
}

/// Makes `v` resident: a heap copy up to `small_max` bytes, a locked mapping above.
pub fn load(v: &Variant, small_max: u64) -> io::Result<Body> {
    if v.len <= small_max {
        read_whole(v).map(Body::Heap)
    } else {
        lock(v).map(Body::Locked)
    }
}

/// A load request: the variant and where to deliver the result.
pub type Job = (Arc<Variant>, Box<dyn FnOnce(io::Result<Body>) + Send>);

/// Starts the loader thread; it ends when every sender is dropped.
pub fn spawn_loader(small_max: u64) -> io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("nodus-fs-load".into())
        .spawn(move || {
            for (v, deliver) in rx {
                deliver(load(&v, small_max));
            }
        })?;
    Ok(tx)
}
