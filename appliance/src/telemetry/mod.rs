//! Telemetry: what a board tells the fleet about itself, and how.
//!
//! [`envelope`] is the wire format (a versioned, postcard-encoded report whose
//! stat names travel once, in retained schema messages, so a report is a
//! fraction of the same report as JSON); [`collect`] turns the supervisor's
//! status into a report; [`outbox`] keeps reports, in order and bounded, until
//! the broker acknowledged them, with [`spool`] on disk for what memory
//! cannot hold and what a restart would lose. The MQTT link that carries them,
//! and `nodus telemetry watch` that decodes them, live in `fleet`.

pub mod collect;
pub mod envelope;
pub mod outbox;
pub mod spool;

pub use envelope::{ComponentSample, DecodeError, Message, Report, Schema, Value};
pub use outbox::{Outbox, OutboxStats, Ticket};
pub use spool::Spool;
