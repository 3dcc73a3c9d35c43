//! Just enough ELF64 reading to check an eBPF object: machine type and the
//! bytes of one named section. No dependency, no allocation beyond the file.

use std::fmt;

/// `e_machine` of an eBPF object.
pub const EM_BPF: u16 = 247;

/// Why a file is not a usable eBPF object.
#[derive(Debug, PartialEq, Eq)]
pub enum ElfError {
    /// Too short, wrong magic, or not 64-bit little-endian.
    NotElf64Le,
    /// An ELF file for another machine.
    WrongMachine(u16),
    /// A header points outside the file.
    Truncated,
    /// The named section does not exist.
    MissingSection(String),
}

impl fmt::Display for ElfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ElfError::NotElf64Le => write!(f, "not a 64-bit little-endian ELF file"),
            ElfError::WrongMachine(m) => {
                write!(f, "ELF machine {m}, expected {EM_BPF} (eBPF)")
            }
            ElfError::Truncated => write!(f, "truncated ELF: a header points past the end"),
            ElfError::MissingSection(s) => write!(f, "no `{s}` section"),
        }
    }
}

impl std::error::Error for ElfError {}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ElfError> {
    let s = b.get(off..off + 2).ok_or(ElfError::Truncated)?;
    Ok(u16::from_le_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ElfError> {
    let s = b.get(off..off + 4).ok_or(ElfError::Truncated)?;
    Ok(u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
}

fn u64_at(b: &[u8], off: usize) -> Result<usize, ElfError> {
    let s = b.get(off..off + 8).ok_or(ElfError::Truncated)?;
    let mut a = [0u8; 8];
    a.copy_from_slice(s);
    usize::try_from(u64::from_le_bytes(a)).map_err(|_| ElfError::Truncated)
}

/// Returns the contents of section `name` of the eBPF object `elf`, after
/// checking that it is a little-endian 64-bit ELF for the BPF machine.
pub fn bpf_section<'a>(elf: &'a [u8], name: &str) -> Result<&'a [u8], ElfError> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" || elf[4] != 2 || elf[5] != 1 {
        return Err(ElfError::NotElf64Le);
    }
    let machine = u16_at(elf, 18)?;
    if machine != EM_BPF {
        return Err(ElfError::WrongMachine(machine));
    }
    let shoff = u64_at(elf, 40)?;
    let shentsize = usize::from(u16_at(elf, 58)?);
    let shnum = usize::from(u16_at(elf, 60)?);
    let shstrndx = usize::from(u16_at(elf, 62)?);
    let header = |i: usize| -> Result<(u32, usize, usize), ElfError> {
        let h = shoff + i * shentsize;
        Ok((u32_at(elf, h)?, u64_at(elf, h + 24)?, u64_at(elf, h + 32)?))
    };
    let (_, str_off, str_size) = header(shstrndx)?;
    let strtab = elf
        .get(str_off..str_off + str_size)
        .ok_or(ElfError::Truncated)?;
    for i in 0..shnum {
        let (name_off, off, size) = header(i)?;
        let rest = strtab.get(name_off as usize..).ok_or(ElfError::Truncated)?;
        let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
        if &rest[..end] == name.as_bytes() {
            return elf.get(off..off + size).ok_or(ElfError::Truncated);
        }
    }
    Err(ElfError::MissingSection(name.to_owned()))
}

/// The names of every symbol in the object's symbol table: its programs
/// and maps, among others. Call after [`bpf_section`] accepted the file.
pub fn symbol_names(elf: &[u8]) -> Result<Vec<String>, ElfError> {
    const SHT_SYMTAB: u32 = 2;
    const SYM_SIZE: usize = 24;
    let shoff = u64_at(elf, 40)?;
    let shentsize = usize::from(u16_at(elf, 58)?);
    let shnum = usize::from(u16_at(elf, 60)?);
    let mut names = Vec::new();
    for i in 0..shnum {
        let h = shoff + i * shentsize;
        if u32_at(elf, h + 4)? != SHT_SYMTAB {
            continue;
        }
        let (off, size) = (u64_at(elf, h + 24)?, u64_at(elf, h + 32)?);
        let link = u32_at(elf, h + 40)? as usize;
        let sh = shoff + link * shentsize;
        let (str_off, str_size) = (u64_at(elf, sh + 24)?, u64_at(elf, sh + 32)?);
        let strtab = elf
            .get(str_off..str_off + str_size)
            .ok_or(ElfError::Truncated)?;
        let table = elf.get(off..off + size).ok_or(ElfError::Truncated)?;
        for sym in table.as_chunks::<SYM_SIZE>().0 {
            let name_off = u32_at(sym, 0)? as usize;
            let rest = strtab.get(name_off..).ok_or(ElfError::Truncated)?;
            let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
            if end > 0 {
                names.push(String::from_utf8_lossy(&rest[..end]).into_owned());
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_non_elf_and_foreign_machines() {
        assert_eq!(bpf_section(b"hello", "x"), Err(ElfError::NotElf64Le));
        let mut fake = vec![0u8; 64];
        fake[..4].copy_from_slice(b"\x7fELF");
        fake[4] = 2;
        fake[5] = 1;
        fake[18] = 183; // EM_AARCH64
        assert_eq!(bpf_section(&fake, "x"), Err(ElfError::WrongMachine(183)));
    }

    #[test]
    fn truncated_headers_are_errors_not_panics() {
        let mut fake = vec![0u8; 64];
        fake[..4].copy_from_slice(b"\x7fELF");
        fake[4] = 2;
        fake[5] = 1;
        fake[18] = EM_BPF as u8;
        fake[40] = 0xff; // section headers far past the end
        fake[58] = 64;
        fake[60] = 1;
        assert_eq!(bpf_section(&fake, "x"), Err(ElfError::Truncated));
    }
}
