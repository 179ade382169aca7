//! Every peer message: a QUIC stream or datagram's bytes decoded as a peer
//! `Frame` (replication, repair, purge, gossip, consensus batches and the
//! configuration register) must decode or fail, never panic or allocate
//! without bound, and a decoded frame must re-encode.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vergent_wire::peer::v1 as pb;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = pb::Frame::decode(data) {
        let again = frame.encode_to_vec();
        assert_eq!(pb::Frame::decode(again.as_slice()).ok(), Some(frame));
    }
    // Gossip travels as datagrams of its own message type.
    if let Ok(g) = pb::Gossip::decode(data) {
        let _ = g.encode_to_vec();
    }
});
