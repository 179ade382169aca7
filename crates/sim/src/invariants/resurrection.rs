//! A deleted key never comes back: no replica ends with a live value older
//! than an acknowledged delete of its key.

use std::collections::BTreeMap;

use vergent_types::Version;

use crate::history::{Event, History};
use crate::store::Rec;

/// The violations, one line each.
pub fn check(history: &History, states: &[BTreeMap<Vec<u8>, Rec>]) -> Vec<String> {
    let mut deleted: BTreeMap<&[u8], &Version> = BTreeMap::new();
    for e in &history.events {
        if let Event::Acked {
            key,
            version,
            deleted: true,
            ..
        } = e
        {
            let newest = deleted.entry(key.as_slice()).or_insert(version);
            if version > *newest {
                *newest = version;
            }
        }
    }
    let mut out = Vec::new();
    for (node, state) in states.iter().enumerate() {
        for (key, rec) in state {
            if rec.is_tombstone() {
                continue;
            }
            if let Some(del) = deleted.get(key.as_slice())
                && rec.version < **del
            {
                out.push(format!(
                    "resurrection: n{node} holds a value of {:?} at {:?}, older than its acknowledged delete at {del:?}",
                    String::from_utf8_lossy(key),
                    rec.version
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

    fn history() -> History {
        History {
            events: vec![Event::Acked {
                id: 1,
                key: b"k".to_vec(),
                version: v(5),
                deleted: true,
            }],
        }
    }

    #[test]
    fn a_value_older_than_an_acknowledged_delete_is_a_resurrection() {
        let state = BTreeMap::from([(
            b"k".to_vec(),
            Rec {
                version: v(4),
                value: Some(b"x".to_vec()),
            },
        )]);
        assert_eq!(check(&history(), &[state]).len(), 1);
    }

    #[test]
    fn a_value_written_after_the_delete_is_not() {
        let state = BTreeMap::from([(
            b"k".to_vec(),
            Rec {
                version: v(6),
                value: Some(b"x".to_vec()),
            },
        )]);
        assert!(check(&history(), &[state, BTreeMap::new()]).is_empty());
    }
}
