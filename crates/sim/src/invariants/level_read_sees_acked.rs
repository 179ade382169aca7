//! A read at `QUORUM` or `ALL` that starts after a write at `QUORUM` or
//! `ALL` was acknowledged returns that write or something newer of its key,
//! by `(hlc, origin)`: whatever crashed, was wiped (a minority) or
//! partitioned in between. A key whose tombstone at least that new was
//! purged since may read as absent.

use std::collections::BTreeMap;

use vergent_types::Version;

use crate::history::{Event, History, LevelResult};

/// The violations, one line each.
pub fn check(history: &History) -> Vec<String> {
    // Per key: acknowledged level writes (answer time, version), and the
    // newest purged tombstone so far, by position in the history.
    let mut acked: BTreeMap<&[u8], Vec<(u64, &Version)>> = BTreeMap::new();
    let mut purged: BTreeMap<&[u8], &Version> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &history.events {
        match e {
            Event::Purged { key, version, .. } => super::note_purge(&mut purged, key, version),
            Event::LevelWrite {
                key,
                version: Some(v),
                result: LevelResult::Ok,
                at_us,
                ..
            } => acked.entry(key.as_slice()).or_default().push((*at_us, v)),
            Event::LevelRead {
                id,
                key,
                version,
                result: LevelResult::Ok,
                invoked_us,
                ..
            } => {
                for (at, w) in acked.get(key.as_slice()).into_iter().flatten() {
                    let seen = version.as_ref().is_some_and(|r| r >= *w)
                        || purged.get(key.as_slice()).is_some_and(|p| *p >= *w);
                    if *at < *invoked_us && !seen {
                        out.push(format!(
                            "level read {id} of {:?} started at {invoked_us}µs returned {version:?}, older than {w:?} acknowledged at {at}µs",
                            String::from_utf8_lossy(key)
                        ));
                    }
                }
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

    fn v(hlc: u64) -> Version {
        Version::new(Timestamp::from_u64(hlc), NodeId::new("n0").expect("id"))
    }

    fn write(at_us: u64, version: Version) -> Event {
        Event::LevelWrite {
            id: 1,
            key: b"k".to_vec(),
            version: Some(version),
            level: Level::Quorum,
            result: LevelResult::Ok,
            invoked_us: at_us - 1,
            at_us,
        }
    }

    fn read(invoked_us: u64, version: Option<Version>) -> Event {
        Event::LevelRead {
            id: 2,
            key: b"k".to_vec(),
            version,
            level: Level::Quorum,
            result: LevelResult::Ok,
            invoked_us,
            at_us: invoked_us + 5,
        }
    }

    #[test]
    fn a_later_read_of_the_write_or_newer_passes_and_a_concurrent_one_may_miss_it() {
        let h = History {
            events: vec![write(10, v(5)), read(20, Some(v(5))), read(30, Some(v(9)))],
        };
        assert!(check(&h).is_empty());
        let concurrent = History {
            events: vec![write(10, v(5)), read(8, None)],
        };
        assert!(check(&concurrent).is_empty(), "it started before the ack");
    }

    #[test]
    fn a_later_read_of_something_older_or_nothing_is_reported() {
        let h = History {
            events: vec![write(10, v(5)), read(20, Some(v(4))), read(21, None)],
        };
        let found = check(&h);
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].contains("older than"), "{found:?}");
    }

    #[test]
    fn a_purged_tombstone_excuses_an_absent_key() {
        let h = History {
            events: vec![
                write(10, v(5)),
                Event::Purged {
                    node: 0,
                    key: b"k".to_vec(),
                    version: v(6),
                },
                read(20, None),
            ],
        };
        assert!(check(&h).is_empty());
    }
}
