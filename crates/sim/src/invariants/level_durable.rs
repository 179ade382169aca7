//! A write acknowledged at `QUORUM` (or `ALL`) is durable on that many
//! voters at the moment it is acknowledged, so it survives the loss of any
//! minority (of every voter but one, for `ALL`) after that: the world
//! counts, when the acknowledgement is recorded, the nodes whose synced
//! store holds the write or something newer of its key (`Event::LevelHeld`).
//! A copy lost to a wipe while the write was in flight (its acknowledgement
//! was on its way) counts as held: that loss came before the guarantee.

use crate::history::{Event, History};

/// The violations, one line each.
pub fn check(history: &History) -> Vec<String> {
    history
        .events
        .iter()
        .filter_map(|e| match e {
            Event::LevelHeld {
                id,
                holders,
                wiped_during,
                voters,
                level,
            } if holders + wiped_during < level.required(*voters) => Some(format!(
                "level write {id} acknowledged at {level:?} while {holders} of {voters} voters held it durably (needs {}; {wiped_during} wiped meanwhile)",
                level.required(*voters)
            )),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use vergent_consensus::levels::Level;

    fn held(holders: usize, level: Level) -> History {
        History {
            events: vec![Event::LevelHeld {
                id: 1,
                holders,
                wiped_during: 0,
                voters: 3,
                level,
            }],
        }
    }

    #[test]
    fn a_quorum_write_held_by_two_of_three_passes() {
        assert!(check(&held(2, Level::Quorum)).is_empty());
        assert!(check(&held(3, Level::All)).is_empty());
    }

    #[test]
    fn a_quorum_write_held_by_one_or_an_all_write_by_two_is_reported() {
        let v = check(&held(1, Level::Quorum));
        assert_eq!(v.len(), 1);
        assert!(
            v[0].contains("1 of 3 voters held it durably (needs 2"),
            "{v:?}"
        );
        assert_eq!(check(&held(2, Level::All)).len(), 1);
    }

    #[test]
    fn a_copy_wiped_while_the_write_was_in_flight_is_not_held_against_it() {
        let h = History {
            events: vec![Event::LevelHeld {
                id: 1,
                holders: 1,
                wiped_during: 1,
                voters: 3,
                level: Level::Quorum,
            }],
        };
        assert!(check(&h).is_empty());
    }
}
