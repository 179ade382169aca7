//! Every client request body the gRPC API decodes (what tonic hands prost
//! after the 5-byte frame header) must decode or fail, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use vergent_wire::api::v1 as pb;

fuzz_target!(|data: &[u8]| {
    let _ = pb::GetRequest::decode(data);
    let _ = pb::PutRequest::decode(data);
    let _ = pb::DeleteRequest::decode(data);
    let _ = pb::ScanRequest::decode(data);
    let _ = pb::WatchRequest::decode(data);
    let _ = pb::CompareAndSetRequest::decode(data);
    let _ = pb::RemoveMemberRequest::decode(data);
    let _ = pb::DeclareStrictRequest::decode(data);
    if let Ok(v) = pb::Version::decode(data) {
        let _ = vergent_types::Version::try_from(&v);
    }
});
