//! No acknowledged write is lost: after the run settles, every replica holds
//! each acknowledged write or something newer of its key, or nothing of the
//! key where a tombstone at least as new was purged or is still held by
//! another replica (repair does not hand a tombstone past the grace to a
//! side lacking the key, so a rebuilt node may never receive it).

use std::collections::BTreeMap;

use vergent_types::Version;

use crate::history::{Event, History};
use crate::store::Rec;

/// The violations, one line each.
pub fn check(history: &History, states: &[BTreeMap<Vec<u8>, Rec>]) -> Vec<String> {
    // Per key, the newest tombstone purged anywhere or held by any replica.
    let mut purged: BTreeMap<&[u8], &Version> = BTreeMap::new();
    for e in &history.events {
        if let Event::Purged { key, version, .. } = e {
            super::note_purge(&mut purged, key, version);
        }
    }
    for state in states {
        for (key, r) in state.iter().filter(|(_, r)| r.is_tombstone()) {
            super::note_purge(&mut purged, key, &r.version);
        }
    }
    let mut out = Vec::new();
    for e in &history.events {
        let Event::Acked { key, version, .. } = e else {
            continue;
        };
        for (node, state) in states.iter().enumerate() {
            let ok = match state.get(key) {
                Some(r) => r.version >= *version,
                None => purged.get(key.as_slice()).is_some_and(|p| *p >= version),
            };
            if !ok {
                out.push(format!(
                    "lost write: n{node} holds {:?} of {:?}, below the acknowledged {version:?}",
                    state.get(key).map(|r| &r.version),
                    String::from_utf8_lossy(key)
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use vergent_hlc::Timestamp;
    use vergent_types::NodeId;

    use super::*;

    fn v(ms: u64) -> Version {
        Version::new(Timestamp::new(ms, 0), NodeId::new("n0").expect("id"))
    }

    fn acked(ms: u64, deleted: bool) -> Event {
        Event::Acked {
            id: ms,
            key: b"k".to_vec(),
            version: v(ms),
            deleted,
        }
    }

    #[test]
    fn a_replica_behind_an_acknowledged_write_is_reported() {
        let h = History {
            events: vec![acked(2, false)],
        };
        let behind = BTreeMap::from([(
            b"k".to_vec(),
            Rec {
                version: v(1),
                value: Some(b"old".to_vec()),
            },
        )]);
        let found = check(&h, &[behind]);
        assert_eq!(found.len(), 1, "{found:?}");
        let missing = check(&h, &[BTreeMap::new()]);
        assert_eq!(missing.len(), 1, "a write absent everywhere is lost");
    }

    #[test]
    fn a_newer_record_or_a_purged_newer_tombstone_keeps_the_write() {
        let mut h = History {
            events: vec![acked(2, false)],
        };
        let newer = BTreeMap::from([(
            b"k".to_vec(),
            Rec {
                version: v(3),
                value: None,
            },
        )]);
        assert!(check(&h, &[newer]).is_empty());
        let tombstone = BTreeMap::from([(
            b"k".to_vec(),
            Rec {
                version: v(3),
                value: None,
            },
        )]);
        assert!(
            check(&h, &[BTreeMap::new(), tombstone]).is_empty(),
            "held elsewhere"
        );
        h.events.push(Event::Purged {
            node: 0,
            key: b"k".to_vec(),
            version: v(3),
        });
        assert!(check(&h, &[BTreeMap::new()]).is_empty());
    }
}
