//! The version of a record: its HLC timestamp and the node that stamped it.

use std::cmp::Ordering;
use std::fmt;

use vergent_hlc::Timestamp;

use crate::NodeId;

/// The version of one write, totally ordered by `(hlc, origin)`.
///
/// Last-writer-wins picks the greater version; because the order is total and
/// the same on every node, replicas that saw the same set of versions agree.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Version {
    /// When the write was stamped.
    pub hlc: Timestamp,
    /// The node that stamped it; breaks ties between equal timestamps.
    pub origin: NodeId,
}

impl Version {
    /// Builds a version.
    pub fn new(hlc: Timestamp, origin: NodeId) -> Self {
        Self { hlc, origin }
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        self.hlc
            .cmp(&other.hlc)
            .then_with(|| self.origin.cmp(&other.origin))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.hlc, self.origin)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn version(hlc: u64, origin: &str) -> Version {
        Version::new(
            Timestamp::from_u64(hlc),
            NodeId::new(origin).expect("valid id"),
        )
    }

    #[test]
    fn hlc_orders_first_then_origin_breaks_ties() {
        assert!(version(2, "a") > version(1, "z"));
        assert!(version(1, "b") > version(1, "a"));
        assert_eq!(version(1, "a").cmp(&version(1, "a")), Ordering::Equal);
    }

    proptest! {
        #[test]
        fn version_order_is_total_and_antisymmetric(a in 0u64..4, b in 0u64..4, x in "[ab]", y in "[ab]") {
            let v = version(a, &x);
            let w = version(b, &y);
            prop_assert_eq!(v.cmp(&w), w.cmp(&v).reverse());
            prop_assert_eq!(v.cmp(&w) == Ordering::Equal, v == w);
        }
    }
}
