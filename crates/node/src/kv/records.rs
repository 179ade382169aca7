//! Stored records as peer-protocol messages: one conversion, shared by log
//! shipping and repair (`peer`) and by read repair at `quorum`/`all`
//! (`strong`), so a record crosses the wire the same way whichever path
//! carries it.

use vergent_hlc::Timestamp;
use vergent_storage::Record;
use vergent_types::{NodeId, NodeIdError, Version};
use vergent_wire::peer::v1 as pb;

/// `record` of `key` as a peer message (`seq`: its log position, 0 outside the log).
pub(crate) fn to_wire(seq: u64, key: &[u8], record: &Record) -> pb::Record {
    pb::Record {
        seq,
        key: key.to_vec(),
        hlc: record.version.hlc.as_u64(),
        origin: record.version.origin.to_string(),
        tombstone: record.is_tombstone(),
        value: record.value.clone().unwrap_or_default(),
        expires_at_ms: record.expires_at_ms,
    }
}

/// A peer's record message back as a key and a record.
///
/// # Errors
///
/// The origin is not a valid node id.
pub(crate) fn from_wire(r: pb::Record) -> Result<(Vec<u8>, Record), NodeIdError> {
    let version = Version::new(Timestamp::from_u64(r.hlc), NodeId::new(r.origin)?);
    let record = if r.tombstone {
        Record::tombstone(version)
    } else {
        Record::value(version, r.value, r.expires_at_ms)
    };
    Ok((r.key, record))
}
