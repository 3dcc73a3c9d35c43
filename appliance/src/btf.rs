//! Just enough of a BTF reader to find where a field sits inside a kernel
//! structure on the running kernel.
//!
//! aya-ebpf programs cannot carry CO-RE relocations, so programs that read
//! kernel structures (the process cache reads `task_struct`) are handed the
//! field offsets at load time instead. `/sys/kernel/btf/vmlinux` is the
//! kernel's own description of its types; this module answers "byte offset
//! of `mm_struct.arg_start`", looking through the anonymous structs and
//! unions kernels wrap fields in (layout randomisation, `union { ... }`).

use std::path::Path;

/// The kernel's BTF, as the kernel exports it.
pub const VMLINUX: &str = "/sys/kernel/btf/vmlinux";

const MAGIC: u16 = 0xeb9f;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
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
    /// The field is a bitfield or not byte-aligned.
    #[error("field {name}.{field} is not byte-aligned")]
    Unaligned {
        /// The structure.
        name: String,
        /// The field.
        field: String,
    },
}

struct Member {
    name: u32,
    ty: u32,
    bit_offset: u32,
}

struct Type {
    name: u32,
    kind: u32,
    /// For modifiers and typedefs, the type referred to.
    target: u32,
    members: Vec<Member>,
}

/// A parsed BTF blob: its types (index = type id) and string table.
pub struct Btf {
    types: Vec<Type>,
    strings: Vec<u8>,
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, BtfError> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(BtfError::Malformed("truncated"))
}

impl Btf {
    /// The running kernel's BTF.
    pub fn kernel() -> Result<Btf, BtfError> {
        Btf::from_file(Path::new(VMLINUX))
    }

    /// BTF from a file (the kernel's, or a saved copy in tests).
    pub fn from_file(path: &Path) -> Result<Btf, BtfError> {
        let bytes = std::fs::read(path).map_err(|source| BtfError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Btf::parse(&bytes)
    }

    /// Parses little-endian BTF (every architecture nodus runs on).
    pub fn parse(b: &[u8]) -> Result<Btf, BtfError> {
        if b.len() < 24 || u16::from_le_bytes([b[0], b[1]]) != MAGIC {
            return Err(BtfError::Malformed("bad magic"));
        }
        let hdr_len = u32_at(b, 4)? as usize;
        let (type_off, type_len) = (u32_at(b, 8)? as usize, u32_at(b, 12)? as usize);
        let (str_off, str_len) = (u32_at(b, 16)? as usize, u32_at(b, 20)? as usize);
        let section = |off: usize, len: usize| {
            b.get(hdr_len + off..hdr_len + off + len)
                .ok_or(BtfError::Malformed("section out of bounds"))
        };
        let type_bytes = section(type_off, type_len)?;
        let strings = section(str_off, str_len)?.to_vec();
        // Type id 0 is `void`.
        let mut types = vec![Type {
            name: 0,
            kind: 0,
            target: 0,
            members: Vec::new(),
        }];
        let mut at = 0;
        while at < type_bytes.len() {
            let name = u32_at(type_bytes, at)?;
            let info = u32_at(type_bytes, at + 4)?;
            let size_or_type = u32_at(type_bytes, at + 8)?;
            at += 12;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let kind_flag = info >> 31 == 1;
            let mut members = Vec::new();
            let extra = match kind {
                1 | 14 | 17 => 4, // int, var, decl_tag
                3 => 12,          // array
                KIND_STRUCT | KIND_UNION => {
                    for i in 0..vlen {
                        let m = at + i * 12;
                        let offset = u32_at(type_bytes, m + 8)?;
                        members.push(Member {
                            name: u32_at(type_bytes, m)?,
                            ty: u32_at(type_bytes, m + 4)?,
                            bit_offset: if kind_flag {
                                offset & 0xff_ffff
                            } else {
                                offset
                            },
                        });
                    }
                    vlen * 12
                }
                6 | 13 => vlen * 8,            // enum, func_proto
                15 | 19 => vlen * 12,          // datasec, enum64
                2 | 7 | 8..=12 | 16 | 18 => 0, // ptr, fwd, typedef, modifiers, func, float, type_tag
                _ => return Err(BtfError::Malformed("unknown type kind")),
            };
            at += extra;
            types.push(Type {
                name,
                kind,
                target: size_or_type,
                members,
            });
        }
        Ok(Btf { types, strings })
    }

    fn name(&self, off: u32) -> &[u8] {
        let rest = self.strings.get(off as usize..).unwrap_or_default();
        &rest[..rest.iter().position(|&c| c == 0).unwrap_or(rest.len())]
    }

    /// Follows typedefs and qualifiers to the type they name.
    fn resolve(&self, mut id: u32) -> Option<&Type> {
        for _ in 0..32 {
            let t = self.types.get(id as usize)?;
            match t.kind {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT | KIND_TYPE_TAG => {
                    id = t.target
                }
                _ => return Some(t),
            }
        }
        None
    }

    /// Byte offset of `field` in `struct name`, including fields reached
    /// through anonymous struct or union members.
    pub fn field_offset(&self, name: &str, field: &str) -> Result<u32, BtfError> {
        let ty = self
            .types
            .iter()
            .find(|t| {
                t.kind == KIND_STRUCT
                    && !t.members.is_empty()
                    && self.name(t.name) == name.as_bytes()
            })
            .ok_or_else(|| BtfError::NoStruct(name.into()))?;
        let bits = self
            .find_member(ty, field.as_bytes(), 0)
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

    fn find_member(&self, ty: &Type, field: &[u8], depth: usize) -> Option<u32> {
        if depth > MAX_NESTING {
            return None;
        }
        for m in &ty.members {
            if self.name(m.name) == field {
                return Some(m.bit_offset);
            }
        }
        ty.members
            .iter()
            .filter(|m| m.name == 0 || self.name(m.name).is_empty())
            .find_map(|m| {
                let inner = self.resolve(m.ty)?;
                if !matches!(inner.kind, KIND_STRUCT | KIND_UNION) {
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
}
