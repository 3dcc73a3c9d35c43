//! Board profiles: what the board is and how nodus uses it. A profile is
//! checked on its own and against the discovered topology before anything is
//! applied; a profile that does not fit is never applied (generic is).

mod apply;
mod check;
mod component;
mod config;
pub mod journal;
mod load;
mod schema;
mod select;

pub use apply::{Applied, Change, ThreadPlacement, apply, placement_cpus, thread_affinities};
pub use component::{ProfileComponent, ProfileStats};
pub use config::ProfileConfig;
pub use select::{Chosen, choose};

pub use check::{Problem, check_against, check_structure};
pub use load::{BUILTIN, LoadError, Origin, builtin, load};
pub use schema::*;

#[cfg(test)]
mod tests;
