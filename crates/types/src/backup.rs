//! The backup manifest: what a backup directory holds and how to check it.
//!
//! A backup is a directory with the store's files under `db/` and this
//! manifest, `vergent-backup.txt`, written last (a directory without it is
//! an unfinished backup). The manifest is plain text so an operator can read
//! it and check the files by hand (`sha256sum`):
//!
//! ```text
//! vergent-backup 1
//! node n1
//! store 00000000000000ff
//! created-unix-ms 1765152000000
//! file 0123abcd… 4096 000012.sst
//! ```
//!
//! Pure: parsing never touches the file system, so it is fuzzed.

use std::fmt::Write as _;

/// The manifest's file name inside a backup directory.
pub const MANIFEST_FILE: &str = "vergent-backup.txt";
/// The directory inside a backup that holds the store's files.
pub const FILES_DIR: &str = "db";
/// The manifest format this build writes and reads.
pub const FORMAT: u32 = 1;

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupFile {
    /// Its name, a plain file name (no directory part).
    pub name: String,
    /// Its length in bytes.
    pub size: u64,
    /// Its SHA-256 digest.
    pub sha256: [u8; 32],
}

/// What a backup holds: whose store, when, and every file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// The node the backup was taken from.
    pub node_id: String,
    /// That node's store id.
    pub store_id: u64,
    /// When the node took it (its system clock, Unix milliseconds).
    pub created_unix_ms: u64,
    /// The files, in the order they were sent.
    pub files: Vec<BackupFile>,
}

/// A manifest that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    /// The first line is not `vergent-backup N`.
    #[error("not a Vergent backup manifest (the first line must be `vergent-backup {FORMAT}`)")]
    NotAManifest,
    /// Another format version.
    #[error("backup format {0} is not supported by this build (it reads format {FORMAT})")]
    Format(u32),
    /// A line that does not parse.
    #[error("line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// A required field is missing.
    #[error("the manifest has no `{0}` line")]
    Missing(&'static str),
}

/// Whether `name` is a plain file name a backup may hold: no directory
/// part, not `.`/`..`, printable ASCII without spaces.
pub fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'\\')
}

impl Manifest {
    /// The manifest as text, one field per line.
    pub fn encode(&self) -> String {
        let mut out = format!(
            "vergent-backup {FORMAT}\nnode {}\nstore {:016x}\ncreated-unix-ms {}\n",
            self.node_id, self.store_id, self.created_unix_ms
        );
        for f in &self.files {
            let _ = writeln!(out, "file {} {} {}", hex(&f.sha256), f.size, f.name);
        }
        out
    }

    /// Reads a manifest written by [`Manifest::encode`].
    pub fn parse(text: &str) -> Result<Self, ManifestError> {
        let mut lines = text.lines().enumerate();
        match lines.next().map(|(_, l)| l.split_once(' ')) {
            Some(Some(("vergent-backup", v))) => match v.parse::<u32>() {
                Ok(FORMAT) => {}
                Ok(other) => return Err(ManifestError::Format(other)),
                Err(_) => return Err(ManifestError::NotAManifest),
            },
            _ => return Err(ManifestError::NotAManifest),
        }
        let (mut node, mut store, mut created) = (None, None, None);
        let mut files: Vec<BackupFile> = Vec::new();
        for (i, line) in lines {
            let bad = |reason: String| ManifestError::Line {
                line: i + 1,
                reason,
            };
            if line.is_empty() {
                continue;
            }
            let (field, rest) = line
                .split_once(' ')
                .ok_or_else(|| bad(format!("expected `FIELD VALUE`, got {line:?}")))?;
            match field {
                "node" => {
                    crate::NodeId::new(rest).map_err(|e| bad(format!("node id {rest:?}: {e}")))?;
                    node = Some(rest.to_string());
                }
                "store" => {
                    store = Some(
                        u64::from_str_radix(rest, 16)
                            .map_err(|_| bad(format!("store id {rest:?} is not hexadecimal")))?,
                    );
                }
                "created-unix-ms" => {
                    created = Some(
                        rest.parse()
                            .map_err(|_| bad(format!("{rest:?} is not a number")))?,
                    );
                }
                "file" => {
                    let mut parts = rest.splitn(3, ' ');
                    let (Some(sum), Some(size), Some(name)) =
                        (parts.next(), parts.next(), parts.next())
                    else {
                        return Err(bad("expected `file SHA256 SIZE NAME`".into()));
                    };
                    let sha256 =
                        unhex(sum).ok_or_else(|| bad(format!("{sum:?} is not a SHA-256")))?;
                    let size = size
                        .parse()
                        .map_err(|_| bad(format!("size {size:?} is not a number")))?;
                    if !is_plain_file_name(name) {
                        return Err(bad(format!("{name:?} is not a plain file name")));
                    }
                    if files.iter().any(|f| f.name == name) {
                        return Err(bad(format!("{name:?} is listed twice")));
                    }
                    files.push(BackupFile {
                        name: name.to_string(),
                        size,
                        sha256,
                    });
                }
                // Fields of a later minor revision are skipped, not refused.
                _ => {}
            }
        }
        Ok(Self {
            node_id: node.ok_or(ManifestError::Missing("node"))?,
            store_id: store.ok_or(ManifestError::Missing("store"))?,
            created_unix_ms: created.ok_or(ManifestError::Missing("created-unix-ms"))?,
            files,
        })
    }

    /// The total size of the files in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.size).sum()
    }
}

/// Lower-case hexadecimal, as `sha256sum` prints it.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            node_id: "n1".into(),
            store_id: 0xff,
            created_unix_ms: 1_765_152_000_000,
            files: vec![
                BackupFile {
                    name: "000012.sst".into(),
                    size: 4096,
                    sha256: [0xab; 32],
                },
                BackupFile {
                    name: "CURRENT".into(),
                    size: 16,
                    sha256: [0x01; 32],
                },
            ],
        }
    }

    #[test]
    fn a_manifest_reads_back_as_written() {
        let m = sample();
        let text = m.encode();
        assert!(text.starts_with("vergent-backup 1\nnode n1\nstore 00000000000000ff\n"));
        assert!(text.contains(&format!("file {} 4096 000012.sst\n", "ab".repeat(32))));
        assert_eq!(Manifest::parse(&text), Ok(m.clone()));
        assert_eq!(m.total_bytes(), 4112);
    }

    #[test]
    fn another_format_or_another_file_is_refused_by_name() {
        assert_eq!(
            Manifest::parse("vergent-backup 2\n"),
            Err(ManifestError::Format(2))
        );
        assert_eq!(
            Manifest::parse("PK\u{3}\u{4}…"),
            Err(ManifestError::NotAManifest)
        );
        assert_eq!(Manifest::parse(""), Err(ManifestError::NotAManifest));
    }

    #[test]
    fn bad_lines_are_named_with_their_number() {
        let text = sample()
            .encode()
            .replace("store 00000000000000ff", "store zz");
        let err = Manifest::parse(&text).expect_err("bad store");
        assert!(matches!(err, ManifestError::Line { line: 3, .. }), "{err}");
        let short = "vergent-backup 1\nnode a\nstore 1\ncreated-unix-ms 5\nfile abc 1 x\n";
        assert!(matches!(
            Manifest::parse(short),
            Err(ManifestError::Line { line: 5, .. })
        ));
        assert_eq!(
            Manifest::parse("vergent-backup 1\nnode a\nstore 1\n"),
            Err(ManifestError::Missing("created-unix-ms"))
        );
    }

    #[test]
    fn file_names_that_leave_the_directory_are_refused() {
        for name in ["../etc/passwd", "a/b", "..", ".", "a b", ""] {
            assert!(!is_plain_file_name(name), "{name:?}");
            let text = format!(
                "vergent-backup 1\nnode a\nstore 1\ncreated-unix-ms 5\nfile {} 1 {name}\n",
                "00".repeat(32)
            );
            assert!(Manifest::parse(&text).is_err(), "{name:?}");
        }
        assert!(is_plain_file_name("OPTIONS-000007"));
    }

    #[test]
    fn a_file_listed_twice_is_refused() {
        let mut m = sample();
        m.files.push(m.files[0].clone());
        assert!(matches!(
            Manifest::parse(&m.encode()),
            Err(ManifestError::Line { line: 7, .. })
        ));
    }
}
