//! Loading the hit/miss programs (`ebpf/programs/src/bin/pagecache.rs`)
//! and reading what they counted.
//!
//! The programs attach to the filemap tracepoints raw, so they need the
//! kernel's structure offsets, found here in its BTF. Where the kernel
//! allows fentry/fexit, reads, splices and faults are counted around their
//! functions and hits are exact ([`Counting::Fentry`]); elsewhere the
//! tracepoints alone count and hits are an estimate. Every counter is per
//! CPU in the kernel and summed here.

use std::collections::HashMap;

use aya::{
    maps::{MapData, MapError, PerCpuArray, PerCpuHashMap, PerCpuValues, RingBuf},
    programs::{FEntry, FExit},
};
use nodus_common::{
    objects::pagecache::{OBJECT, maps, programs},
    pagecache::{COMM_LEN, CacheEvent, Counts, FileKey, FileLayout, MODE_FENTRY, MODE_TRACEPOINTS},
};

use super::residency::page_size;
use crate::{
    btf::{Btf, BtfError},
    ebpf,
};

/// The tracepoints both ways of counting use, and the program on each.
const TRACEPOINTS: [(&str, &str); 3] = [
    (programs::pagecache_fault, "mm_filemap_fault"),
    (programs::pagecache_add, "mm_filemap_add_to_page_cache"),
    (programs::pagecache_exec, "sched_process_exec"),
];

/// Reads with tracepoints alone.
const READS_BY_TRACEPOINT: (&str, &str) = (programs::pagecache_get_pages, "mm_filemap_get_pages");

/// Reads, splices and faults with fentry/fexit: (program, kernel function,
/// fexit).
const READS_BY_FENTRY: [(&str, &str, bool); 5] = [
    (programs::pagecache_read_entry, "filemap_read", false),
    (programs::pagecache_read_exit, "filemap_read", true),
    (
        programs::pagecache_splice_entry,
        "filemap_splice_read",
        false,
    ),
    (programs::pagecache_splice_exit, "filemap_splice_read", true),
    (programs::pagecache_fault_exit, "filemap_fault", true),
];

/// How the programs count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Counting {
    /// fentry/fexit around the read, splice and fault paths: hits counted.
    Fentry,
    /// Tracepoints alone: hits estimated as accesses less misses; why
    /// fentry could not be used.
    Tracepoints(String),
}

impl Counting {
    /// `fentry` or `tracepoints`, as status and JSON show it.
    pub fn name(&self) -> &'static str {
        match self {
            Counting::Fentry => "fentry",
            Counting::Tracepoints(_) => "tracepoints",
        }
    }

    /// Whether hits are counted rather than estimated.
    pub fn exact(&self) -> bool {
        *self == Counting::Fentry
    }
}

/// Why the counting programs could not run.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The kernel's BTF lacks a structure field or flag the programs read.
    #[error("reading the kernel's layout")]
    Layout(#[source] BtfError),
    /// The kernel refused the object.
    #[error("loading the pagecache programs")]
    Load(#[source] aya::EbpfError),
    /// A program could not be loaded or attached (an older kernel may lack
    /// the filemap read and fault tracepoints, or refuse fentry).
    #[error(transparent)]
    Program(#[from] ebpf::AttachError),
    /// A map the object must have is missing or of another type.
    #[error("map {map}")]
    Map {
        /// The map.
        map: &'static str,
        /// What went wrong.
        #[source]
        source: MapError,
    },
    /// aya could not read the kernel's BTF (needed for fentry).
    #[error("reading the kernel's BTF for fentry")]
    AyaBtf(#[source] aya::BtfError),
}

/// What the programs send as events, chosen at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Emit {
    /// Count only (the daemon).
    Nothing,
    /// An event per miss (`nodus cache trace`).
    Misses,
    /// An event per miss and per access (recording an access trace).
    Everything,
}

/// How many files, processes and cgroups the kernel keeps counts for (the
/// least recently counted make room).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableSizes {
    /// Files.
    pub files: u32,
    /// Processes.
    pub processes: u32,
    /// Cgroups.
    pub cgroups: u32,
}

/// Pages accessed and inserted by one process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessEntry {
    /// The process id.
    pub pid: u32,
    /// Its command name, as the last counting thread had it.
    pub comm: String,
    /// The counts.
    pub counts: Counts,
}

/// Everything the programs counted so far.
#[derive(Clone, Debug, Default)]
pub struct Snapshot {
    /// Summed over all files.
    pub totals: Counts,
    /// Per file.
    pub files: Vec<(FileKey, Counts)>,
    /// Per process.
    pub processes: Vec<ProcessEntry>,
    /// Per cgroup v2 id.
    pub cgroups: Vec<(u64, Counts)>,
}

/// The attached programs and their maps.
pub struct HitCounter {
    /// Holds the programs (and so their links) for as long as it lives.
    ebpf: aya::Ebpf,
    /// How they count.
    pub counting: Counting,
}

/// The kernel-structure offsets the programs need, from this kernel's BTF.
pub fn file_layout(btf: &Btf) -> Result<FileLayout, BtfError> {
    let folio = |f| btf.field_offset("folio", f);
    let head = btf.enumerator("PG_head")?;
    Ok(FileLayout {
        filled: 1,
        mapping_host: btf.field_offset("address_space", "host")?,
        inode_ino: btf.field_offset("inode", "i_ino")?,
        inode_sb: btf.field_offset("inode", "i_sb")?,
        inode_size: btf.field_offset("inode", "i_size")?,
        inode_mode: btf.field_offset("inode", "i_mode")?,
        inode_rdev: btf.field_offset("inode", "i_rdev")?,
        sb_dev: btf.field_offset("super_block", "s_dev")?,
        folio_flags: folio("flags")?,
        folio_mapping: folio("mapping")?,
        folio_index: folio("index")?,
        folio_nr_pages: folio("_nr_pages")?,
        head_bit: head as u32,
        page_shift: page_size().trailing_zeros(),
        // Only the fentry programs read these; a kernel without them counts
        // with tracepoints (the fentry programs then fail to load).
        kiocb_filp: btf.field_offset("kiocb", "ki_filp").unwrap_or(0),
        kiocb_pos: btf.field_offset("kiocb", "ki_pos").unwrap_or(0),
        file_mapping: btf.field_offset("file", "f_mapping").unwrap_or(0),
        iter_count: btf.field_offset("iov_iter", "count").unwrap_or(0),
    })
}

fn sum(values: &PerCpuValues<Counts>) -> Counts {
    values.iter().fold(Counts::default(), |a, c| Counts {
        accesses: a.accesses + c.accesses,
        misses: a.misses + c.misses,
        hits: a.hits + c.hits,
    })
}

/// The command name in a NUL-padded kernel buffer.
pub fn comm(raw: &[u8; COMM_LEN]) -> String {
    let end = raw.iter().position(|&b| b == 0).unwrap_or(COMM_LEN);
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

impl HitCounter {
    /// Loads the programs for this kernel with tables of `sizes`, sending
    /// `emit` events into a ring buffer of `ring_bytes`, and attaches them:
    /// with fentry where the kernel allows it, else with tracepoints alone.
    /// `no_fentry` skips trying fentry (a probe already said why not: each
    /// try costs a load of the object and a parse of the kernel's BTF).
    pub fn attach(
        sizes: TableSizes,
        emit: Emit,
        ring_bytes: u32,
        no_fentry: Option<String>,
    ) -> Result<HitCounter, KernelError> {
        let btf = Btf::kernel().map_err(KernelError::Layout)?;
        let layout = file_layout(&btf).map_err(KernelError::Layout)?;
        drop(btf);
        let emit: u32 = match emit {
            Emit::Nothing => nodus_common::pagecache::EMIT_NONE,
            Emit::Misses => nodus_common::pagecache::EMIT_MISSES,
            Emit::Everything => nodus_common::pagecache::EMIT_ALL,
        };
        let load = |mode: u32| {
            ebpf::load_with(&OBJECT, |loader| {
                loader
                    .override_global("FILE_LAYOUT", &layout, true)
                    .override_global("EMIT_EVENTS", &emit, true)
                    .override_global("COUNT_MODE", &mode, true)
                    .map_max_entries(maps::PC_FILES, sizes.files)
                    .map_max_entries(maps::PC_PROCESSES, sizes.processes)
                    .map_max_entries(maps::PC_NAMES, sizes.processes)
                    .map_max_entries(maps::PC_CGROUPS, sizes.cgroups)
                    .map_max_entries(maps::PC_READS, sizes.processes)
                    .map_max_entries(maps::PC_CALLS, sizes.processes)
                    .map_max_entries(maps::PC_FRESH, sizes.files)
                    .map_max_entries(maps::PC_EVENTS, ring_bytes);
            })
            .map_err(KernelError::Load)
        };
        let fentry = match no_fentry {
            Some(why) => Err(why),
            None => load(MODE_FENTRY)
                .and_then(|mut bpf| {
                    attach_fentry(&mut bpf)?;
                    ebpf::attach_raw_tracepoints(&mut bpf, &TRACEPOINTS)?;
                    Ok(bpf)
                })
                .map_err(|e| ebpf::error_chain(&e)),
        };
        let (bpf, counting) = match fentry {
            Ok(bpf) => (bpf, Counting::Fentry),
            Err(why) => {
                let mut bpf = load(MODE_TRACEPOINTS)?;
                ebpf::attach_raw_tracepoints(&mut bpf, &TRACEPOINTS)?;
                ebpf::attach_raw_tracepoints(&mut bpf, &[READS_BY_TRACEPOINT])?;
                (bpf, Counting::Tracepoints(why))
            }
        };
        Ok(HitCounter {
            ebpf: bpf,
            counting,
        })
    }

    fn map(&self, map: &'static str) -> Result<&aya::maps::Map, KernelError> {
        self.ebpf.map(map).ok_or(KernelError::Map {
            map,
            source: MapError::InvalidName { name: map.into() },
        })
    }

    /// The totals alone (cheap: one per-CPU slot).
    pub fn totals(&self) -> Result<Counts, KernelError> {
        let err = |source| KernelError::Map {
            map: maps::PC_TOTALS,
            source,
        };
        let totals: PerCpuArray<&MapData, Counts> =
            PerCpuArray::try_from(self.map(maps::PC_TOTALS)?).map_err(err)?;
        Ok(sum(&totals.get(&0, 0).map_err(err)?))
    }

    /// Everything counted so far. Entries the kernel evicts while this reads
    /// are skipped.
    pub fn snapshot(&self) -> Result<Snapshot, KernelError> {
        fn table<K: aya::Pod, V: aya::Pod>(
            counter: &HitCounter,
            map: &'static str,
        ) -> Result<Vec<(K, PerCpuValues<V>)>, KernelError> {
            let m: PerCpuHashMap<&MapData, K, V> = PerCpuHashMap::try_from(counter.map(map)?)
                .map_err(|source| KernelError::Map { map, source })?;
            Ok(m.iter().filter_map(Result::ok).collect())
        }
        let files = table::<FileKey, Counts>(self, maps::PC_FILES)?
            .into_iter()
            .map(|(k, v)| (k, sum(&v)))
            .collect();
        let cgroups = table::<u64, Counts>(self, maps::PC_CGROUPS)?
            .into_iter()
            .map(|(k, v)| (k, sum(&v)))
            .collect();
        let names: HashMap<u32, [u8; COMM_LEN]> = {
            let map = maps::PC_NAMES;
            let m: aya::maps::HashMap<&MapData, u32, [u8; COMM_LEN]> =
                aya::maps::HashMap::try_from(self.map(map)?)
                    .map_err(|source| KernelError::Map { map, source })?;
            m.iter().filter_map(Result::ok).collect()
        };
        let processes = table::<u32, Counts>(self, maps::PC_PROCESSES)?
            .into_iter()
            .map(|(pid, per_cpu)| ProcessEntry {
                pid,
                comm: names.get(&pid).map(comm).unwrap_or_default(),
                counts: sum(&per_cpu),
            })
            .collect();
        Ok(Snapshot {
            totals: self.totals()?,
            files,
            processes,
            cgroups,
        })
    }

    /// Events lost to a full ring buffer.
    pub fn drops(&self) -> Result<u64, KernelError> {
        let err = |source| KernelError::Map {
            map: maps::PC_DROPS,
            source,
        };
        let drops: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(maps::PC_DROPS)?).map_err(err)?;
        Ok(drops.get(&0, 0).map_err(err)?.iter().sum())
    }

    /// The event ring (taken: call once).
    pub fn events(&mut self) -> Result<RingBuf<MapData>, KernelError> {
        let map = maps::PC_EVENTS;
        let taken = self.ebpf.take_map(map).ok_or(KernelError::Map {
            map,
            source: MapError::InvalidName { name: map.into() },
        })?;
        RingBuf::try_from(taken).map_err(|source| KernelError::Map { map, source })
    }
}

/// Loads and attaches the fentry/fexit programs (aya reads the kernel's
/// BTF for them; the memory it took is handed back after).
fn attach_fentry(bpf: &mut aya::Ebpf) -> Result<(), KernelError> {
    let btf = aya::Btf::from_sys_fs().map_err(KernelError::AyaBtf)?;
    let attached = (|| {
        for (name, function, exit) in READS_BY_FENTRY {
            let err = |source| ebpf::AttachError::Attach {
                program: name,
                target: function,
                source,
            };
            if exit {
                let p: &mut FExit = ebpf::program(bpf, name)?;
                p.load(function, &btf).map_err(err)?;
                p.attach().map_err(err)?;
            } else {
                let p: &mut FEntry = ebpf::program(bpf, name)?;
                p.load(function, &btf).map_err(err)?;
                p.attach().map_err(err)?;
            }
        }
        Ok(())
    })();
    drop(btf);
    ebpf::release_freed_memory();
    attached
}

/// Decodes one ring-buffer record.
pub fn decode(bytes: &[u8]) -> Option<CacheEvent> {
    ebpf::read_record(bytes)
}
