//! The stored record and the byte encodings the store keeps on disk: the
//! record itself (the `data` column family), a replication log entry (`log`)
//! and a digest index entry (`index`). Here, outside the storage crate, so
//! the decoders of bytes read back from disk are pure and fuzzed
//! (`crates/fuzz`); `vergent-storage` re-exports [`Record`] and
//! [`DecodeError`].
//!
//! Record layout (all integers big-endian):
//! `format:u8 | flags:u8 | hlc:u64 | origin_len:u8 | origin | [expires_at_ms:u64] | value`
//! where flag bit 0 marks a tombstone and bit 1 the presence of an expiry.

use vergent_hlc::Timestamp;

use crate::{NodeId, Version};

const FORMAT_V1: u8 = 1;
const FLAG_TOMBSTONE: u8 = 0b01;
const FLAG_EXPIRY: u8 = 0b10;

/// One version of a key: a value or a tombstone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// The version that wrote this record.
    pub version: Version,
    /// The value, or `None` for a tombstone (a delete).
    pub value: Option<Vec<u8>>,
    /// Physical time in ms after which the value reads as absent.
    pub expires_at_ms: Option<u64>,
}

/// Why stored bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Fewer bytes than the header needs.
    #[error("record is truncated")]
    Truncated,
    /// Written by a newer or unknown format.
    #[error("unknown record format {0}")]
    UnknownFormat(u8),
    /// The origin node id is not valid.
    #[error("invalid origin node id: {0}")]
    BadOrigin(String),
    /// A tombstone carries value bytes.
    #[error("tombstone with a value")]
    TombstoneWithValue,
}

impl Record {
    /// A live value.
    pub fn value(version: Version, value: Vec<u8>, expires_at_ms: Option<u64>) -> Self {
        Self {
            version,
            value: Some(value),
            expires_at_ms,
        }
    }

    /// A tombstone.
    pub fn tombstone(version: Version) -> Self {
        Self {
            version,
            value: None,
            expires_at_ms: None,
        }
    }

    /// Whether this record is a tombstone.
    pub fn is_tombstone(&self) -> bool {
        self.value.is_none()
    }

    /// The value as readers see it at physical time `now_ms`: `None` when
    /// deleted or expired.
    pub fn live_value(&self, now_ms: u64) -> Option<&[u8]> {
        match self.expires_at_ms {
            Some(at) if now_ms >= at => None,
            _ => self.value.as_deref(),
        }
    }

    /// Encodes the record for storage.
    pub fn encode(&self) -> Vec<u8> {
        let origin = self.version.origin.as_str().as_bytes();
        let value = self.value.as_deref().unwrap_or_default();
        let mut out = Vec::with_capacity(11 + origin.len() + 8 + value.len());
        let mut flags = 0;
        if self.value.is_none() {
            flags |= FLAG_TOMBSTONE;
        }
        if self.expires_at_ms.is_some() {
            flags |= FLAG_EXPIRY;
        }
        out.push(FORMAT_V1);
        out.push(flags);
        out.extend_from_slice(&self.version.hlc.to_be_bytes());
        // NodeId guarantees at most 64 bytes, so the length fits in a u8.
        out.push(origin.len() as u8);
        out.extend_from_slice(origin);
        if let Some(at) = self.expires_at_ms {
            out.extend_from_slice(&at.to_be_bytes());
        }
        out.extend_from_slice(value);
        out
    }

    /// Decodes stored bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader(bytes);
        let format = r.u8()?;
        if format != FORMAT_V1 {
            return Err(DecodeError::UnknownFormat(format));
        }
        let flags = r.u8()?;
        let hlc = Timestamp::from_u64(r.u64()?);
        let origin_len = usize::from(r.u8()?);
        let origin = r.take(origin_len)?;
        let origin = std::str::from_utf8(origin)
            .map_err(|e| DecodeError::BadOrigin(e.to_string()))
            .and_then(|s| NodeId::new(s).map_err(|e| DecodeError::BadOrigin(e.to_string())))?;
        let expires_at_ms = if flags & FLAG_EXPIRY != 0 {
            Some(r.u64()?)
        } else {
            None
        };
        let rest = r.0;
        let value = if flags & FLAG_TOMBSTONE != 0 {
            if !rest.is_empty() {
                return Err(DecodeError::TombstoneWithValue);
            }
            None
        } else {
            Some(rest.to_vec())
        };
        Ok(Self {
            version: Version::new(hlc, origin),
            value,
            expires_at_ms,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }
}

/// A replication log entry's value: `key_len:u32 | key | record`.
#[must_use]
pub fn encode_log_value(key: &[u8], record: &Record) -> Vec<u8> {
    let rec = record.encode();
    let mut out = Vec::with_capacity(4 + key.len() + rec.len());
    // Keys are bounded by the node's limits (far below 4 GiB).
    out.extend_from_slice(&(key.len() as u32).to_be_bytes());
    out.extend_from_slice(key);
    out.extend_from_slice(&rec);
    out
}

/// Decodes [`encode_log_value`]'s bytes: the key and its record.
pub fn decode_log_value(bytes: &[u8]) -> Result<(Vec<u8>, Record), DecodeError> {
    let len = bytes
        .get(..4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or(DecodeError::Truncated)? as usize;
    let end = 4usize.checked_add(len).ok_or(DecodeError::Truncated)?;
    let key = bytes.get(4..end).ok_or(DecodeError::Truncated)?;
    let record = Record::decode(&bytes[end..])?;
    Ok((key.to_vec(), record))
}

/// A digest index entry's value: `tombstone:u8 | hlc:u64 | origin`.
#[must_use]
pub fn encode_index(record: &Record) -> Vec<u8> {
    let origin = record.version.origin.as_str().as_bytes();
    let mut out = Vec::with_capacity(9 + origin.len());
    out.push(u8::from(record.is_tombstone()));
    out.extend_from_slice(&record.version.hlc.as_u64().to_be_bytes());
    out.extend_from_slice(origin);
    out
}

/// Decodes [`encode_index`]'s bytes: the version and whether it is a tombstone.
pub fn decode_index(bytes: &[u8]) -> Result<(Version, bool), DecodeError> {
    let (&flag, bytes) = bytes.split_first().ok_or(DecodeError::Truncated)?;
    let hlc = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
        .ok_or(DecodeError::Truncated)?;
    let origin = String::from_utf8(bytes[8..].to_vec())
        .map_err(|e| DecodeError::BadOrigin(e.to_string()))?;
    let origin = NodeId::new(origin).map_err(|e| DecodeError::BadOrigin(e.to_string()))?;
    Ok((Version::new(Timestamp::from_u64(hlc), origin), flag == 1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_record() -> impl Strategy<Value = Record> {
        (
            any::<u64>(),
            "[a-z0-9-]{1,64}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            proptest::option::of(any::<u64>()),
        )
            .prop_map(|(hlc, origin, value, exp)| Record {
                version: Version::new(
                    Timestamp::from_u64(hlc),
                    NodeId::new(origin).expect("strategy yields valid ids"),
                ),
                expires_at_ms: if value.is_some() { exp } else { None },
                value,
            })
    }

    proptest! {
        #[test]
        fn encode_then_decode_is_identity(rec in arb_record()) {
            prop_assert_eq!(Record::decode(&rec.encode()), Ok(rec));
        }

        #[test]
        fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = Record::decode(&bytes);
        }
    }

    #[test]
    fn truncated_and_unknown_formats_are_reported() {
        assert_eq!(Record::decode(&[]), Err(DecodeError::Truncated));
        assert_eq!(Record::decode(&[9, 0]), Err(DecodeError::UnknownFormat(9)));
        let mut bytes = Record::tombstone(Version::new(
            Timestamp::from_u64(1),
            NodeId::new("a").expect("valid"),
        ))
        .encode();
        bytes.push(1);
        assert_eq!(Record::decode(&bytes), Err(DecodeError::TombstoneWithValue));
    }

    #[test]
    fn expired_values_read_as_absent() {
        let v = Version::new(Timestamp::from_u64(1), NodeId::new("a").expect("valid"));
        let rec = Record::value(v, b"x".to_vec(), Some(100));
        assert_eq!(rec.live_value(99), Some(&b"x"[..]));
        assert_eq!(rec.live_value(100), None);
    }

    #[test]
    fn log_and_index_values_round_trip_and_truncations_are_errors() {
        let v = Version::new(Timestamp::from_u64(42), NodeId::new("n1").expect("id"));
        for record in [
            Record::value(v.clone(), b"val".to_vec(), Some(9)),
            Record::tombstone(v),
        ] {
            let log = encode_log_value(b"key", &record);
            assert_eq!(
                decode_log_value(&log),
                Ok((b"key".to_vec(), record.clone()))
            );
            // The value runs to the end (RocksDB stores values whole), so
            // only cuts before it can be told from a shorter value.
            let header = log.len() - record.value.as_ref().map_or(0, Vec::len);
            for cut in 0..header {
                assert!(decode_log_value(&log[..cut]).is_err(), "cut at {cut}");
            }
            let index = encode_index(&record);
            assert_eq!(
                decode_index(&index),
                Ok((record.version.clone(), record.is_tombstone()))
            );
            assert!(decode_index(&index[..5]).is_err());
        }
        // A key length far beyond the bytes present.
        assert_eq!(
            decode_log_value(&[0xff, 0xff, 0xff, 0xff, 1]),
            Err(DecodeError::Truncated)
        );
    }
}
