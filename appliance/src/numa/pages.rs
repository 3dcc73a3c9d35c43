//! Where a process's pages are, and moving them: `move_pages(2)` on a
//! bounded list of addresses.
//!
//! `/proc/PID/numa_maps` answers "where are the pages" by walking every
//! page of every mapping; its cost grows with the address space (see
//! docs/numa.md for the measurement). Here a look asks about a fixed number
//! of addresses spread evenly over the mappings (`move_pages` with no target
//! nodes only reports), so its cost is bounded whatever the process's size.
//! Moving walks the same mappings from a cursor, a bounded number of pages
//! at a time, so a migration can be spread over looks under a budget.

use std::io;

/// One mapping of a process's address space that can hold pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Range {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
}

/// The mappings in `/proc/PID/maps`'s text that can hold movable pages:
/// not the inaccessible guard areas, not the kernel's special mappings.
pub fn parse_maps(text: &str) -> Vec<Range> {
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            let (start, end) = w.next()?.split_once('-')?;
            let perms = w.next()?;
            if perms.starts_with("---") {
                return None;
            }
            let path = w.nth(3).unwrap_or("");
            if matches!(
                path,
                "[vsyscall]" | "[vvar]" | "[vdso]" | "[vectors]" | "[vvar_vclock]"
            ) {
                return None;
            }
            Some(Range {
                start: u64::from_str_radix(start, 16).ok()?,
                end: u64::from_str_radix(end, 16).ok()?,
            })
        })
        .filter(|r| r.end > r.start)
        .collect()
}

/// The mappings of process `pid`.
pub fn ranges_of(pid: u32) -> io::Result<Vec<Range>> {
    Ok(parse_maps(&std::fs::read_to_string(format!(
        "/proc/{pid}/maps"
    ))?))
}

/// The kernel's page size.
pub fn page_size() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if n > 0 { n as u64 } else { 4096 }
}

/// `count` page addresses spread evenly over `ranges` (every page when
/// they hold fewer).
pub fn spread(ranges: &[Range], count: usize, page: u64) -> Vec<u64> {
    let pages: u64 = ranges.iter().map(|r| (r.end - r.start) / page).sum();
    if pages == 0 || count == 0 {
        return Vec::new();
    }
    let want = (count as u64).min(pages);
    // The i-th sample is page floor(i * pages / want) of the concatenation.
    let mut out = Vec::with_capacity(want as usize);
    let mut ranges = ranges.iter();
    let (mut range, mut before) = (ranges.next(), 0u64);
    for i in 0..want {
        let target = (i as u128 * pages as u128 / want as u128) as u64;
        while let Some(r) = range {
            let here = (r.end - r.start) / page;
            if target < before + here {
                out.push(r.start + (target - before) * page);
                break;
            }
            before += here;
            range = ranges.next();
        }
    }
    out
}

/// Where each page of `addrs` is in process `pid`: its node, or a negative
/// errno (`-ENOENT`: not present; `-EFAULT`: no page there).
pub fn where_are(pid: u32, addrs: &[u64]) -> io::Result<Vec<i32>> {
    let mut status = vec![0i32; addrs.len()];
    move_pages(pid, addrs, None, &mut status)?;
    Ok(status)
}

/// Moves the pages at `addrs` of process `pid` to `node`; each page's node
/// after the call, or a negative errno, in the returned list.
pub fn move_to(pid: u32, addrs: &[u64], node: u32) -> io::Result<Vec<i32>> {
    let nodes = vec![node as i32; addrs.len()];
    let mut status = vec![0i32; addrs.len()];
    move_pages(pid, addrs, Some(&nodes), &mut status)?;
    Ok(status)
}

fn move_pages(
    pid: u32,
    addrs: &[u64],
    nodes: Option<&[i32]>,
    status: &mut [i32],
) -> io::Result<()> {
    if addrs.is_empty() {
        return Ok(());
    }
    // Only pages mapped by this process alone move (MPOL_MF_MOVE): shared
    // library text stays where its other users put it.
    const MPOL_MF_MOVE: libc::c_int = 1 << 1;
    let ptrs: Vec<*const libc::c_void> = addrs.iter().map(|&a| a as *const libc::c_void).collect();
    // SAFETY: every array has `addrs.len()` elements and outlives the
    // call; the kernel only reads `ptrs` and `nodes` and writes `status`.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_pages,
            pid as libc::c_int,
            ptrs.len() as libc::c_ulong,
            ptrs.as_ptr(),
            nodes.map_or(std::ptr::null(), |n| n.as_ptr()),
            status.as_mut_ptr(),
            if nodes.is_some() { MPOL_MF_MOVE } else { 0 },
        )
    };
    // A positive return counts pages that could not be moved (their
    // status says why); only a negative one fails the call.
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Present pages per node of `homes.nodes` (in its order), from
/// `where_are`'s answer, which gives node numbers.
pub fn count_by_node_ids(status: &[i32], homes: &super::homes::Homes) -> Vec<u64> {
    let mut by = vec![0u64; homes.nodes.len()];
    for &s in status {
        let i = u32::try_from(s).ok().and_then(|n| homes.index_of(n));
        if let Some(n) = i.and_then(|i| by.get_mut(i)) {
            *n += 1;
        }
    }
    by
}

/// A place in a process's address space: how far a migration got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Cursor {
    /// The next address to look at.
    pub next: u64,
}

/// The next at most `count` page addresses of `ranges` from `cursor`, and
/// the cursor after them (`None` when the walk reached the end). A batch
/// never crosses a multiple of `count` pages in the address space: with
/// 512 pages of 4 KiB, each batch lies within one 2 MiB block, so a huge
/// page (which the kernel moves whole when any of its addresses is asked
/// to move) is in one batch, where the mover can see all of it move.
pub fn walk(
    ranges: &[Range],
    cursor: Cursor,
    count: usize,
    page: u64,
) -> (Vec<u64>, Option<Cursor>) {
    let block = count as u64 * page;
    let mut out = Vec::with_capacity(count.min(1 << 16));
    for r in ranges.iter().filter(|r| r.end > cursor.next) {
        let mut a = r.start.max(cursor.next);
        a -= a % page;
        while a < r.end {
            if out.len() == count || (!out.is_empty() && block > 0 && a % block == 0) {
                return (out, Some(Cursor { next: a }));
            }
            out.push(a);
            a += page;
        }
    }
    (out, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00400000-00452000 r-xp 00000000 08:02 173521      /usr/bin/dbus-daemon
00651000-00652000 rw-p 00051000 08:02 173521      /usr/bin/dbus-daemon
7f0000000000-7f0000001000 ---p 00000000 00:00 0
7f0000001000-7f0000005000 rw-p 00000000 00:00 0
7ffd5b7c8000-7ffd5b7ca000 r--p 00000000 00:00 0                  [vvar]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
";

    #[test]
    fn maps_keep_what_can_hold_pages() {
        let r = parse_maps(MAPS);
        assert_eq!(
            r,
            vec![
                Range {
                    start: 0x400000,
                    end: 0x452000
                },
                Range {
                    start: 0x651000,
                    end: 0x652000
                },
                Range {
                    start: 0x7f0000001000,
                    end: 0x7f0000005000
                },
            ]
        );
    }

    #[test]
    fn samples_spread_over_every_range_and_stay_in_them() {
        let ranges = [
            Range {
                start: 0,
                end: 40960,
            },
            Range {
                start: 1 << 20,
                end: (1 << 20) + 40960,
            },
        ];
        let s = spread(&ranges, 4, 4096);
        assert_eq!(s, vec![0, 5 * 4096, 1 << 20, (1 << 20) + 5 * 4096]);
        // Fewer pages than asked: every page once.
        assert_eq!(spread(&ranges, 100, 4096).len(), 20);
        assert!(spread(&[], 10, 4096).is_empty());
    }

    #[test]
    fn a_walk_resumes_where_it_stopped_and_ends() {
        let ranges = [
            Range {
                start: 0,
                end: 3 * 4096,
            },
            Range {
                start: 8 * 4096,
                end: 10 * 4096,
            },
        ];
        // Batches of 4 pages within 4-page blocks: the second range
        // begins a block.
        let (a, c) = walk(&ranges, Cursor::default(), 4, 4096);
        assert_eq!(a, vec![0, 4096, 8192]);
        let (b, end) = walk(&ranges, c.unwrap(), 4, 4096);
        assert_eq!(b, vec![8 * 4096, 9 * 4096]);
        assert_eq!(end, None);
    }

    #[test]
    fn a_batch_never_crosses_a_block_of_its_size() {
        // A mapping starting mid-block, as a 64 MiB malloc does: huge
        // pages inside it are block-aligned, and each batch is one block
        // or the part of one the mapping covers.
        let ranges = [Range {
            start: 2 * 4096,
            end: 11 * 4096,
        }];
        let mut batches = Vec::new();
        let mut cursor = Some(Cursor::default());
        while let Some(c) = cursor {
            let (b, next) = walk(&ranges, c, 4, 4096);
            batches.push(b.iter().map(|a| a / 4096).collect::<Vec<_>>());
            cursor = next;
        }
        assert_eq!(batches, vec![vec![2, 3], vec![4, 5, 6, 7], vec![8, 9, 10]]);
    }

    #[test]
    fn this_process_pages_are_found_on_a_node() {
        // Touch a buffer, then ask where its pages are: each on a node.
        let page = page_size();
        let buf = vec![1u8; (64 * page) as usize];
        let start = buf.as_ptr() as u64;
        let addrs: Vec<u64> = (1..63).map(|i| (start - start % page) + i * page).collect();
        let status = where_are(std::process::id(), &addrs).unwrap();
        assert!(status.iter().all(|&s| s >= 0), "{status:?}");
        let homes = super::super::homes::Homes {
            nodes: (0..64).map(|n| (n, vec![])).collect(),
            ..Default::default()
        };
        let by = count_by_node_ids(&status, &homes);
        assert_eq!(by.iter().sum::<u64>(), addrs.len() as u64);
        drop(buf);
    }
}
