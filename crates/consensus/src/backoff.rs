//! Exponential backoff with full jitter for retrying after contention, from a caller-seeded generator.

use rand::Rng;

/// Retry delays: uniform in `[0, min(cap, base * 2^attempt)]` ("full jitter").
///
/// Full jitter spreads competing proposers apart fastest: two that collided
/// once are unlikely to pick close delays again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    /// The ceiling of the first retry's delay, in ms.
    pub base_ms: u64,
    /// The largest ceiling any retry gets, in ms.
    pub cap_ms: u64,
}

impl Backoff {
    /// A backoff starting at `base_ms` and growing to at most `cap_ms`.
    #[must_use]
    pub fn new(base_ms: u64, cap_ms: u64) -> Self {
        Self { base_ms, cap_ms }
    }

    /// The delay before retry number `attempt` (0 for the first retry), drawn from `rng`.
    pub fn delay_ms(&self, attempt: u32, rng: &mut impl Rng) -> u64 {
        let growth = 1u64.checked_shl(attempt).unwrap_or(u64::MAX);
        let ceiling = self.base_ms.saturating_mul(growth).min(self.cap_ms);
        rng.random_range(0..=ceiling)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn delays_stay_under_a_doubling_ceiling_capped_at_cap() {
        let b = Backoff::new(10, 1_000);
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for attempt in 0..80 {
            let ceiling =
                (10u64.saturating_mul(1u64.checked_shl(attempt).unwrap_or(u64::MAX))).min(1_000);
            for _ in 0..20 {
                assert!(b.delay_ms(attempt, &mut rng) <= ceiling);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_delays() {
        let b = Backoff::new(10, 1_000);
        let draw = |seed| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            (0..10).map(|a| b.delay_ms(a, &mut rng)).collect::<Vec<_>>()
        };
        assert_eq!(draw(3), draw(3));
        assert_ne!(draw(3), draw(4));
    }
}
