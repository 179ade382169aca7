//! Lifeguard's dynamic suspicion timeout: it starts long and shrinks
//! logarithmically as other members independently confirm the suspicion.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use vergent_types::NodeId;

/// The suspicion of one member at one incarnation.
#[derive(Clone, Debug)]
pub(crate) struct Suspicion {
    start: Instant,
    min: Duration,
    max: Duration,
    /// Confirmations that bring the timeout down to `min`.
    expected: u32,
    /// Distinct members that claimed the suspicion, the first one included.
    suspecters: BTreeSet<NodeId>,
}

impl Suspicion {
    /// A suspicion raised by `from` at `start`.
    pub(crate) fn new(
        start: Instant,
        from: NodeId,
        (min, max): (Duration, Duration),
        expected: u32,
    ) -> Self {
        Self {
            start,
            min,
            max,
            expected,
            suspecters: BTreeSet::from([from]),
        }
    }

    /// Records `from` as suspecting too; returns whether it is a new, independent
    /// confirmation (and so shortens the timeout).
    pub(crate) fn confirm(&mut self, from: NodeId) -> bool {
        if self.suspecters.len() > self.expected as usize {
            return false;
        }
        self.suspecters.insert(from)
    }

    /// When the member is declared dead unless it refutes:
    /// `max - (max - min) * ln(c + 1) / ln(k + 1)`, never below `min`, for `c`
    /// confirmations out of `k` expected (memberlist's `remainingSuspicionTime`).
    pub(crate) fn deadline(&self) -> Instant {
        let confirmations = (self.suspecters.len() - 1) as f64;
        let timeout = if self.expected == 0 {
            self.min
        } else {
            let frac = (confirmations + 1.0).ln() / (f64::from(self.expected) + 1.0).ln();
            let span = self.max.saturating_sub(self.min).mul_f64(frac.min(1.0));
            self.max.saturating_sub(span).max(self.min)
        };
        self.start + timeout
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_shrinks_from_max_to_min_with_independent_confirmations() {
        let t0 = Instant::now();
        let id = |s: &str| NodeId::new(s).expect("valid id");
        let bounds = (Duration::from_secs(4), Duration::from_secs(24));
        let mut s = Suspicion::new(t0, id("a"), bounds, 3);
        assert_eq!(s.deadline(), t0 + Duration::from_secs(24));
        assert!(
            !s.confirm(id("a")),
            "the same suspecter twice is not independent"
        );
        assert!(s.confirm(id("b")));
        let one = s.deadline();
        assert!(one < t0 + Duration::from_secs(24) && one > t0 + Duration::from_secs(4));
        assert!(s.confirm(id("c")));
        assert!(s.deadline() < one);
        assert!(s.confirm(id("d")));
        assert_eq!(s.deadline(), t0 + Duration::from_secs(4));
        assert!(!s.confirm(id("e")), "no gain past the expected count");
        let none = Suspicion::new(t0, id("a"), bounds, 0);
        assert_eq!(none.deadline(), t0 + Duration::from_secs(4));
    }
}
