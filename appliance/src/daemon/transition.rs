//! One path for every configuration change (SIGHUP and fleet documents):
//! validate, apply, verify for a grace period, then commit or roll back.
//!
//! "Verify" judges the components the change restarted: none may end up
//! less healthy than it was before the change (healthy < degraded <
//! unavailable), and none the change added may be unavailable. A component
//! that becomes unavailable fails the change at once, restarted or not (a
//! change can starve another of a port, memory or CPU); anything else is
//! judged when the grace period ends. A component the change did not
//! restart that merely degrades (the fleet link losing its broker, a
//! process-cache ring overflow under a fork storm) says nothing about the
//! change, so it does not roll it back.

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
    /// The components the change restarted.
    pub restarted: Vec<&'static str>,
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

/// The first component that got worse than `baseline` in a way that
/// counts against the change, with why: any component falling to
/// unavailable, or, with `final_check`, one of the `restarted` ones being
/// less healthy at all (before the end a component may pass through
/// degraded while it starts).
pub fn regression<N: AsRef<str>>(
    baseline: &BTreeMap<String, Health>,
    now: &[(N, Health)],
    restarted: &[&str],
    final_check: bool,
) -> Option<String> {
    now.iter().find_map(|(name, health)| {
        let name = name.as_ref();
        let before = baseline.get(name).map_or(0, rank);
        let worse = rank(health) > before;
        let unavailable = matches!(health, Health::Unavailable(_));
        let counts = unavailable || (final_check && restarted.contains(&name));
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
        assert_eq!(regression(&base(), &now, &["a"], false), None);
        assert!(
            regression(&base(), &now, &["a"], true)
                .unwrap()
                .contains("a became degraded")
        );
        let now = vec![("b".to_owned(), Health::Unavailable("bind".into()))];
        assert!(
            regression(&base(), &now, &["a"], false)
                .unwrap()
                .contains("b became unavailable"),
            "unavailable counts even for a component the change did not restart"
        );
    }

    #[test]
    fn staying_degraded_is_not_a_regression_and_new_components_must_work() {
        let now = vec![
            ("a".to_owned(), Health::Healthy),
            ("b".to_owned(), Health::Degraded("other reason".into())),
        ];
        assert_eq!(regression(&base(), &now, &["a", "b"], true), None);
        let now = vec![("new".to_owned(), Health::Unavailable("x".into()))];
        assert!(regression(&base(), &now, &["new"], false).is_some());
    }

    #[test]
    fn a_component_the_change_did_not_restart_degrading_is_not_its_fault() {
        // The fleet link lost its broker during the grace period of a
        // change to "a".
        let now = vec![
            ("a".to_owned(), Health::Healthy),
            ("fleet".to_owned(), Health::Degraded("not connected".into())),
        ];
        let mut baseline = base();
        baseline.insert("fleet".into(), Health::Healthy);
        assert_eq!(regression(&baseline, &now, &["a"], true), None);
        assert!(regression(&baseline, &now, &["a", "fleet"], true).is_some());
    }
}
