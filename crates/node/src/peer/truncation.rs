//! When the replication log may be truncated.
//!
//! An entry can go once every peer has acknowledged it as durable. A peer that
//! stays away must not make the log grow forever: past `max_lag` entries it is
//! left behind (and will need anti-entropy repair to catch up).

use std::collections::HashMap;

/// Replication progress of every peer, for truncation and status.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Durable cursor of each peer (by node id).
    pub(crate) cursors: HashMap<String, u64>,
    /// Configured peer addresses not yet identified since start: while any
    /// remain, their cursor is unknown, so only the lag bound truncates.
    pub(crate) unidentified: usize,
}

/// The first sequence number to keep, or `None` to keep everything.
///
/// `first` is the oldest entry in the log, `last` the newest.
pub(crate) fn truncate_below(
    progress: &Progress,
    first: u64,
    last: u64,
    max_lag: u64,
) -> Option<u64> {
    let bound = last.saturating_sub(max_lag) + 1;
    // With no peers at all, every entry is (vacuously) acknowledged by all.
    let acked_by_all = (progress.unidentified == 0).then(|| {
        progress
            .cursors
            .values()
            .copied()
            .min()
            .map_or(u64::MAX, |m| m + 1)
    });
    let keep_from = match acked_by_all {
        Some(a) => a.max(bound),
        None => bound,
    };
    (keep_from > first).then_some(keep_from.min(last))
}

/// The first sequence number to keep, from the progress bound and the age
/// bound (`by_age`: entries below it are too old to ship), or `None` when
/// less than `step` entries would go (truncating in steps, not on every
/// ack). The newest entry is always kept.
pub(crate) fn combine(
    first: u64,
    last: u64,
    by_progress: Option<u64>,
    by_age: u64,
    step: u64,
) -> Option<u64> {
    let below = by_progress.unwrap_or(first).max(by_age).min(last);
    (below > first && (below >= first + step || below >= last)).then_some(below)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(cursors: &[(&str, u64)], unidentified: usize) -> Progress {
        Progress {
            cursors: cursors.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            unidentified,
        }
    }

    #[test]
    fn entries_go_once_every_peer_acknowledged_them() {
        let p = progress(&[("a", 50), ("b", 30)], 0);
        assert_eq!(truncate_below(&p, 1, 100, 1_000), Some(31));
        assert_eq!(truncate_below(&p, 31, 100, 1_000), None);
    }

    #[test]
    fn an_unidentified_peer_holds_the_log_back_up_to_the_lag_bound() {
        let p = progress(&[("a", 90)], 1);
        assert_eq!(truncate_below(&p, 1, 100, 1_000), None);
        assert_eq!(truncate_below(&p, 1, 2_000, 1_000), Some(1_001));
    }

    #[test]
    fn a_dead_peer_is_left_behind_past_the_lag_bound() {
        let p = progress(&[("alive", 5_000), ("dead", 10)], 0);
        assert_eq!(truncate_below(&p, 1, 5_000, 1_000), Some(4_001));
    }

    #[test]
    fn the_newest_entry_is_never_truncated() {
        let p = progress(&[("a", 100)], 0);
        assert_eq!(truncate_below(&p, 1, 100, 1_000), Some(100));
    }

    #[test]
    fn entries_too_old_to_ship_go_whatever_holds_them_back() {
        // A peer gone for good pins nothing older than the age bound.
        assert_eq!(combine(1, 10_000, None, 5_000, 1024), Some(5_000));
        assert_eq!(combine(1, 10_000, Some(3_000), 5_000, 1024), Some(5_000));
        assert_eq!(combine(1, 10_000, Some(3_000), 500, 1024), Some(3_000));
        // Small progress steps wait; the newest entry always stays.
        assert_eq!(combine(1, 10_000, Some(10), 0, 1024), None);
        assert_eq!(combine(1, 10_000, None, 20_000, 1024), Some(10_000));
        assert_eq!(combine(5, 10_000, None, 5, 1024), None);
    }

    #[test]
    fn no_peers_at_all_means_nothing_to_wait_for() {
        let p = progress(&[], 0);
        assert_eq!(truncate_below(&p, 1, 100, 1_000), Some(100));
    }
}
