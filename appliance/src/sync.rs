//! The one rule for state shared behind a [`Mutex`].
//!
//! A thread that panics while holding a lock poisons it. Everything nodus
//! keeps behind a lock is plain data changed in one step per hold (a table,
//! counters, a queue), so what the panicking thread left is still consistent
//! and the daemon keeps serving it: one component's bug must not turn every
//! later status query or report into a second panic.

use std::sync::{Mutex, MutexGuard};

/// Locks `m`, taking the data over from a thread that panicked holding it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_still_hands_out_its_data() {
        let m = std::sync::Arc::new(Mutex::new(7));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock();
            panic!("poison it");
        })
        .join();
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 8);
    }
}
