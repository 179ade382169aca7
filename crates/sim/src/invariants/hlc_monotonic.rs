//! A node's clock never goes backwards: the timestamps one store's node
//! issues strictly increase, across crashes and restarts.

use std::collections::BTreeMap;

use vergent_hlc::Timestamp;

use crate::history::{Event, History};

/// The violations, one line each.
pub fn check(history: &History) -> Vec<String> {
    let mut last: BTreeMap<(usize, u64), Timestamp> = BTreeMap::new();
    let mut out = Vec::new();
    for e in &history.events {
        if let Event::Stamped { node, store, hlc } = e {
            if let Some(prev) = last.get(&(*node, *store))
                && *hlc <= *prev
            {
                out.push(format!("hlc: n{node} issued {hlc:?} after {prev:?}"));
            }
            last.insert((*node, *store), *hlc);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(ms: u64) -> Event {
        Event::Stamped {
            node: 0,
            store: 1,
            hlc: Timestamp::new(ms, 0),
        }
    }

    #[test]
    fn a_timestamp_not_above_the_previous_one_is_reported() {
        let h = History {
            events: vec![stamped(5), stamped(5), stamped(4), stamped(6)],
        };
        assert_eq!(check(&h).len(), 2);
        let ok = History {
            events: vec![stamped(1), stamped(2)],
        };
        assert!(check(&ok).is_empty());
    }
}
