//! Membership converges: once the network is whole, every node sees every
//! node alive (`n0` … `n{nodes-1}`).

use std::collections::BTreeSet;

/// The violations, one line each.
pub fn check(views: &[BTreeSet<String>], nodes: usize) -> Vec<String> {
    let all: BTreeSet<String> = (0..nodes).map(|i| format!("n{i}")).collect();
    views
        .iter()
        .enumerate()
        .filter(|(_, v)| **v != all)
        .map(|(i, v)| {
            let missing: Vec<_> = all.difference(v).collect();
            format!("membership: n{i} does not see {missing:?} alive")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_node_missing_from_one_view_is_reported() {
        let views = [view(&["n0", "n1"]), view(&["n1"])];
        let found = check(&views, 2);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("n1 does not see [\"n0\"]"),
            "{}",
            found[0]
        );
        assert!(check(&[view(&["n0", "n1"]), view(&["n0", "n1"])], 2).is_empty());
    }
}
