//! The shell's line splitter (`bins/vergentctl/src/words.rs`, compiled here
//! as it is, since vergentctl is a binary): any bytes split into words or
//! fail, never panic; quoting any bytes and splitting them gives them back,
//! so what the shell displays can always be typed in again.
#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../../bins/vergentctl/src/words.rs"]
#[allow(dead_code)]
mod words;

fuzz_target!(|data: &[u8]| {
    if let Ok(split) = words::split(data) {
        let line = split
            .iter()
            .map(|w| words::quote(w))
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(words::split(line.as_bytes()), Ok(split));
    }
    assert_eq!(
        words::split(words::quote(data).as_bytes()),
        Ok(vec![data.to_vec()])
    );
});
