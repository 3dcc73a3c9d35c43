//! Saying something at most once per interval. A log line or a publish that
//! an outsider can trigger at will (a flood of bad config documents, a storm
//! of failed accepts when file descriptors run out) must not flood the log,
//! the flash under it or the broker. What was held back is counted, and the
//! next thing said carries the count, so nothing is hidden, only summed.

use std::time::{Duration, Instant};

/// One thing to say, at most once per `interval`.
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    last: Option<Instant>,
    held_back: u64,
}

impl RateLimit {
    /// At most once per `interval`.
    pub const fn new(interval: Duration) -> RateLimit {
        RateLimit {
            interval,
            last: None,
            held_back: 0,
        }
    }

    /// Whether it may be said now: `Some(n)`, with `n` the times it was held
    /// back since it was last said; `None` (and counted) if not.
    pub fn allow(&mut self) -> Option<u64> {
        self.allow_at(Instant::now())
    }

    fn allow_at(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            self.held_back += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }

    /// What was held back, once the interval has passed since it was last
    /// said: the caller says "n more" (a periodic flush, so the last of a
    /// burst is not held back forever).
    pub fn overdue(&mut self) -> Option<u64> {
        self.overdue_at(Instant::now())
    }

    fn overdue_at(&mut self, now: Instant) -> Option<u64> {
        if self.held_back == 0
            || self
                .last
                .is_some_and(|t| now.duration_since(t) < self.interval)
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.held_back))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_said_once_and_counted_then_flushed() {
        let mut r = RateLimit::new(Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(r.allow_at(t0), Some(0));
        for i in 1..1000 {
            assert_eq!(r.allow_at(t0 + Duration::from_micros(i)), None);
        }
        assert_eq!(r.overdue_at(t0 + Duration::from_millis(500)), None);
        assert_eq!(r.overdue_at(t0 + Duration::from_secs(1)), Some(999));
        assert_eq!(
            r.overdue_at(t0 + Duration::from_secs(5)),
            None,
            "nothing left"
        );
        assert_eq!(r.allow_at(t0 + Duration::from_millis(1500)), None);
        assert_eq!(r.allow_at(t0 + Duration::from_secs(3)), Some(1));
    }
}
