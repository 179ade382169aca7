//! A per-key acceptor record read back from disk (the paxos column family):
//! any bytes decode or fail, never panic, and what decodes re-encodes to a
//! record that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vergent_consensus::AcceptorState;

fuzz_target!(|data: &[u8]| {
    if let Ok(state) = AcceptorState::decode(data) {
        let again = state.encode();
        assert_eq!(AcceptorState::decode(&again).ok(), Some(state));
    }
});
