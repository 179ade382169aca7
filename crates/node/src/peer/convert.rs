//! Conversions between storage records and peer protocol messages.

use prost::Message;
use vergent_storage::{LogEntry, Record};
use vergent_wire::peer::v1 as pb;

/// Why a peer's message was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DecodeError {
    /// Not a valid protobuf frame.
    #[error("malformed frame: {0}")]
    Protobuf(#[from] prost::DecodeError),
    /// A record's origin is not a valid node id.
    #[error("invalid origin: {0}")]
    Origin(#[from] vergent_types::NodeIdError),
    /// The frame has no body, or an unexpected one.
    #[error("unexpected frame: {0}")]
    Unexpected(&'static str),
}

pub(crate) fn entry_to_wire(e: &LogEntry) -> pb::Record {
    crate::kv::records::to_wire(e.seq, &e.key, &e.record)
}

pub(crate) fn record_from_wire(r: pb::Record) -> Result<(Vec<u8>, Record), DecodeError> {
    Ok(crate::kv::records::from_wire(r)?)
}

pub(crate) fn encode(body: pb::frame::Body) -> Vec<u8> {
    pb::Frame { body: Some(body) }.encode_to_vec()
}

pub(crate) fn decode(bytes: &[u8]) -> Result<pb::frame::Body, DecodeError> {
    pb::Frame::decode(bytes)?
        .body
        .ok_or(DecodeError::Unexpected("empty frame"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vergent_hlc::Timestamp;
    use vergent_types::{NodeId, Version};

    #[test]
    fn records_round_trip_through_the_peer_protocol() {
        let v = Version::new(Timestamp::from_u64(77), NodeId::new("n1").expect("id"));
        for record in [
            Record::value(v.clone(), b"x".to_vec(), Some(5)),
            Record::tombstone(v.clone()),
        ] {
            let e = LogEntry {
                seq: 3,
                key: b"k".to_vec(),
                record: record.clone(),
            };
            let (k, back) = record_from_wire(entry_to_wire(&e)).expect("decode");
            assert_eq!((k, back), (b"k".to_vec(), record));
        }
    }

    #[test]
    fn garbage_frames_are_errors_not_panics() {
        assert!(decode(&[0xff, 0xff, 0xff]).is_err());
        assert!(decode(&[]).is_err());
    }
}
