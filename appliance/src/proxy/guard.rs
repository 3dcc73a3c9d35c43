//! The proxy's XDP guard (`ebpf/programs/src/bin/proxy_guard.rs`): on
//! each interface of `proxy.guard.interfaces`, SYNs to the proxy's port
//! from a blocklisted prefix, or over `syn_per_second` from one source, are
//! dropped before the kernel spends a socket on them; every outcome is
//! counted. Native XDP where the driver has it, generic XDP otherwise.
//!
//! Where the kernel refuses the program or an interface refuses it, the
//! guard says why and the proxy runs unguarded: the guard protects the
//! proxy, it never stops it.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::ebpf;
use aya::{
    Ebpf,
    maps::{Array, LpmTrie, MapData, MapError, PerCpuArray, lpm_trie::Key},
    programs::{ProgramError, Xdp, XdpMode},
};
use nodus_common::{
    objects::proxy_guard::{OBJECT, maps, programs},
    proxy::{GUARD_BLOCKED, GUARD_PASSED, GUARD_RATE_LIMITED, GuardConfig, mapped_v4},
};

/// `[proxy.guard]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSettings {
    /// Interfaces to guard (the ones the proxy's clients come in on); none:
    /// no guard.
    pub interfaces: Vec<String>,
    /// SYNs one source address may send per second; the rest of that
    /// second's are dropped. 0: no rate limit.
    pub syn_per_second: u32,
    /// Source prefixes whose SYNs are dropped (`192.0.2.0/24`,
    /// `2001:db8::/32`, or a bare address).
    pub blocklist: Vec<String>,
}

/// A blocklist prefix as the trie keys it: (prefix length over the
/// IPv6-mapped address, the address).
pub fn parse_prefix(text: &str) -> Result<(u32, [u8; 16]), String> {
    let (addr, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("'{text}': not an address or prefix"))?;
    let (bytes, offset, max) = match addr {
        IpAddr::V4(v4) => (mapped_v4(v4.octets()), 96, 32),
        IpAddr::V6(v6) => (v6.octets(), 0, 128),
    };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u32>()
            .ok()
            .filter(|&l| l <= max)
            .ok_or_else(|| format!("'{text}': prefix length must be 0 to {max}"))?,
    };
    Ok((offset + len, bytes))
}

/// Why the guard is not running.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The kernel refused the object.
    #[error("loading {}", OBJECT.name)]
    Load(#[source] aya::EbpfError),
    /// A map is missing from the object or not of the type expected.
    #[error(transparent)]
    Map(#[from] ebpf::TakeMapError),
    /// A map could not be written.
    #[error("writing map {0}")]
    Write(&'static str, #[source] MapError),
    /// The program did not load.
    #[error("program {}", programs::proxy_guard)]
    Program(#[source] ProgramError),
    /// An interface refused the program in both modes.
    #[error("attaching to {interface} (native: {native})")]
    Attach {
        /// The interface.
        interface: String,
        /// Why native XDP failed.
        native: String,
        /// Why generic XDP failed.
        #[source]
        generic: Box<ProgramError>,
    },
    /// A blocklist entry is not a prefix (config validation catches it
    /// first).
    #[error("blocklist: {0}")]
    Prefix(String),
}

/// What the guard did since it was attached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GuardCounts {
    /// SYNs to the proxy's port let through.
    pub passed: u64,
    /// SYNs dropped: the source is blocklisted.
    pub blocked: u64,
    /// SYNs dropped: over the per-source rate.
    pub rate_limited: u64,
}

/// The attached guard; detached when dropped.
pub struct Guard {
    counts: PerCpuArray<MapData, u64>,
    /// `lo (generic), eth0 (native)`.
    attached: String,
    // Holds the program and its links.
    _obj: Ebpf,
}

impl Guard {
    /// Loads the guard for the proxy listening on `port` and attaches it to
    /// every interface `settings` names.
    pub fn attach(port: u16, settings: &GuardSettings) -> Result<Guard, GuardError> {
        let mut obj = ebpf::load(&OBJECT).map_err(GuardError::Load)?;
        let mut config: Array<MapData, GuardConfig> = ebpf::take_map(&mut obj, maps::GUARD_CONFIG)?;
        config
            .set(
                0,
                GuardConfig {
                    port: port.into(),
                    syn_per_second: settings.syn_per_second,
                },
                0,
            )
            .map_err(|e| GuardError::Write(maps::GUARD_CONFIG, e))?;
        let mut blocklist: LpmTrie<MapData, [u8; 16], u8> =
            ebpf::take_map(&mut obj, maps::GUARD_BLOCKLIST)?;
        for text in &settings.blocklist {
            let (len, addr) = parse_prefix(text).map_err(GuardError::Prefix)?;
            blocklist
                .insert(&Key::new(len, addr), 1, 0)
                .map_err(|e| GuardError::Write(maps::GUARD_BLOCKLIST, e))?;
        }
        let counts = ebpf::take_map(&mut obj, maps::GUARD_COUNTS)?;
        let program: &mut Xdp = obj
            .program_mut(programs::proxy_guard)
            .ok_or(GuardError::Program(ProgramError::NotLoaded))?
            .try_into()
            .map_err(GuardError::Program)?;
        program.load().map_err(GuardError::Program)?;
        let mut attached = Vec::new();
        for interface in &settings.interfaces {
            let mode = match program.attach(interface, XdpMode::Driver) {
                Ok(_) => "native",
                Err(native) => match program.attach(interface, XdpMode::Skb) {
                    Ok(_) => "generic",
                    Err(generic) => {
                        return Err(GuardError::Attach {
                            interface: interface.clone(),
                            native: ebpf::error_chain(&native),
                            generic: Box::new(generic),
                        });
                    }
                },
            };
            attached.push(format!("{interface} ({mode})"));
        }
        Ok(Guard {
            counts,
            attached: attached.join(", "),
            _obj: obj,
        })
    }

    /// Where it is attached: `lo (generic), eth0 (native)`.
    pub fn attached(&self) -> &str {
        &self.attached
    }

    /// Its counters, summed over CPUs.
    pub fn counts(&self) -> GuardCounts {
        let sum = |i| ebpf::per_cpu_sum(&self.counts, i);
        GuardCounts {
            passed: sum(GUARD_PASSED),
            blocked: sum(GUARD_BLOCKED),
            rate_limited: sum(GUARD_RATE_LIMITED),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_parse_to_trie_keys_and_bad_ones_are_named() {
        assert_eq!(
            parse_prefix("192.0.2.0/24").unwrap(),
            (120, mapped_v4([192, 0, 2, 0]))
        );
        assert_eq!(
            parse_prefix("10.1.2.3").unwrap(),
            (128, mapped_v4([10, 1, 2, 3]))
        );
        let (len, addr) = parse_prefix("2001:db8::/32").unwrap();
        assert_eq!((len, &addr[..4]), (32, &[0x20, 0x01, 0x0d, 0xb8][..]));
        for bad in [
            "192.0.2.0/33",
            "2001:db8::/129",
            "example.com",
            "10.0.0.0/x",
            "",
        ] {
            assert!(parse_prefix(bad).is_err(), "{bad}");
        }
    }
}
