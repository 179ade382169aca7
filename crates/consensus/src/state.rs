//! What an acceptor persists per key, and its byte encoding (a leading format-version byte).

use vergent_hlc::Timestamp;
use vergent_types::{NodeId, Version};

use crate::{Ballot, Error};

/// A register value: `None` is a tombstone (deleted or never written).
pub type Value = Option<Vec<u8>>;

/// The last-writer-wins record a node holds for a key: its version and value.
pub type LwwRecord = (Version, Value);

/// A proposal an acceptor accepted and has not yet seen committed.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Accepted {
    /// The ballot it was accepted at.
    pub ballot: Ballot,
    /// The proposed value.
    pub value: Value,
    /// The version the value gets in the LWW store once committed.
    pub commit: Version,
    /// The version of the state the value was computed from (`None`: the
    /// key was absent). A round that completes this proposal sends it as
    /// its base, so a voter holding a newer record refuses it (see
    /// [`crate::handle_accept`]).
    pub base: Option<Version>,
}

/// An acceptor's per-key Paxos state, persisted (and fsynced) before any reply that depends on it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct AcceptorState {
    /// The highest ballot promised; never decreases.
    pub promised: Option<Ballot>,
    /// The last proposal accepted and not yet covered by a commit.
    pub accepted: Option<Accepted>,
    /// The highest ballot whose commit was applied; never decreases.
    pub committed: Option<Ballot>,
}

/// The first format: an accepted proposal without its base.
const FORMAT_V1: u8 = 1;
/// The format written by [`AcceptorState::encode`]: V1 plus the accepted proposal's base.
const FORMAT_V2: u8 = 2;

impl AcceptorState {
    /// Encodes the state: format byte, then each field behind a presence tag.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT_V2];
        put_opt(&mut out, self.promised.as_ref(), put_ballot);
        put_opt(&mut out, self.accepted.as_ref(), |out, a| {
            put_ballot(out, &a.ballot);
            put_value(out, &a.value);
            put_version(out, &a.commit);
            put_opt(out, a.base.as_ref(), put_version);
        });
        put_opt(&mut out, self.committed.as_ref(), put_ballot);
        out
    }

    /// Decodes [`Self::encode`]'s output (and the first format, whose
    /// proposals take their commit version as their base: completing one
    /// is then never refused for a newer record, as before the base was
    /// kept); any malformed input is an error, never a panic.
    ///
    /// # Errors
    ///
    /// [`Error`] naming what is wrong: empty, unknown format, truncated, a
    /// bad tag or node id, or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let (&format, rest) = bytes.split_first().ok_or(Error::Empty)?;
        if format != FORMAT_V1 && format != FORMAT_V2 {
            return Err(Error::UnknownFormat(format));
        }
        let mut r = Reader(rest);
        let promised = r.opt(Reader::ballot)?;
        let accepted = r.opt(|r| {
            let ballot = r.ballot()?;
            let value = r.value()?;
            let commit = r.version()?;
            let base = if format == FORMAT_V1 {
                Some(commit.clone())
            } else {
                r.opt(Reader::version)?
            };
            Ok(Accepted {
                ballot,
                value,
                commit,
                base,
            })
        })?;
        let committed = r.opt(Reader::ballot)?;
        if !r.0.is_empty() {
            return Err(Error::Trailing(r.0.len()));
        }
        Ok(Self {
            promised,
            accepted,
            committed,
        })
    }
}

fn put_opt<T>(out: &mut Vec<u8>, v: Option<&T>, put: impl FnOnce(&mut Vec<u8>, &T)) {
    match v {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            put(out, v);
        }
    }
}

fn put_node(out: &mut Vec<u8>, node: &NodeId) {
    let bytes = node.as_str().as_bytes();
    // NodeId caps its length at MAX_NODE_ID_LEN (64), so it fits one byte.
    out.push(u8::try_from(bytes.len()).unwrap_or(u8::MAX));
    out.extend_from_slice(bytes);
}

fn put_ballot(out: &mut Vec<u8>, b: &Ballot) {
    out.extend_from_slice(&b.hlc.to_be_bytes());
    put_node(out, &b.node);
}

fn put_version(out: &mut Vec<u8>, v: &Version) {
    out.extend_from_slice(&v.hlc.to_be_bytes());
    put_node(out, &v.origin);
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    put_opt(out, v.as_ref(), |out, bytes| {
        out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
        out.extend_from_slice(bytes);
    });
}

/// A cursor over the undecoded rest of the input.
struct Reader<'a>(&'a [u8]);

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Error> {
        if self.0.len() < n {
            return Err(Error::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn opt<T>(
        &mut self,
        read: impl FnOnce(&mut Self) -> Result<T, Error>,
    ) -> Result<Option<T>, Error> {
        match self.u8()? {
            0 => Ok(None),
            1 => read(self).map(Some),
            tag => Err(Error::BadTag(tag)),
        }
    }

    fn node(&mut self) -> Result<NodeId, Error> {
        let len = usize::from(self.u8()?);
        let bytes = self.take(len)?;
        // Invalid UTF-8 cannot be a valid id; the lossy string fails NodeId's check.
        Ok(NodeId::new(String::from_utf8_lossy(bytes).into_owned())?)
    }

    fn ballot(&mut self) -> Result<Ballot, Error> {
        let hlc = Timestamp::from_u64(self.u64()?);
        Ok(Ballot::new(hlc, self.node()?))
    }

    fn version(&mut self) -> Result<Version, Error> {
        let hlc = Timestamp::from_u64(self.u64()?);
        Ok(Version::new(hlc, self.node()?))
    }

    fn value(&mut self) -> Result<Value, Error> {
        self.opt(|r| {
            let len = r.u64()?;
            // Checked against what is left before allocating, so a huge
            // length in garbage input cannot trigger a huge allocation.
            let len = usize::try_from(len).map_err(|_| Error::Truncated)?;
            Ok(r.take(len)?.to_vec())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn node() -> impl Strategy<Value = NodeId> {
        "[a-z0-9._-]{1,64}".prop_map(|s| NodeId::new(s).expect("valid id"))
    }

    fn ballot() -> impl Strategy<Value = Ballot> {
        (any::<u64>(), node()).prop_map(|(t, n)| Ballot::new(Timestamp::from_u64(t), n))
    }

    fn state() -> impl Strategy<Value = AcceptorState> {
        let version =
            || (any::<u64>(), node()).prop_map(|(t, n)| Version::new(Timestamp::from_u64(t), n));
        let accepted = (
            ballot(),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            version(),
            proptest::option::of(version()),
        )
            .prop_map(|(ballot, value, commit, base)| Accepted {
                ballot,
                value,
                commit,
                base,
            });
        (
            proptest::option::of(ballot()),
            proptest::option::of(accepted),
            proptest::option::of(ballot()),
        )
            .prop_map(|(promised, accepted, committed)| AcceptorState {
                promised,
                accepted,
                committed,
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_round_trips(s in state()) {
            prop_assert_eq!(AcceptorState::decode(&s.encode()), Ok(s));
        }

        #[test]
        fn every_truncation_of_a_valid_encoding_errors(s in state()) {
            let bytes = s.encode();
            for len in 0..bytes.len() {
                prop_assert!(AcceptorState::decode(&bytes[..len]).is_err());
            }
        }

        #[test]
        fn garbage_input_errors_or_decodes_but_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(s) = AcceptorState::decode(&bytes) {
                if bytes[0] == FORMAT_V2 {
                    prop_assert_eq!(s.encode(), bytes);
                } else {
                    prop_assert_eq!(AcceptorState::decode(&s.encode()), Ok(s));
                }
            }
        }
    }

    #[test]
    fn empty_unknown_format_bad_tag_and_trailing_bytes_are_named() {
        assert_eq!(AcceptorState::decode(&[]), Err(Error::Empty));
        assert_eq!(AcceptorState::decode(&[9]), Err(Error::UnknownFormat(9)));
        assert_eq!(AcceptorState::decode(&[1, 7]), Err(Error::BadTag(7)));
        assert_eq!(
            AcceptorState::decode(&[1, 0, 0, 0, 0]),
            Err(Error::Trailing(1))
        );
        let huge_value = [1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1, b'a', 1];
        assert!(AcceptorState::decode(&huge_value).is_err());
        let mut bad_id = vec![1, 1];
        bad_id.extend_from_slice(&[0; 8]);
        bad_id.extend_from_slice(&[1, b' ']);
        bad_id.extend_from_slice(&[0, 0]);
        assert!(matches!(
            AcceptorState::decode(&bad_id),
            Err(Error::BadNodeId(_))
        ));
    }

    #[test]
    fn default_state_encodes_to_format_byte_and_three_absent_tags() {
        assert_eq!(AcceptorState::default().encode(), vec![2, 0, 0, 0]);
    }

    #[test]
    fn a_first_format_proposal_decodes_with_its_commit_as_its_base() {
        let commit = Version::new(Timestamp::from_u64(7), NodeId::new("n").expect("id"));
        let mut v1 = vec![FORMAT_V1, 0, 1];
        put_ballot(
            &mut v1,
            &Ballot::new(Timestamp::from_u64(5), NodeId::new("p").expect("id")),
        );
        put_value(&mut v1, &Some(b"x".to_vec()));
        put_version(&mut v1, &commit);
        v1.push(0);
        let s = AcceptorState::decode(&v1).expect("a first-format record decodes");
        let a = s.accepted.expect("accepted");
        assert_eq!((a.commit.clone(), a.base), (commit.clone(), Some(commit)));
    }
}
