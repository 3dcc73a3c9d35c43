//! The scheduler's loader in a build without libbpf (cargo feature `sched`
//! off, as firmware recipes build today): every load fails with the
//! reason, so the component reports the scheduler unavailable and the
//! rest of nodus runs.

use nodus_common::sched as abi;

use super::{
    kernel::{Ended, LayerCounts, Mode},
    membership::Members,
    plan::Plan,
};

/// Why the scheduler cannot be loaded: it is not in this build.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// Built without the `sched` feature.
    #[error("{}", super::kernel::NOT_BUILT)]
    NotBuilt,
}

/// Never made: no object can be loaded.
pub struct Loaded(());

/// Never made.
pub struct Scheduler(Loaded);

/// Never made.
pub struct Matcher(Loaded);

impl Loaded {
    /// Unreachable without a loaded object.
    pub fn set_owners(&self, _plan: &Plan, _owners: &[u32]) -> Result<(), SchedError> {
        Err(SchedError::NotBuilt)
    }

    /// Unreachable without a loaded object.
    pub fn set_members(&self, _members: &Members) -> Result<(), SchedError> {
        Err(SchedError::NotBuilt)
    }
}

impl Drop for Scheduler {
    // The same shape as the real one, whose drop unregisters.
    fn drop(&mut self) {}
}

impl Scheduler {
    /// Fails: not built.
    pub fn start(
        _plan: &Plan,
        _mode: Mode,
        _owners: &[u32],
        _members: &Members,
    ) -> Result<Scheduler, SchedError> {
        Err(SchedError::NotBuilt)
    }

    /// Never ended: never started.
    pub fn ended(&self) -> Option<Ended> {
        None
    }

    /// No counters.
    pub fn counts(&self, _nr_layers: usize) -> Result<Vec<LayerCounts>, SchedError> {
        Err(SchedError::NotBuilt)
    }

    /// Its maps.
    pub fn maps(&self) -> &Loaded {
        &self.0
    }
}

impl Matcher {
    /// Fails: not built.
    pub fn load(_plan: &Plan) -> Result<Matcher, SchedError> {
        Err(SchedError::NotBuilt)
    }

    /// Its maps.
    pub fn maps(&self) -> &Loaded {
        &self.0
    }

    /// Unreachable.
    pub fn layer_of(&self, _facts: &abi::Facts) -> Result<u32, SchedError> {
        Err(SchedError::NotBuilt)
    }
}
