//! One path for every configuration change (SIGHUP and fleet documents):
//! validate, apply, verify for a grace period, then commit or roll back.
//!
//! "Verify" means no component ends up less healthy than it was before the
//! change (healthy < degraded < unavailable), and no component the change
//! added is unavailable. A component that becomes unavailable fails the
//! change at once; anything else is judged when the grace period ends.

use std::{collections::BTreeMap, time::Instant};

use tokio::sync::oneshot;

use crate::{
    change::Outcome,
    config::{Config, layers::Layers},
    supervisor::Health,
};

/// A change applied and being watched.
pub struct Pending {
    /// What ran before (restored on rollback).
    pub previous: (Layers, Config),
    /// Component health before the change.
    pub baseline: BTreeMap<String, Health>,
    /// When the change is committed if nothing got worse.
    pub deadline: Instant,
    /// How logs name the change.
    pub label: String,
    /// Who waits for the outcome (none for SIGHUP).
    pub reply: Option<oneshot::Sender<Outcome>>,
}

/// How bad a health is, for comparisons.
fn rank(h: &Health) -> u8 {
    match h {
        Health::Healthy => 0,
        Health::Degraded(_) => 1,
        Health::Unavailable(_) => 2,
    }
}

/// The first component that got worse than `baseline`, with why. With
/// `final_check` false only a fall to unavailable counts (a component may
/// pass through degraded while it starts).
pub fn regression<N: AsRef<str>>(
    baseline: &BTreeMap<String, Health>,
    now: &[(N, Health)],
    final_check: bool,
) -> Option<String> {
    now.iter().find_map(|(name, health)| {
        let name = name.as_ref();
        let before = baseline.get(name).map_or(0, rank);
        let worse = rank(health) > before;
        let counts = final_check || matches!(health, Health::Unavailable(_));
        (worse && counts).then(|| format!("{name} became {health}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> BTreeMap<String, Health> {
        BTreeMap::from([
            ("a".to_owned(), Health::Healthy),
            ("b".to_owned(), Health::Degraded("no fentry".into())),
        ])
    }

    #[test]
    fn unavailable_fails_at_once_degraded_only_at_the_end() {
        let now = vec![
            ("a".to_owned(), Health::Degraded("starting".into())),
            ("b".to_owned(), Health::Degraded("no fentry".into())),
        ];
        assert_eq!(regression(&base(), &now, false), None);
        assert!(
            regression(&base(), &now, true)
                .unwrap()
                .contains("a became degraded")
        );
        let now = vec![("b".to_owned(), Health::Unavailable("bind".into()))];
        assert!(
            regression(&base(), &now, false)
                .unwrap()
                .contains("b became unavailable")
        );
    }

    #[test]
    fn staying_degraded_is_not_a_regression_and_new_components_must_work() {
        let now = vec![
            ("a".to_owned(), Health::Healthy),
            ("b".to_owned(), Health::Degraded("other reason".into())),
        ];
        assert_eq!(regression(&base(), &now, true), None);
        let now = vec![("new".to_owned(), Health::Unavailable("x".into()))];
        assert!(regression(&base(), &now, false).is_some());
    }
}
