//! Reads at `QUORUM` and `ALL` are monotonic: a read that starts after
//! another one returned never returns an older version of the key (by
//! `(hlc, origin)`), which is what blocking read repair buys. A key whose
//! tombstone at least that new was purged since may read as absent.

use std::collections::BTreeMap;

use vergent_types::Version;

use crate::history::{Event, History, LevelResult};

/// The violations, one line each.
pub fn check(history: &History) -> Vec<String> {
    // Per key: reads answered so far (answer time, version).
    let mut answered: BTreeMap<&[u8], Vec<(u64, &Option<Version>)>> = BTreeMap::new();
    let mut purged: BTreeMap<&[u8], &Version> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &history.events {
        match e {
            Event::Purged { key, version, .. } => super::note_purge(&mut purged, key, version),
            Event::LevelRead {
                id,
                key,
                version,
                result: LevelResult::Ok,
                invoked_us,
                at_us,
                ..
            } => {
                for (at, earlier) in answered.get(key.as_slice()).into_iter().flatten() {
                    let excused = version.is_none()
                        && earlier
                            .as_ref()
                            .is_some_and(|e| purged.get(key.as_slice()).is_some_and(|p| *p >= e));
                    if *at < *invoked_us && version < *earlier && !excused {
                        out.push(format!(
                            "level read {id} of {:?} started at {invoked_us}µs returned {version:?}, older than {earlier:?} returned at {at}µs",
                            String::from_utf8_lossy(key)
                        ));
                    }
                }
                answered
                    .entry(key.as_slice())
                    .or_default()
                    .push((*at_us, version));
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vergent_consensus::levels::Level;
    use vergent_hlc::Timestamp;
    use vergent_types::NodeId;

    fn v(hlc: u64) -> Option<Version> {
        Some(Version::new(
            Timestamp::from_u64(hlc),
            NodeId::new("n0").expect("id"),
        ))
    }

    fn read(id: u64, invoked_us: u64, at_us: u64, version: Option<Version>) -> Event {
        Event::LevelRead {
            id,
            key: b"k".to_vec(),
            version,
            level: Level::Quorum,
            result: LevelResult::Ok,
            invoked_us,
            at_us,
        }
    }

    #[test]
    fn reads_that_never_go_back_pass_and_overlapping_ones_may_differ() {
        let h = History {
            events: vec![
                read(1, 0, 10, v(5)),
                read(2, 11, 20, v(5)),
                read(3, 21, 30, v(7)),
            ],
        };
        assert!(check(&h).is_empty());
        let overlapping = History {
            events: vec![read(1, 0, 10, v(5)), read(2, 5, 12, v(3))],
        };
        assert!(check(&overlapping).is_empty());
    }

    #[test]
    fn a_later_read_of_something_older_is_reported() {
        let h = History {
            events: vec![
                read(1, 0, 10, v(5)),
                read(2, 11, 20, v(3)),
                read(3, 21, 30, None),
            ],
        };
        let found = check(&h);
        assert_eq!(found.len(), 3, "read 3 is older than both: {found:?}");
        assert!(found[0].contains("older than"), "{found:?}");
    }
}
