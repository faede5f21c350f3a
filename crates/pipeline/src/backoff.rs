//! Exponential backoff with jitter, shared by every retry loop (connector steps, Kafka relay and
//! consumer, topic creation, the self-hosted connector's channel): the delay doubles with each
//! consecutive failure up to a cap, and a ±25 % jitter keeps many retriers from waking together.

use std::time::Duration;

use rand::Rng;

/// A backoff policy: `first` after one failure, doubling, at most `cap` (before jitter).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// Delay after the first failure.
    pub first: Duration,
    /// Largest delay.
    pub cap: Duration,
}

impl Backoff {
    /// A policy starting at `first` and capped at `cap`.
    pub const fn new(first: Duration, cap: Duration) -> Self {
        Self { first, cap }
    }

    /// The delay after `failures` consecutive failures (1 = the first), jittered by ±25 %.
    pub fn delay(&self, failures: u32) -> Duration {
        let doubled = self
            .first
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.cap);
        doubled.mul_f64(rand::thread_rng().gen_range(0.75..1.25))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_the_jitter() {
        let b = Backoff::new(Duration::from_millis(100), Duration::from_secs(2));
        for _ in 0..50 {
            let d1 = b.delay(1);
            assert!(
                d1 >= Duration::from_millis(75) && d1 <= Duration::from_millis(125),
                "{d1:?}"
            );
            let d3 = b.delay(3);
            assert!(
                d3 >= Duration::from_millis(300) && d3 <= Duration::from_millis(500),
                "{d3:?}"
            );
            let d_many = b.delay(1000);
            assert!(
                d_many >= Duration::from_millis(1500) && d_many <= Duration::from_millis(2500),
                "{d_many:?}"
            );
        }
        assert!(
            b.delay(0) <= Duration::from_millis(125),
            "no failure counts as the first"
        );
    }
}
