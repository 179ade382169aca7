//! The shell's words: splitting an input line into byte strings (quotes
//! and `\xNN` escapes) and quoting bytes back into that syntax.
//!
//! Std only, no crate dependencies: the fuzz target `shell_words`
//! (`crates/fuzz`) compiles this file as it is.

/// The error of a line whose quotes do not close.
const UNBALANCED: &str = "unbalanced quotes";

/// Splits a line into words.
///
/// Blanks (space, tab) separate words. Single quotes keep every byte as it
/// is; double quotes keep bytes too but read the escapes `\xNN` (any byte),
/// `\n`, `\r`, `\t`, `\\` and `\"`. Outside quotes every byte but a blank and
/// a quote stands for itself, a backslash included (as redis-cli reads it).
/// Quoted and unquoted parts next to each other make one word.
///
/// Not `shlex`: a POSIX shell has no `\xNN`, and escapes must be read in the
/// same pass that finds the quotes (after `shlex`, `"\\x41"` and `"\x41"`
/// would be the same text).
pub(crate) fn split(line: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let mut words = Vec::new();
    let mut word: Option<Vec<u8>> = None;
    let mut it = line.iter().copied();
    while let Some(b) = it.next() {
        match b {
            b' ' | b'\t' => words.extend(word.take()),
            b'\'' => {
                let w = word.get_or_insert_with(Vec::new);
                loop {
                    match it.next().ok_or(UNBALANCED)? {
                        b'\'' => break,
                        c => w.push(c),
                    }
                }
            }
            b'"' => {
                let w = word.get_or_insert_with(Vec::new);
                loop {
                    match it.next().ok_or(UNBALANCED)? {
                        b'"' => break,
                        b'\\' => w.push(unescape(&mut it)?),
                        c => w.push(c),
                    }
                }
            }
            c => word.get_or_insert_with(Vec::new).push(c),
        }
    }
    words.extend(word);
    Ok(words)
}

/// Reads the escape after a backslash inside double quotes.
fn unescape(it: &mut impl Iterator<Item = u8>) -> Result<u8, String> {
    match it.next().ok_or(UNBALANCED)? {
        b'x' => {
            let hex = |d: Option<u8>| d.and_then(|d| char::from(d).to_digit(16));
            match (hex(it.next()), hex(it.next())) {
                // Two hex digits make at most 0xff.
                (Some(hi), Some(lo)) => Ok(u8::try_from(hi * 16 + lo).unwrap_or(u8::MAX)),
                _ => Err("\\x takes two hex digits, e.g. \"\\x00\"".into()),
            }
        }
        b'n' => Ok(b'\n'),
        b'r' => Ok(b'\r'),
        b't' => Ok(b'\t'),
        b'\\' => Ok(b'\\'),
        b'"' => Ok(b'"'),
        other => Err(format!(
            "unknown escape {} in double quotes: use \\xNN, \\n, \\r, \\t, \\\\ or \\\"",
            quote(&[b'\\', other])
        )),
    }
}

/// Bytes as a double-quoted string in the shell's own syntax (redis-cli
/// style): printable UTF-8 as it is; `"`, `\`, newline, return and tab as
/// `\"`, `\\`, `\n`, `\r`, `\t`; every other control character and every
/// byte that is not UTF-8 as `\xNN`.
pub(crate) fn quote(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                c if c.is_control() => {
                    for b in c.encode_utf8(&mut [0; 4]).bytes() {
                        let _ = write!(out, "\\x{b:02x}");
                    }
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_bytes_split_back_to_the_same_bytes() {
        for bytes in [
            &b""[..],
            b"plain",
            b"with space",
            b"\xff\xfe\x00",
            b"a\"b\\c\n\r\t",
            "日本\u{7f}".as_bytes(),
        ] {
            assert_eq!(split(quote(bytes).as_bytes()), Ok(vec![bytes.to_vec()]));
        }
    }

    #[test]
    fn bad_quotes_and_escapes_are_errors_not_panics() {
        for line in [&b"\"open"[..], b"'open", b"\"\\x4\"", b"\"\\q\"", b"\"\\"] {
            assert!(split(line).is_err(), "{line:?}");
        }
    }
}
