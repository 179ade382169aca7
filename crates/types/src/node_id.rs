//! Node identity: a short, stable, human-readable name.

use std::fmt;
use std::str::FromStr;

/// Longest node id accepted, in bytes.
pub const MAX_NODE_ID_LEN: usize = 64;

/// A node's stable identity, part of every version it stamps.
///
/// Ids are compared byte-wise; that order breaks HLC ties between versions, so
/// it must be the same on every node and never depend on locale or hashing.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(String);

/// Why a string is not a valid node id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeIdError {
    /// The id is empty.
    #[error("node id must not be empty")]
    Empty,
    /// The id is longer than [`MAX_NODE_ID_LEN`] bytes.
    #[error("node id is {0} bytes long; at most {MAX_NODE_ID_LEN} are allowed")]
    TooLong(usize),
    /// The id holds a character outside `[A-Za-z0-9._-]`.
    #[error("node id {0:?} may only contain letters, digits, '.', '_' and '-'")]
    BadChar(String),
}

impl NodeId {
    /// Validates and wraps a node id.
    pub fn new(id: impl Into<String>) -> Result<Self, NodeIdError> {
        let id = id.into();
        if id.is_empty() {
            return Err(NodeIdError::Empty);
        }
        if id.len() > MAX_NODE_ID_LEN {
            return Err(NodeIdError::TooLong(id.len()));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(NodeIdError::BadChar(id));
        }
        Ok(Self(id))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for NodeId {
    type Err = NodeIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NodeId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_and_rejects_empty_long_or_odd_ids() {
        assert!(NodeId::new("node-1").is_ok());
        assert!(NodeId::new("n.a_b-9").is_ok());
        assert_eq!(NodeId::new(""), Err(NodeIdError::Empty));
        assert_eq!(NodeId::new("x".repeat(65)), Err(NodeIdError::TooLong(65)));
        assert!(matches!(NodeId::new("a b"), Err(NodeIdError::BadChar(_))));
        assert!(matches!(NodeId::new("é"), Err(NodeIdError::BadChar(_))));
    }
}
