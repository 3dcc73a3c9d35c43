//! Telemetry: what a board tells the fleet about itself, and how.
//!
//! [`envelope`] is the wire format (a versioned, postcard-encoded report whose
//! stat names travel once, in retained schema messages, so a report is a
//! fraction of the same report as JSON); [`collect`] turns the supervisor's
//! status into a report; [`outbox`] keeps reports, in order and bounded, until
//! the broker acknowledged them, with [`spool`] on disk for what memory
//! cannot hold and what a restart would lose; [`watch`] is `nodus telemetry watch`, the
//! operator's decoder. The MQTT link itself lives in [`crate::fleet`].

pub mod collect;
pub mod envelope;
pub mod outbox;
pub mod spool;
pub mod watch;

pub use envelope::{ComponentSample, DecodeError, Message, Report, Schema, Value};
pub use outbox::{Outbox, OutboxStats, Ticket};
pub use spool::Spool;
