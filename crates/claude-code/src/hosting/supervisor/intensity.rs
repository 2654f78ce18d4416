//! Restart intensity (OTP's `intensity`/`period`) and restart back-off: pure logic over
//! `tokio::time::Instant`, so `tokio::time::pause()` tests drive it. The supervisor actor
//! decides when to consult it.

use std::{collections::VecDeque, time::Duration};

use tokio::time::Instant;

/// Counts restarts in a sliding window. As in OTP, the restart that makes the count
/// exceed `max_restarts` within `period` is refused: the supervisor must shut down.
#[derive(Debug, Clone)]
pub(crate) struct RestartIntensity {
    max_restarts: u32,
    period: Duration,
    restarts: VecDeque<Instant>,
}

impl RestartIntensity {
    pub(crate) fn new(max_restarts: u32, period: Duration) -> Self {
        RestartIntensity {
            max_restarts,
            period,
            restarts: VecDeque::new(),
        }
    }

    /// Drops restarts older than the window (a restart exactly `period` ago still counts,
    /// like OTP's `>= Now - Period`).
    fn prune(&mut self, now: Instant) {
        while let Some(&t) = self.restarts.front() {
            if now.saturating_duration_since(t) > self.period {
                self.restarts.pop_front();
            } else {
                break;
            }
        }
    }

    /// Restarts counted in the window ending at `now`.
    pub(crate) fn recent(&mut self, now: Instant) -> usize {
        self.prune(now);
        self.restarts.len()
    }

    /// Records a restart at `now`; `false` when the intensity is exceeded.
    pub(crate) fn add(&mut self, now: Instant) -> bool {
        self.prune(now);
        self.restarts.push_back(now);
        self.restarts.len() <= self.max_restarts as usize
    }
}

/// Delay before a restart, growing exponentially with the restarts already counted in
/// the intensity window, so a crash loop does not burn CPU. The first restart in a quiet
/// window is immediate.
///
/// ```
/// use std::time::Duration;
/// use claude_code::Backoff;
/// let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(5)).jitter(0.2);
/// assert_eq!(b.delay(0), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[must_use]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    jitter: f64,
}

impl Backoff {
    /// `initial` after the second restart in a window, doubling up to `max`; no jitter.
    pub fn exponential(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            jitter: 0.0,
        }
    }

    /// Randomises each delay by up to ± `fraction` of it (clamped to 0..=1).
    pub fn jitter(mut self, fraction: f64) -> Self {
        self.jitter = if fraction.is_finite() {
            fraction.clamp(0.0, 1.0)
        } else {
            0.0
        };
        self
    }

    /// The delay before a restart when `recent` restarts are already in the window.
    pub fn delay(&self, recent: usize) -> Duration {
        if recent == 0 {
            return Duration::ZERO;
        }
        let exp = u32::try_from(recent - 1).unwrap_or(u32::MAX).min(30);
        let base = self.initial.saturating_mul(1u32 << exp).min(self.max);
        if self.jitter == 0.0 {
            return base;
        }
        let unit = random_unit() * 2.0 - 1.0; // -1..1
        base.mul_f64((1.0 + unit * self.jitter).max(0.0))
    }
}

/// A random number in `0..1` from std's randomly keyed hasher (no extra dependency).
fn random_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0);
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn more_than_max_restarts_within_the_period_exceeds() {
        let mut i = RestartIntensity::new(3, Duration::from_secs(5));
        for _ in 0..3 {
            assert!(i.add(Instant::now()));
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(
            !i.add(Instant::now()),
            "the 4th restart within 5 s exceeds 3"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn restarts_outside_the_window_are_forgotten() {
        let mut i = RestartIntensity::new(3, Duration::from_secs(5));
        for _ in 0..3 {
            assert!(i.add(Instant::now()));
        }
        tokio::time::advance(Duration::from_millis(5001)).await;
        assert_eq!(i.recent(Instant::now()), 0);
        assert!(i.add(Instant::now()));
        assert!(i.add(Instant::now()));
        assert!(i.add(Instant::now()));
        assert!(!i.add(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_exactly_period_ago_still_counts() {
        let mut i = RestartIntensity::new(1, Duration::from_secs(5));
        assert!(i.add(Instant::now()));
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(!i.add(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_max_restarts_refuses_any_restart() {
        let mut i = RestartIntensity::new(0, Duration::from_secs(5));
        assert!(!i.add(Instant::now()));
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_rate_below_the_limit_never_exceeds() {
        let mut i = RestartIntensity::new(3, Duration::from_secs(5));
        for _ in 0..100 {
            assert!(i.add(Instant::now()));
            tokio::time::advance(Duration::from_millis(1700)).await;
        }
    }

    #[test]
    fn backoff_grows_exponentially_and_caps() {
        let b = Backoff::exponential(Duration::from_millis(100), Duration::from_secs(1));
        assert_eq!(b.delay(0), Duration::ZERO);
        assert_eq!(b.delay(1), Duration::from_millis(100));
        assert_eq!(b.delay(2), Duration::from_millis(200));
        assert_eq!(b.delay(4), Duration::from_millis(800));
        assert_eq!(b.delay(5), Duration::from_secs(1));
        assert_eq!(b.delay(500), Duration::from_secs(1));
    }

    #[test]
    fn jitter_stays_within_its_fraction() {
        let b =
            Backoff::exponential(Duration::from_millis(1000), Duration::from_secs(10)).jitter(0.25);
        for _ in 0..200 {
            let d = b.delay(1);
            assert!(
                d >= Duration::from_millis(750) && d <= Duration::from_millis(1250),
                "{d:?}"
            );
        }
    }
}
