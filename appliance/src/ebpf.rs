//! The eBPF objects embedded in the binary: those `nodus_common::objects`
//! lists, one per program binary of `ebpf/programs`. `build.rs` either
//! compiled them or took them, checked, from a prebuilt directory
//! (`NODUS_EBPF_DIR`).

use aya::{
    Ebpf, EbpfError, EbpfLoader,
    maps::{Map, MapData, MapError, PerCpuArray},
    programs::{Program, ProgramError, RawTracePoint},
};
use nodus_common::objects::Object;

include!(concat!(env!("OUT_DIR"), "/embedded.rs"));

/// The bytes of `object`, one of `nodus_common::objects::ALL` (all of which
/// the build embedded and checked).
pub fn bytes(object: &Object) -> &'static [u8] {
    EMBEDDED
        .iter()
        .find(|(name, _)| *name == object.name)
        .map_or(&[], |(_, b)| *b)
}

/// Why a map could not be taken out of a loaded object as the type wanted.
#[derive(Debug, thiserror::Error)]
pub enum TakeMapError {
    /// The object has no map of that name (or it was taken already).
    #[error("map {0} missing from the object")]
    Missing(&'static str),
    /// The map is not of the type wanted.
    #[error("map {0}")]
    Type(&'static str, #[source] MapError),
}

/// Takes map `name` out of `obj` as a `T` (an aya map type).
pub fn take_map<T>(obj: &mut Ebpf, name: &'static str) -> Result<T, TakeMapError>
where
    T: TryFrom<Map, Error = MapError>,
{
    let map = obj.take_map(name).ok_or(TakeMapError::Missing(name))?;
    T::try_from(map).map_err(|e| TakeMapError::Type(name, e))
}

/// Why a program of a loaded object could not be loaded or attached.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// The object lacks a program the list of objects names.
    #[error("program {0} missing from the object")]
    Missing(&'static str),
    /// The program is not of the kind its use says.
    #[error("program {program}")]
    Kind {
        /// The program.
        program: &'static str,
        /// What went wrong.
        #[source]
        source: ProgramError,
    },
    /// The kernel refused to load or attach it (an older kernel may lack
    /// the tracepoint or function, or refuse the program type).
    #[error("attaching {program} to {target}")]
    Attach {
        /// The program.
        program: &'static str,
        /// The tracepoint or kernel function.
        target: &'static str,
        /// What went wrong.
        #[source]
        source: ProgramError,
    },
}

/// Program `name` of `obj` as a `P` (an aya program type).
pub fn program<'a, P>(obj: &'a mut Ebpf, name: &'static str) -> Result<&'a mut P, AttachError>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    obj.program_mut(name)
        .ok_or(AttachError::Missing(name))?
        .try_into()
        .map_err(|source| AttachError::Kind {
            program: name,
            source,
        })
}

/// Loads and attaches raw tracepoint programs: `(program, tracepoint)`.
pub fn attach_raw_tracepoints(
    obj: &mut Ebpf,
    which: &[(&'static str, &'static str)],
) -> Result<(), AttachError> {
    for &(name, tracepoint) in which {
        let p: &mut RawTracePoint = program(obj, name)?;
        p.load()
            .and_then(|()| p.attach(tracepoint).map(drop))
            .map_err(|source| AttachError::Attach {
                program: name,
                target: tracepoint,
                source,
            })?;
    }
    Ok(())
}

/// Slot `index` of a per-CPU counter array, summed over CPUs; 0 where it
/// cannot be read (a counter is never worth an error).
pub fn per_cpu_sum(map: &PerCpuArray<MapData, u64>, index: u32) -> u64 {
    map.get(&index, 0).map_or(0, |v| v.iter().sum())
}

/// Loads `object` into the kernel, configured by `configure` (globals, map
/// sizes). Every component loads through here, because of one cost: aya 0.14
/// (the newest that builds with the project's minimum Rust) parses the
/// running kernel's BTF in every load, about 22 MiB while it parses, and
/// glibc keeps those freed pages in the loading thread's arena. Loads from
/// several threads left the daemon at 46 MiB idle instead of 17 (measured,
/// docs/toolchain.md); handing the freed pages back after each load keeps it
/// where it was.
pub fn load_with<'a>(
    object: &Object,
    configure: impl FnOnce(&mut EbpfLoader<'a>),
) -> Result<Ebpf, EbpfError> {
    let mut loader = EbpfLoader::new();
    configure(&mut loader);
    let loaded = loader.load(bytes(object));
    drop(loader);
    release_freed_memory();
    loaded
}

/// [`load_with`] with aya's defaults.
pub fn load(object: &Object) -> Result<Ebpf, EbpfError> {
    load_with(object, |_| {})
}

/// Returns free heap pages to the kernel (see [`load_with`]); also for
/// callers that parsed kernel BTF with aya themselves. musl's allocator (the
/// static aarch64 build) unmaps large freed regions itself.
pub fn release_freed_memory() {
    #[cfg(target_env = "gnu")]
    // SAFETY: malloc_trim takes no pointers and only gives free pages of the
    // allocator's own arenas back to the kernel; glibc makes it thread-safe.
    // nix has no wrapper for it.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Allocations of this many bytes or more are mapped on their own and
/// unmapped when freed (glibc's default starting point, held fixed).
#[cfg(target_env = "gnu")]
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Keeps large allocations out of the heap for good, so what loading eBPF
/// frees (aya parses the kernel's BTF, some 22 MiB, in every load) goes
/// back to the kernel from any thread. glibc otherwise raises its mmap
/// threshold after the first large free, the parser's later large blocks
/// land in the loading thread's heap, and a thread arena's top is never
/// trimmed, not even by `malloc_trim`: measured on the build host, the
/// daemon idled at 42.8 MiB RSS, and at 14.8 MiB with the threshold fixed.
/// Call once, first thing. musl (the boards' static build) maps large
/// blocks on its own already.
pub fn fix_mmap_threshold() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt takes no pointers and only changes the allocator's
    // tuning; called before any other thread exists. nix has no wrapper.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}

/// A `T` from the start of a map value or ring-buffer record, or `None`
/// when `bytes` is too short. Records are only 8-byte aligned, so it is
/// read unaligned.
pub fn read_record<T: aya::Pod>(bytes: &[u8]) -> Option<T> {
    (bytes.len() >= size_of::<T>())
        // SAFETY: the length is checked and T is Pod (plain old data, every
        // bit pattern valid); read_unaligned needs no alignment.
        .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// The bytes of a map key or value, for the maps libbpf (not aya) holds.
pub fn pod_bytes<T: aya::Pod>(value: &T) -> &[u8] {
    // SAFETY: T is Pod (plain old data without padding), so all
    // size_of::<T>() bytes behind the reference are initialised.
    unsafe { std::slice::from_raw_parts((value as *const T).cast::<u8>(), size_of::<T>()) }
}

/// Renders an error with its whole `source()` chain on one line, because aya's
/// top-level errors ("the BPF_PROG_LOAD syscall failed") hide the kernel's
/// actual answer ("Operation not permitted") one level down.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(inner) = cur {
        let msg = inner.to_string();
        if !s.contains(&msg) {
            s.push_str(": ");
            s.push_str(&msg);
        }
        cur = inner.source();
    }
    // aya appends the verifier log even when the kernel wrote none.
    let trimmed = s.trim_end();
    let trimmed = trimmed.strip_suffix("Verifier output:").unwrap_or(trimmed);
    trimmed.trim_end().trim_end_matches('.').to_owned()
}
