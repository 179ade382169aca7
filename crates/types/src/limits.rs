//! Size limits on keys and values, checked before anything is written.

/// Size limits for client requests; oversized input is rejected, never truncated.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest key accepted, in bytes.
    pub max_key_bytes: usize,
    /// Largest value accepted, in bytes.
    pub max_value_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_key_bytes: 4 * 1024,
            max_value_bytes: 1024 * 1024,
        }
    }
}

/// Why a key or value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LimitError {
    /// Keys must hold at least one byte.
    #[error("key must not be empty")]
    EmptyKey,
    /// The key exceeds [`Limits::max_key_bytes`].
    #[error("key is {len} bytes; the limit is {max} bytes")]
    KeyTooLarge {
        /// Size of the refused key.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// The value exceeds [`Limits::max_value_bytes`].
    #[error("value is {len} bytes; the limit is {max} bytes")]
    ValueTooLarge {
        /// Size of the refused value.
        len: usize,
        /// The configured limit.
        max: usize,
    },
}

impl Limits {
    /// Checks a key.
    pub fn check_key(&self, key: &[u8]) -> Result<(), LimitError> {
        if key.is_empty() {
            return Err(LimitError::EmptyKey);
        }
        if key.len() > self.max_key_bytes {
            return Err(LimitError::KeyTooLarge {
                len: key.len(),
                max: self.max_key_bytes,
            });
        }
        Ok(())
    }

    /// Checks a value.
    pub fn check_value(&self, value: &[u8]) -> Result<(), LimitError> {
        if value.len() > self.max_value_bytes {
            return Err(LimitError::ValueTooLarge {
                len: value.len(),
                max: self.max_value_bytes,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_oversized_input_is_refused_and_the_limit_itself_is_allowed() {
        let l = Limits {
            max_key_bytes: 4,
            max_value_bytes: 8,
        };
        assert_eq!(l.check_key(b""), Err(LimitError::EmptyKey));
        assert!(l.check_key(b"abcd").is_ok());
        assert_eq!(
            l.check_key(b"abcde"),
            Err(LimitError::KeyTooLarge { len: 5, max: 4 })
        );
        assert!(l.check_value(b"").is_ok());
        assert!(l.check_value(&[0; 8]).is_ok());
        assert_eq!(
            l.check_value(&[0; 9]),
            Err(LimitError::ValueTooLarge { len: 9, max: 8 })
        );
    }
}
