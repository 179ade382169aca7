//! Bytes read back from disk as a stored record, a replication log entry or
//! a digest index entry (a damaged data directory): decode or fail, never
//! panic; what decodes re-encodes to bytes that decode the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vergent_types::record::{
    Record, decode_index, decode_log_value, encode_index, encode_log_value,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(record) = Record::decode(data) {
        assert_eq!(Record::decode(&record.encode()).ok(), Some(record));
    }
    if let Ok((key, record)) = decode_log_value(data) {
        let again = encode_log_value(&key, &record);
        assert_eq!(decode_log_value(&again).ok(), Some((key, record)));
    }
    if let Ok((version, tombstone)) = decode_index(data) {
        let record = if tombstone {
            Record::tombstone(version.clone())
        } else {
            Record::value(version.clone(), Vec::new(), None)
        };
        assert_eq!(
            decode_index(&encode_index(&record)).ok(),
            Some((version, tombstone))
        );
    }
});
