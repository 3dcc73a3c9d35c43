//! Layout hashing for the shared types: each type module hashes its own
//! types with [`layout_of!`](crate::layout_of), and [`crate::abi`] combines them
//! into the fingerprint. Kept apart from `abi` so the type modules depend on
//! this and `abi` on them, with no cycle.

/// A `const` FNV-1a hasher, so the fingerprint is computed by the compiler on
/// both sides rather than maintained by hand.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    /// The FNV-1a offset basis.
    pub const fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }

    /// Mixes in raw bytes.
    pub const fn bytes(mut self, b: &[u8]) -> Self {
        let mut i = 0;
        while i < b.len() {
            self.0 ^= b[i] as u64;
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        self
    }

    /// Mixes in a number (size, alignment or offset).
    pub const fn num(self, n: usize) -> Self {
        self.bytes(&(n as u64).to_le_bytes())
    }

    /// The hash so far.
    pub const fn finish(self) -> u64 {
        self.0
    }
}

impl Default for Fnv {
    fn default() -> Self {
        Self::new()
    }
}

/// Hashes a `#[repr(C)]` type's name, size, alignment and each named field's
/// offset. Used by every module that defines shared types.
#[macro_export]
macro_rules! layout_of {
    ($h:expr, $ty:ident { $($field:ident),* $(,)? }) => {{
        let h = $h
            .bytes(stringify!($ty).as_bytes())
            .num(core::mem::size_of::<$ty>())
            .num(core::mem::align_of::<$ty>());
        $( let h = h.bytes(stringify!($field).as_bytes()).num(core::mem::offset_of!($ty, $field)); )*
        h
    }};
}
