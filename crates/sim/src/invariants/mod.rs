//! The invariants a run must keep, one per file. Each is a pure function
//! of plain data (the history, the replicas' final records, the membership
//! views) returning its violations, and each has a test that feeds it a
//! crafted state breaking it, so a checker that cannot fail is caught.

pub mod convergence;
pub mod hlc_monotonic;
pub mod level_durable;
pub mod level_read_sees_acked;
pub mod level_reads_monotonic;
pub mod linearizable;
pub mod lost_write;
pub mod membership;
pub mod resurrection;

use std::collections::BTreeMap;

use vergent_types::Version;

use crate::history::History;
use crate::store::Rec;

/// Keeps, per key, the newest tombstone version seen purged (or held):
/// what lets an invariant excuse a key that reads as absent.
pub(crate) fn note_purge<'a>(
    newest: &mut BTreeMap<&'a [u8], &'a Version>,
    key: &'a [u8],
    version: &'a Version,
) {
    let slot = newest.entry(key).or_insert(version);
    if version > *slot {
        *slot = version;
    }
}

/// Every invariant over a settled world's history and final records.
pub fn check_all(
    history: &History,
    states: &[BTreeMap<Vec<u8>, Rec>],
    views: &[std::collections::BTreeSet<String>],
) -> Vec<String> {
    let mut v = Vec::new();
    v.extend(lost_write::check(history, states));
    v.extend(resurrection::check(history, states));
    v.extend(convergence::check(states));
    v.extend(membership::check(views, states.len()));
    v.extend(hlc_monotonic::check(history));
    v.extend(linearizable::check(history));
    v.extend(level_durable::check(history));
    v.extend(level_read_sees_acked::check(history));
    v.extend(level_reads_monotonic::check(history));
    v
}
