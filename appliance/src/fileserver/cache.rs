//! The open-file and metadata cache, with the hot set on top.
//!
//! A request path maps to a [`Resource`] (open descriptors, validators,
//! precompressed siblings) opened once and then served from memory. inotify
//! watches every directory a cached file lives in (and its ancestors), and any
//! change there drops the affected entries at once, so an edited, replaced or
//! deleted file is never served from a stale entry. A directory that cannot be
//! watched is never cached.

use std::{
    collections::{HashMap, HashSet},
    ffi::OsStr,
    fs::File,
    io,
    os::{
        fd::{AsRawFd, OwnedFd},
        unix::{ffi::OsStrExt, fs::MetadataExt},
    },
    path::{Path, PathBuf},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicU64, Ordering},
        mpsc,
    },
};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use tokio::io::unix::AsyncFd;

use crate::fileserver::{
    hotset::{self, Choice, HotSet, ReviewInput, Successor},
    path::{RelPath, Symlinks, open_beneath},
    resident::{self, Body, Job},
    resource::{Coding, Resource, Variant},
    status::Status,
};
use crate::sync::lock;

/// What the cache needs from the config.
#[derive(Clone, Debug)]
pub struct CacheOptions {
    /// Document root (must exist).
    pub root: PathBuf,
    /// Index file names.
    pub index: Vec<String>,
    /// Symlink policy.
    pub symlinks: Symlinks,
    /// Largest file kept on the heap; larger hot files are mapped and locked.
    pub small_file_max: u64,
    /// Hot-set budget in bytes.
    pub hot_bytes: u64,
    /// The hot set's policy, or `auto`.
    pub hot_policy: Choice,
    /// Requests between two reviews of the hot set's policy.
    pub hot_review_requests: usize,
    /// Most resources kept open.
    pub open_files: usize,
}

/// A path the cache could not turn into a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Miss {
    /// Answer with this status.
    Status(Status),
    /// A directory named without its trailing slash: redirect here.
    Redirect(String),
}

/// What a request gets: the variant to send and its in-memory body, if hot.
#[derive(Debug)]
pub struct Hit {
    /// The resource (for its siblings and Vary).
    pub resource: Arc<Resource>,
    /// The variant chosen for this request.
    pub variant: Arc<Variant>,
    /// The whole body, when the variant is resident on the heap.
    pub body: Option<Arc<[u8]>>,
}

/// Counters the component reports.
#[derive(Debug, Default)]
pub struct CacheCounters {
    /// Requests answered from a cached resource.
    pub hits: AtomicU64,
    /// Requests that had to open the file.
    pub misses: AtomicU64,
    /// Requests whose body came from memory.
    pub hot_hits: AtomicU64,
    /// Entries dropped because inotify saw a change.
    pub invalidations: AtomicU64,
    /// Files made resident.
    pub loads: AtomicU64,
    /// Resident loads that failed (file changed meanwhile, mmap refused).
    pub load_failures: AtomicU64,
}

struct Inner {
    resources: HashMap<RelPath, Arc<Resource>>,
    hot: HotSet,
    /// Bodies of resident files by hot-set id, with the path they are of.
    resident: HashMap<u64, (Arc<[u8]>, Body)>,
    /// Files whose load was started since they became resident (loaded,
    /// failed or in flight): each is loaded at most once per residency.
    attempted: HashSet<u64>,
    /// Bumped on every invalidation, so a load finished for an older
    /// version of a file is thrown away.
    generation: u64,
    watched: HashMap<WatchDescriptor, Vec<u8>>,
    watched_dirs: HashSet<Vec<u8>>,
}

/// The inotify instance as the watch task's `AsyncFd` sees it (shared with
/// the cache, which adds the watches).
struct Events(Arc<Inotify>);

impl AsRawFd for Events {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsFd::as_fd(&*self.0).as_raw_fd()
    }
}

/// The cache; shared by every worker.
pub struct FileCache {
    opts: CacheOptions,
    root_fd: OwnedFd,
    inotify: Arc<Inotify>,
    inner: Arc<Mutex<Inner>>,
    loader: Mutex<mpsc::Sender<Job>>,
    /// Hit/miss counters.
    pub counters: Arc<CacheCounters>,
    watcher: tokio::task::JoinHandle<()>,
    /// Runs right after a file is opened: lets a test change the file in
    /// the window between the open and the insert.
    #[cfg(test)]
    after_open: Mutex<Option<Box<dyn Fn() + Send>>>,
}

impl Drop for FileCache {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    if dir.is_empty() {
        name.to_vec()
    } else {
        [dir, b"/", name].concat()
    }
}

fn parent(rel: &[u8]) -> &[u8] {
    rel.iter()
        .rposition(|&c| c == b'/')
        .map_or(&[], |i| &rel[..i])
}

fn open_error(e: &io::Error) -> Status {
    match e.raw_os_error() {
        Some(libc::EACCES | libc::EPERM) => Status::Forbidden,
        // Out of descriptors is a passing overload, not a server fault.
        Some(libc::EMFILE | libc::ENFILE) => Status::ServiceUnavailable,
        Some(
            libc::ENOENT
            | libc::ENOTDIR
            | libc::ELOOP
            | libc::EXDEV
            | libc::ENAMETOOLONG
            | libc::EAGAIN,
        ) => Status::NotFound,
        _ => Status::InternalServerError,
    }
}

/// Percent-encodes a relative path for a Location header.
fn location(rel: &[u8]) -> String {
    let mut s = String::from("/");
    for &c in rel {
        if c.is_ascii_alphanumeric() || b"/-._~".contains(&c) {
            s.push(c as char);
        } else {
            s.push_str(&format!("%{c:02X}"));
        }
    }
    if !rel.is_empty() {
        s.push('/');
    }
    s
}

impl FileCache {
    /// Opens the root and inotify, starts the loader thread and the inotify
    /// task (on the current tokio runtime).
    pub fn new(opts: CacheOptions) -> io::Result<Arc<FileCache>> {
        let root_fd: OwnedFd = File::open(&opts.root)?.into();
        if !std::fs::metadata(&opts.root)?.is_dir() {
            return Err(io::Error::other("not a directory"));
        }
        let inotify = Arc::new(Inotify::init(
            InitFlags::IN_CLOEXEC | InitFlags::IN_NONBLOCK,
        )?);
        let inner = Arc::new(Mutex::new(Inner {
            resources: HashMap::new(),
            hot: HotSet::new(opts.hot_bytes, opts.hot_policy, opts.hot_review_requests),
            resident: HashMap::new(),
            attempted: HashSet::new(),
            generation: 0,
            watched: HashMap::new(),
            watched_dirs: HashSet::new(),
        }));
        let counters = Arc::new(CacheCounters::default());
        let loader = resident::spawn_loader(opts.small_file_max)?;
        // SAFETY: `Events` holds the inotify instance (an Arc), so its fd
        // stays open, and is the one as_raw_fd returns, for as long as the
        // AsyncFd exists.
        let events = unsafe {
            AsyncFd::register_with_interest(Events(inotify.clone()), tokio::io::Interest::READABLE)
        }
        .map_err(|e| io::Error::other(e.to_string()))?;
        let watcher = tokio::spawn(watch_loop(events, Arc::downgrade(&inner), counters.clone()));
        Ok(Arc::new(FileCache {
            opts,
            root_fd,
            inotify,
            inner,
            loader: Mutex::new(loader),
            counters,
            watcher,
            #[cfg(test)]
            after_open: Mutex::new(None),
        }))
    }

    /// Resolves `path` for a request, choosing a variant by `accept` unless
    /// `ranged`, and records the access in the hot set.
    pub fn get(&self, path: &RelPath, accept: Option<&[u8]>, ranged: bool) -> Result<Hit, Miss> {
        let cached = lock(&self.inner).resources.get(path).cloned();
        let resource = match cached {
            Some(r) => {
                self.counters.hits.fetch_add(1, Ordering::Relaxed);
                r
            }
            None => {
                self.counters.misses.fetch_add(1, Ordering::Relaxed);
                self.open(path)?
            }
        };
        let variant = resource.pick(accept, ranged).clone();
        let (body, load) = self.touch(&variant);
        if let Some(generation) = load {
            self.load(variant.clone(), generation);
        }
        if body.is_some() {
            self.counters.hot_hits.fetch_add(1, Ordering::Relaxed);
        }
        Ok(Hit {
            resource,
            variant,
            body,
        })
    }

    /// Hot-set bookkeeping for one access: the resident body if any, and
    /// whether (at which generation) a load should start.
    fn touch(&self, v: &Arc<Variant>) -> (Option<Arc<[u8]>>, Option<u64>) {
        let id = hotset::id_of(&v.key);
        let mut inner = lock(&self.inner);
        let access = inner.hot.access(id, v.len);
        for k in &access.evicted {
            inner.resident.remove(k);
            inner.attempted.remove(k);
        }
        let body = match inner.resident.get(&id) {
            Some((key, Body::Heap(b))) if *key == v.key => Some(b.clone()),
            _ => None,
        };
        let load = (access.resident && inner.attempted.insert(id)).then_some(inner.generation);
        (body, load)
    }

    fn load(&self, v: Arc<Variant>, generation: u64) {
        let inner = Arc::downgrade(&self.inner);
        let counters = self.counters.clone();
        let key = v.key.clone();
        let deliver = Box::new(move |body: io::Result<Body>| {
            let Some(inner) = inner.upgrade() else { return };
            let body = match body {
                Ok(b) => b,
                Err(e) => {
                    counters.load_failures.fetch_add(1, Ordering::Relaxed);
                    log::debug!(
                        "fileserver: not resident: {}: {e}",
                        String::from_utf8_lossy(&key)
                    );
                    return;
                }
            };
            let mut inner = lock(&inner);
            let id = hotset::id_of(&key);
            if inner.generation == generation && inner.hot.contains(id) {
                inner.resident.insert(id, (key, body));
                counters.loads.fetch_add(1, Ordering::Relaxed);
            }
        });
        let tx = lock(&self.loader).clone();
        let _ = tx.send((v, deliver));
    }

    /// Bytes resident and the number of resident files.
    pub fn resident(&self) -> (u64, usize) {
        let inner = lock(&self.inner);
        (inner.hot.resident_bytes(), inner.resident.len())
    }

    /// The hot set's policy now, how it was chosen, its last verdict, and
    /// the reviews made and policy changes since start.
    pub fn hot_policy(
        &self,
    ) -> (
        crate::cachesim::Kind,
        Choice,
        Option<hotset::Verdict>,
        (u64, u64),
    ) {
        let inner = lock(&self.inner);
        let (kind, choice) = inner.hot.policy();
        (
            kind,
            choice,
            inner.hot.verdict().cloned(),
            inner.hot.changes(),
        )
    }

    /// The hot set's requests to review, once a window has been served.
    pub fn hot_review_due(&self) -> Option<ReviewInput> {
        lock(&self.inner).hot.review_due()
    }

    /// Takes a review's verdict ([`hotset::judge`], run off the request
    /// path); bodies the new policy does not hold are dropped.
    pub fn hot_adopt(&self, successor: Successor) {
        let mut guard = lock(&self.inner);
        let inner = &mut *guard;
        if inner.hot.adopt(successor) {
            let hot = &inner.hot;
            inner.resident.retain(|id, _| hot.contains(*id));
            inner.attempted.retain(|id| hot.contains(*id));
            let kind = hot.policy().0;
            if let Some(v) = hot.verdict() {
                log::info!(
                    "fileserver: hot set now {} ({:.1}% of the last {} requests replayed, {:.1}% measured)",
                    kind.name(),
                    100.0
                        * v.simulated
                            .iter()
                            .find(|(k, _)| *k == kind)
                            .map_or(0.0, |s| s.1),
                    v.requests,
                    100.0 * v.measured
                );
            }
        }
    }

    /// Resources currently cached.
    pub fn len(&self) -> usize {
        lock(&self.inner).resources.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn open_regular(&self, rel: &[u8]) -> Result<(File, std::fs::Metadata), Status> {
        let file =
            open_beneath(&self.root_fd, rel, self.opts.symlinks).map_err(|e| open_error(&e))?;
        let meta = file.metadata().map_err(|e| open_error(&e))?;
        Ok((file, meta))
    }

    /// Opens what `path` names, builds its resource and caches it if every
    /// directory it depends on is watched and nothing changed meanwhile.
    ///
    /// The order closes the window in which a change could be missed: the
    /// directories are watched *before* the files are opened, so any later
    /// change raises an event; and the resource is inserted only if no event
    /// was handled since the open began (the cache's generation is
    /// unchanged), otherwise it serves this request and is not kept. A file
    /// reached through a symlink has its real directory watched too, and is
    /// checked against what is at its real path once that watch is in place.
    fn open(&self, path: &RelPath) -> Result<Arc<Resource>, Miss> {
        let generation = lock(&self.inner).generation;
        let mut cacheable = self.watch(parent(&path.rel));
        let (mut file, mut meta) = self.open_regular(&path.rel).map_err(Miss::Status)?;
        #[cfg(test)]
        if let Some(hook) = lock(&self.after_open).as_ref() {
            hook();
        }
        let mut rel = path.rel.clone();
        if meta.is_dir() {
            if !path.dir {
                return Err(Miss::Redirect(location(&path.rel)));
            }
            cacheable &= self.watch(&path.rel);
            let found = self.opts.index.iter().find_map(|name| {
                let candidate = join(&path.rel, name.as_bytes());
                let (f, m) = self.open_regular(&candidate).ok()?;
                m.is_file().then_some((f, m, candidate))
            });
            let Some((f, m, candidate)) = found else {
                return Err(Miss::Status(Status::NotFound));
            };
            (file, meta, rel) = (f, m, candidate);
        } else if path.dir {
            return Err(Miss::Status(Status::NotFound));
        }
        if !meta.is_file() {
            return Err(Miss::Status(Status::NotFound));
        }
        let mut siblings = Vec::new();
        for coding in Coding::ALL {
            let name = [&rel[..], coding.suffix().as_bytes()].concat();
            if let Ok((f, m)) = self.open_regular(&name)
                && m.is_file()
            {
                siblings.push((coding, name, f, m));
            }
        }
        let dir = parent(&rel).to_vec();
        let mut target_watches = Vec::new();
        for (f, m) in std::iter::once((&file, &meta)).chain(siblings.iter().map(|s| (&s.2, &s.3))) {
            match self.watch_target(f, m, &dir) {
                Some(Some(wd)) => target_watches.push(wd),
                Some(None) => {}
                None => cacheable = false,
            }
        }
        let vary = !siblings.is_empty();
        let identity = Arc::new(Variant::new(
            rel.clone().into(),
            file,
            &meta,
            &rel,
            None,
            vary,
        ));
        let encoded = siblings
            .into_iter()
            .map(|(c, name, f, m)| {
                (
                    c,
                    Arc::new(Variant::new(name.into(), f, &m, &rel, Some(c), vary)),
                )
            })
            .collect();
        let resource = Arc::new(Resource {
            identity,
            encoded,
            dir,
            target_watches,
        });
        // Kept only if no change was handled since the open began.
        let mut inner = lock(&self.inner);
        if cacheable && inner.generation == generation {
            if inner.resources.len() >= self.opts.open_files {
                // Bounded: drop an arbitrary entry; it is reopened on demand.
                if let Some(k) = inner.resources.keys().next().cloned() {
                    inner.resources.remove(&k);
                }
            }
            inner.resources.insert(path.clone(), resource.clone());
        }
        Ok(resource)
    }

    /// Watches the directory `file` really lives in when that is not the
    /// (relative) `dir` it was named in, i.e. it was reached through a
    /// symlink, and checks that what is at its real path is still the file
    /// that was opened (a change before the watch existed raised no event).
    /// `Some(Some(wd))`: watched; `Some(None)`: nothing to watch; `None`:
    /// cannot be kept safely.
    fn watch_target(
        &self,
        file: &File,
        meta: &std::fs::Metadata,
        dir: &[u8],
    ) -> Option<Option<WatchDescriptor>> {
        let real = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd())).ok()?;
        let real_dir = real.parent()?;
        let named = self.opts.root.join(Path::new(OsStr::from_bytes(dir)));
        if std::fs::canonicalize(&named).ok()? == real_dir {
            return Some(None);
        }
        let wd = self.add_watch(real_dir)?;
        let now = std::fs::metadata(&real).ok()?;
        let same = now.ino() == meta.ino()
            && now.dev() == meta.dev()
            && now.len() == meta.len()
            && now.mtime() == meta.mtime()
            && now.mtime_nsec() == meta.mtime_nsec();
        same.then_some(Some(wd))
    }

    /// An inotify watch on `path` for every change that makes a cached
    /// file stale; `None` (logged) if the kernel refuses.
    fn add_watch(&self, path: &Path) -> Option<WatchDescriptor> {
        let mask = AddWatchFlags::IN_CLOSE_WRITE
            | AddWatchFlags::IN_MODIFY
            | AddWatchFlags::IN_ATTRIB
            | AddWatchFlags::IN_CREATE
            | AddWatchFlags::IN_DELETE
            | AddWatchFlags::IN_MOVED_FROM
            | AddWatchFlags::IN_MOVED_TO
            | AddWatchFlags::IN_DELETE_SELF
            | AddWatchFlags::IN_MOVE_SELF
            | AddWatchFlags::IN_ONLYDIR;
        match self.inotify.add_watch(path, mask) {
            Ok(wd) => Some(wd),
            Err(e) => {
                log::warn!(
                    "fileserver: cannot watch {}: {e}; its files are not cached",
                    path.display()
                );
                None
            }
        }
    }

    /// Watches `dir` and its ancestors; false if any cannot be watched.
    fn watch(&self, dir: &[u8]) -> bool {
        let mut d = dir.to_vec();
        loop {
            if !self.watch_one(&d) {
                return false;
            }
            if d.is_empty() {
                return true;
            }
            d = parent(&d).to_vec();
        }
    }

    fn watch_one(&self, dir: &[u8]) -> bool {
        if lock(&self.inner).watched_dirs.contains(dir) {
            return true;
        }
        let path = self.opts.root.join(Path::new(OsStr::from_bytes(dir)));
        let Some(wd) = self.add_watch(&path) else {
            return false;
        };
        let mut inner = lock(&self.inner);
        inner.watched.insert(wd, dir.to_vec());
        inner.watched_dirs.insert(dir.to_vec());
        true
    }
}

impl Inner {
    /// Drops every resource under `prefix` (a directory, relative) whose
    /// files live in `dir` or below `prefix`.
    fn invalidate(&mut self, dir: &[u8], prefix: Option<&[u8]>) -> u64 {
        let under = |d: &[u8]| {
            d == dir
                || prefix.is_some_and(|p| {
                    p.is_empty() || d == p || (d.starts_with(p) && d.get(p.len()) == Some(&b'/'))
                })
        };
        self.drop_where(|r| under(&r.dir))
    }

    /// Drops every resource whose file's real directory (reached through a
    /// symlink) is the one watch `wd` names.
    fn invalidate_targets(&mut self, wd: WatchDescriptor) -> u64 {
        self.drop_where(|r| r.target_watches.contains(&wd))
    }

    /// Drops the resources `stale` picks, with their hot-set entries, and
    /// moves the generation on so nothing opened before is kept.
    fn drop_where(&mut self, stale: impl Fn(&Resource) -> bool) -> u64 {
        let gone: Vec<RelPath> = self
            .resources
            .iter()
            .filter(|(_, r)| stale(r))
            .map(|(k, _)| k.clone())
            .collect();
        for k in &gone {
            if let Some(r) = self.resources.remove(k) {
                for v in std::iter::once(&r.identity).chain(r.encoded.iter().map(|(_, v)| v)) {
                    let id = hotset::id_of(&v.key);
                    self.hot.remove(id);
                    self.resident.remove(&id);
                    self.attempted.remove(&id);
                }
            }
        }
        self.generation += 1;
        gone.len() as u64
    }
}

/// Reads inotify events and invalidates what they touch, until the cache is gone.
async fn watch_loop(fd: AsyncFd<Events>, inner: Weak<Mutex<Inner>>, counters: Arc<CacheCounters>) {
    loop {
        let Ok(mut guard) = fd.readable().await else {
            return;
        };
        let events = match guard.try_io(|f| f.get_ref().0.read_events().map_err(io::Error::from)) {
            Ok(Ok(events)) => events,
            Ok(Err(e)) => {
                log::error!("fileserver: inotify read: {e}");
                return;
            }
            Err(_would_block) => continue,
        };
        let Some(inner) = inner.upgrade() else { return };
        let mut inner = lock(&inner);
        for ev in events {
            let name = ev.name.map(|n| n.into_encoded_bytes()).unwrap_or_default();
            let dropped = if ev.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                inner.invalidate(&[], Some(&[]))
            } else if let Some(dir) = inner.watched.get(&ev.wd).cloned() {
                if ev.mask.contains(AddWatchFlags::IN_IGNORED) {
                    inner.watched.remove(&ev.wd);
                    inner.watched_dirs.remove(&dir);
                }
                if name.is_empty() {
                    inner.invalidate(&dir, Some(&dir))
                } else {
                    let child = join(&dir, &name);
                    inner.invalidate(&dir, Some(&child))
                }
            } else {
                0
            };
            let dropped = dropped + inner.invalidate_targets(ev.wd);
            counters.invalidations.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{fs, time::Duration};

    use super::*;

    fn cache(root: &Path) -> Arc<FileCache> {
        FileCache::new(CacheOptions {
            root: root.to_owned(),
            index: vec!["index.html".into()],
            symlinks: Symlinks::Inside,
            small_file_max: 0,
            hot_bytes: 0,
            hot_policy: Choice::Auto,
            hot_review_requests: 1000,
            open_files: 64,
        })
        .expect("cache")
    }

    fn path(rel: &str) -> RelPath {
        RelPath {
            rel: rel.as_bytes().to_vec(),
            dir: false,
        }
    }

    fn len(c: &FileCache, rel: &str) -> u64 {
        c.get(&path(rel), None, false).expect("found").variant.len
    }

    /// A file replaced between its open and the insert (before its
    /// directory was watched, in the old order) must not be cached: the
    /// next request sees the new file, not the old one for good.
    #[tokio::test]
    async fn a_change_between_open_and_insert_is_not_cached() {
        let root = tempfile::tempdir().unwrap();
        fs::write(root.path().join("a.txt"), "one").unwrap();
        let c = cache(root.path());
        let dir = root.path().to_owned();
        *lock(&c.after_open) = Some(Box::new(move || {
            fs::write(dir.join("a.tmp"), "two, longer").unwrap();
            fs::rename(dir.join("a.tmp"), dir.join("a.txt")).unwrap();
        }));
        assert_eq!(len(&c, "a.txt"), 3, "this request got what it opened");
        *lock(&c.after_open) = None;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(len(&c, "a.txt"), 11, "and the next one the new file");
    }

    /// A file reached through a symlink is dropped when its target changes,
    /// not only when the link does.
    #[tokio::test]
    async fn a_symlink_target_replaced_is_seen() {
        let root = tempfile::tempdir().unwrap();
        fs::create_dir(root.path().join("real")).unwrap();
        fs::write(root.path().join("real/v.txt"), "one").unwrap();
        std::os::unix::fs::symlink("real/v.txt", root.path().join("link.txt")).unwrap();
        let c = cache(root.path());
        assert_eq!(len(&c, "link.txt"), 3);
        assert_eq!(len(&c, "link.txt"), 3);
        assert!(c.counters.hits.load(Ordering::Relaxed) >= 1, "cached");
        fs::write(root.path().join("real/v.tmp"), "two, longer").unwrap();
        fs::rename(
            root.path().join("real/v.tmp"),
            root.path().join("real/v.txt"),
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(len(&c, "link.txt"), 11);
    }
}
