//! Replicas converge: every node holds the same live values with the same
//! versions, and a tombstone on one node is on every other or purged there.

use std::collections::{BTreeMap, BTreeSet};

use crate::store::Rec;

/// The violations, one line each (empty when converged).
pub fn check(states: &[BTreeMap<Vec<u8>, Rec>]) -> Vec<String> {
    let mut out = Vec::new();
    let keys: BTreeSet<&Vec<u8>> = states.iter().flat_map(BTreeMap::keys).collect();
    for key in keys {
        let recs: Vec<Option<&Rec>> = states.iter().map(|s| s.get(key)).collect();
        let live: BTreeSet<_> = recs
            .iter()
            .map(|r| r.filter(|r| !r.is_tombstone()).map(|r| &r.version))
            .collect();
        let tombstones: BTreeSet<_> = recs
            .iter()
            .flatten()
            .filter(|r| r.is_tombstone())
            .map(|r| &r.version)
            .collect();
        // One live version everywhere, or no live value anywhere and at most
        // one tombstone version (on the nodes that did not purge it yet).
        let agree = match (live.len(), live.iter().next()) {
            (1, Some(Some(_))) => true,
            (1, Some(None)) => tombstones.len() <= 1,
            _ => false,
        };
        if !agree {
            out.push(format!(
                "divergence on {:?}: {:?}",
                String::from_utf8_lossy(key),
                recs.iter()
                    .map(|r| r.map(|r| (&r.version, r.is_tombstone())))
                    .collect::<Vec<_>>()
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;
    use vergent_types::{NodeId, Version};

    use super::*;

    fn rec(ms: u64, live: bool) -> BTreeMap<Vec<u8>, Rec> {
        BTreeMap::from([(
            b"k".to_vec(),
            Rec {
                version: Version::new(Timestamp::new(ms, 0), NodeId::new("n0").expect("id")),
                value: live.then(|| b"x".to_vec()),
            },
        )])
    }

    #[test]
    fn different_versions_or_a_value_missing_on_one_node_diverge() {
        assert_eq!(check(&[rec(1, true), rec(2, true)]).len(), 1);
        assert_eq!(check(&[rec(1, true), BTreeMap::new()]).len(), 1);
    }

    #[test]
    fn a_tombstone_purged_on_some_nodes_only_still_converges() {
        assert!(check(&[rec(1, false), BTreeMap::new(), rec(1, false)]).is_empty());
        assert!(check(&[rec(1, true), rec(1, true)]).is_empty());
        assert_eq!(check(&[rec(1, false), rec(2, false)]).len(), 1);
    }
}
