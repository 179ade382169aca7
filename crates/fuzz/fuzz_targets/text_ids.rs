//! Text a peer, a client or a file hands us as an HLC timestamp, a node id
//! or a backup manifest: parses or fails, never panics; what parses prints
//! back to itself (a manifest to one that reads back the same).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(t) = text.parse::<vergent_hlc::Timestamp>() {
        assert_eq!(
            t.to_string().parse::<vergent_hlc::Timestamp>().ok(),
            Some(t)
        );
    }
    if let Ok(id) = text.parse::<vergent_types::NodeId>() {
        assert_eq!(id.as_str(), text);
    }
    if let Ok(m) = vergent_types::backup::Manifest::parse(text) {
        assert_eq!(
            vergent_types::backup::Manifest::parse(&m.encode()).as_ref(),
            Ok(&m)
        );
    }
});
