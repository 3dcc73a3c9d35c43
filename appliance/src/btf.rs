//! Just enough of a BTF reader to find where a field sits inside a kernel
//! structure on the running kernel.
//!
//! aya-ebpf programs cannot carry CO-RE relocations, so programs that read
//! kernel structures (the process cache reads `task_struct`) are handed the
//! field offsets at load time instead. `/sys/kernel/btf/vmlinux` is the
//! kernel's own description of its types; this module answers "byte offset
//! of `mm_struct.arg_start`", looking through the anonymous structs and
//! unions kernels wrap fields in (layout randomisation, `union { ... }`).

use std::{io::Read, path::Path};

/// The kernel's BTF, as the kernel exports it.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_TYPE_TAG: u32 = 18;
/// Deepest nesting of anonymous members followed; kernels use two or three.
const MAX_NESTING: usize = 8;

/// Why an offset could not be found.
#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Read {
        /// The BTF file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The bytes are not BTF this reader understands.
    #[error("malformed BTF: {0}")]
    Malformed(&'static str),
    /// No structure of that name.
    #[error("no struct {0} in the kernel's BTF")]
    NoStruct(String),
    /// The structure has no such field, directly or in an anonymous member.
    #[error("no field {field} in struct {name} in the kernel's BTF")]
    NoField {
        /// The structure.
        name: String,
        /// The field looked for.
        field: String,
    },
    /// No enumeration of the kernel's has a value of that name.
    #[error("no enumerator {0} in the kernel's BTF")]
    NoEnumerator(String),
    /// The field is a bitfield or not byte-aligned.
    #[error("field {name}.{field} is not byte-aligned")]
    Unaligned {
        /// The structure.
        name: String,
        /// The field.
        field: String,
    },
}

/// A parsed BTF blob. Only an index of where each type starts is built;
/// names and members are read from the raw bytes when asked, so parsing the
/// kernel's five-odd megabytes costs one buffer and one `u32` per type.
pub struct Btf {
    bytes: Buffer,
    strings: std::ops::Range<usize>,
    /// Byte offset (within `bytes`) of each type; index = type id - 1.
    index: Vec<u32>,
}

/// A zeroed buffer mapped straight from the kernel and unmapped on drop
/// (`memmap2`'s anonymous mapping).
///
/// The kernel's BTF is read once at start and thrown away; from the heap,
/// its megabytes would stay in the process's RSS for good (the allocator
/// keeps what it was given), so it never touches the heap.
struct Buffer(Option<memmap2::MmapMut>);

impl Buffer {
    fn new(len: usize) -> std::io::Result<Buffer> {
        // A zero-length mapping is refused by the kernel; nothing to hold.
        let map = (len > 0)
            .then(|| memmap2::MmapMut::map_anon(len))
            .transpose()?;
        Ok(Buffer(map))
    }
}

impl std::ops::Deref for Buffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl std::ops::DerefMut for Buffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.0.as_deref_mut().unwrap_or_default()
    }
}

/// A struct or union member.
struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Malformed("truncated"))
}

/// Bytes of kind-specific data after a type's 12-byte header.
fn trailer(kind: u32, vlen: usize) -> Result<usize, BtfError> {
    Ok(match kind {
        1 | 14 | 17 => 4,                      // int, var, decl_tag
        3 => 12,                               // array
        KIND_STRUCT | KIND_UNION => vlen * 12, // members
        6 | 13 => vlen * 8,                    // enum, func_proto
        15 | 19 => vlen * 12,                  // datasec, enum64
        2 | 7 | 8..=12 | 16 | 18 => 0, // ptr, fwd, typedef, modifiers, func, float, type_tag
        _ => return Err(BtfError::Malformed("unknown type kind")),
    })
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Btf, BtfError> {
        Btf::from_file(Path::new(VMLINUX))
    }

    /// BTF from a file (the kernel's, or a saved copy in tests).
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let read = |source| BtfError::Read {
            path: path.display().to_string(),
            source,
        };
        let mut file = std::fs::File::open(path).map_err(read)?;
        let len = file.metadata().map_err(read)?.len() as usize;
        let mut bytes = Buffer::new(len).map_err(read)?;
        file.read_exact(&mut bytes).map_err(read)?;
        Btf::from_bytes(bytes)
    }

    /// Parses little-endian BTF (every architecture nodus runs on).
    pub fn parse(b: &[u8]) -> Result<Btf, BtfError> {
        let mut bytes = Buffer::new(b.len()).map_err(|source| BtfError::Read {
            path: "<memory>".into(),
            source,
        })?;
        bytes.copy_from_slice(b);
        Btf::from_bytes(bytes)
    }

    fn from_bytes(bytes: Buffer) -> Result<Btf, BtfError> {
        let b = &bytes;
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != MAGIC {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let section = |off: u32, len: u32| {
            let start = hdr_len + off as usize;
            let end = start + len as usize;
            (end <= b.len())
                .then_some(start..end)
                .ok_or(BtfError::Malformed("section out of bounds"))
        };
        let types = section(u32_at(b, 8)?, u32_at(b, 12)?)?;
        let strings = section(u32_at(b, 16)?, u32_at(b, 20)?)?;
        let mut index = Vec::new();
        let mut at = types.start;
        while at < types.end {
            let info = u32_at(b, at + 4)?;
            index.push(at as u32);
            at += 12 + trailer((info >> 24) & 0x1f, (info & 0xffff) as usize)?;
        }
        if at != types.end {
            return Err(BtfError::Malformed("truncated type section"));
        }
        Ok(Btf {
            bytes,
            strings,
            index,
        })
    }

    fn name(&self, off: u32) -> &[u8] {
        let strings = &self.bytes[self.strings.clone()];
        let rest = strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&c| c == 0).unwrap_or(rest.len())]
    }

    /// (name offset, kind, size-or-type, vlen, kind_flag) of type `id`.
    fn header(&self, id: u32) -> Option<(u32, u32, u32, usize, bool)> {
        let at = *self.index.get((id as usize).checked_sub(1)?)? as usize;
        let b = &self.bytes;
        let info = u32_at(b, at + 4).ok()?;
        Some((
            u32_at(b, at).ok()?,
            (info >> 24) & 0x1f,
            u32_at(b, at + 8).ok()?,
            (info & 0xffff) as usize,
            info >> 31 == 1,
        ))
    }

    fn members(&self, id: u32) -> Vec<Member> {
        let Some((_, _, _, vlen, kind_flag)) = self.header(id) else {
            return Vec::new();
        };
        let at = self.index[id as usize - 1] as usize + 12;
        (0..vlen)
            .filter_map(|i| {
                let m = at + i * 12;
                let offset = u32_at(&self.bytes, m + 8).ok()?;
                Some(Member {
                    name: u32_at(&self.bytes, m).ok()?,
                    ty: u32_at(&self.bytes, m + 4).ok()?,
                    bit_offset: if kind_flag {
                        offset & 0xff_ffff
                    } else {
                        offset
                    },
                })
            })
            .collect()
    }

    /// Follows typedefs and qualifiers to the id of the type they name.
    fn resolve(&self, mut id: u32) -> Option<(u32, u32)> {
        for _ in 0..32 {
            let (_, kind, target, _, _) = self.header(id)?;
            match kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = target
                }
                _ => return Some((id, kind)),
            }
        }
        None
    }

    /// Byte offset of `field` in `struct name`, including fields reached
    /// through anonymous struct or union members.
    pub fn field_offset(&self, name: &str, field: &str) -> Result<u32, BtfError> {
        let id = (1..=self.index.len() as u32)
            .find(|&id| {
                self.header(id).is_some_and(|(n, kind, _, vlen, _)| {
                    kind == KIND_STRUCT && vlen > 0 && self.name(n) == name.as_bytes()
                })
            })
            .ok_or_else(|| BtfError::NoStruct(name.into()))?;
        let bits = self
            .find_member(id, field.as_bytes(), 0)
            .ok_or_else(|| BtfError::NoField {
                name: name.into(),
                field: field.into(),
            })?;
        if bits % 8 != 0 {
            return Err(BtfError::Unaligned {
                name: name.into(),
                field: field.into(),
            });
        }
        Ok(bits / 8)
    }

    /// The value of the enumerator `name` (a `PG_head` of `enum pageflags`:
    /// kernel configuration decides such numbers).
    pub fn enumerator(&self, name: &str) -> Result<i64, BtfError> {
        (1..=self.index.len() as u32)
            .filter(|&id| self.header(id).is_some_and(|h| h.1 == KIND_ENUM))
            .find_map(|id| {
                let (_, _, _, vlen, _) = self.header(id)?;
                let at = self.index[id as usize - 1] as usize + 12;
                (0..vlen).find_map(|i| {
                    let e = at + i * 8;
                    let n = u32_at(&self.bytes, e).ok()?;
                    let v = u32_at(&self.bytes, e + 4).ok()? as i32;
                    (self.name(n) == name.as_bytes()).then_some(i64::from(v))
                })
            })
            .ok_or_else(|| BtfError::NoEnumerator(name.into()))
    }

    fn find_member(&self, id: u32, field: &[u8], depth: usize) -> Option<u32> {
        if depth > MAX_NESTING {
            return None;
        }
        let members = self.members(id);
        if let Some(m) = members.iter().find(|m| self.name(m.name) == field) {
            return Some(m.bit_offset);
        }
        members
            .iter()
            .filter(|m| self.name(m.name).is_empty())
            .find_map(|m| {
                let (inner, kind) = self.resolve(m.ty)?;
                if !matches!(kind, KIND_STRUCT | KIND_UNION) {
                    return None;
                }
                Some(m.bit_offset + self.find_member(inner, field, depth + 1)?)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Builds BTF for:
    /// `struct outer { int a; union { long b; struct { int c; int d; }; }; }`.
    fn sample() -> Vec<u8> {
        let strings = b"\0int\0outer\0a\0b\0c\0d\0long\0".to_vec();
        let s = |name: &str| {
            let needle = [b"\0", name.as_bytes(), b"\0"].concat();
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .unwrap() as u32
                + 1
        };
        let mut t = Vec::new();
        let mut push = |words: &[u32]| words.iter().for_each(|w| t.extend(w.to_le_bytes()));
        // 1: int (4 bytes)
        push(&[s("int"), 1 << 24, 4, 32]);
        // 2: long (8 bytes)
        push(&[s("long"), 1 << 24, 8, 64]);
        // 3: anonymous struct { int c; int d; }
        push(&[0, (KIND_STRUCT << 24) | 2, 8, s("c"), 1, 0, s("d"), 1, 32]);
        // 4: anonymous union { long b; struct 3; }
        push(&[0, (KIND_UNION << 24) | 2, 8, s("b"), 2, 0, 0, 3, 0]);
        // 5: struct outer { int a; union 4 at byte 8; }
        push(&[
            s("outer"),
            (KIND_STRUCT << 24) | 2,
            16,
            s("a"),
            1,
            0,
            0,
            4,
            64,
        ]);
        let mut b = Vec::new();
        for w in [
            0x0001_eb9fu32,
            24,
            0,
            t.len() as u32,
            t.len() as u32,
            strings.len() as u32,
        ] {
            b.extend(w.to_le_bytes());
        }
        b.extend(&t);
        b.extend(&strings);
        b
    }

    #[test]
    fn finds_direct_and_anonymous_fields() {
        let btf = Btf::parse(&sample()).unwrap();
        assert_eq!(btf.field_offset("outer", "a").unwrap(), 0);
        assert_eq!(btf.field_offset("outer", "b").unwrap(), 8);
        assert_eq!(btf.field_offset("outer", "c").unwrap(), 8);
        assert_eq!(btf.field_offset("outer", "d").unwrap(), 12);
    }

    #[test]
    fn names_what_is_missing() {
        let btf = Btf::parse(&sample()).unwrap();
        assert!(matches!(
            btf.field_offset("outer", "zz"),
            Err(BtfError::NoField { .. })
        ));
        assert!(matches!(
            btf.field_offset("nope", "a"),
            Err(BtfError::NoStruct(_))
        ));
    }

    #[test]
    fn refuses_garbage_without_panicking() {
        assert!(Btf::parse(b"").is_err());
        assert!(Btf::parse(&[0x9f, 0xeb, 1, 0, 24, 0, 0, 0, 0, 0, 0, 0, 255, 255, 0, 0]).is_err());
        let mut truncated = sample();
        truncated.truncate(40);
        assert!(Btf::parse(&truncated).is_err());
    }

    #[test]
    fn reads_the_running_kernels_task_struct() {
        let btf = Btf::kernel().unwrap();
        for field in ["pid", "tgid", "real_parent", "start_boottime", "mm"] {
            btf.field_offset("task_struct", field).unwrap();
        }
        assert!(btf.field_offset("mm_struct", "arg_start").unwrap() > 0);
    }

    #[test]
    fn reads_the_running_kernels_page_flags() {
        let btf = Btf::kernel().unwrap();
        let head = btf.enumerator("PG_head").unwrap();
        assert!((1..64).contains(&head), "PG_head = {head}");
        assert_eq!(btf.enumerator("PG_locked").unwrap(), 0);
        assert!(matches!(
            btf.enumerator("PG_nonesuch"),
            Err(BtfError::NoEnumerator(_))
        ));
    }
}
