//! Test-only: inputs for the decoders of peer messages, seeded. Random
//! bytes, and valid encodings with bytes flipped, cut, dropped or inserted
//! (most random bytes are not protobuf at all, so mutations of valid
//! messages are what reach the conversions' deeper checks).

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// `count` inputs from `seed`: a third random bytes, the rest mutations of
/// one of `valid`.
pub(crate) fn inputs(seed: u64, valid: &[Vec<u8>], count: usize) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..count)
        .map(|i| {
            if valid.is_empty() || i % 3 == 0 {
                let len = rng.random_range(0..256);
                return (0..len).map(|_| rng.random()).collect();
            }
            let mut bytes = valid[rng.random_range(0..valid.len())].clone();
            for _ in 0..rng.random_range(1..4) {
                let at = rng.random_range(0..=bytes.len());
                match rng.random_range(0..4) {
                    0 if at < bytes.len() => bytes[at] ^= 1 << rng.random_range(0..8),
                    1 => bytes.truncate(at),
                    2 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, rng.random()),
                }
            }
            bytes
        })
        .collect()
}
