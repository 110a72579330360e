//! API keys: the channel file holds only `sha256:<hex>` hashes, never a key itself, so a leaked
//! channel file (or Git history) does not leak a credential. A presented key is hashed and
//! compared with every configured hash in constant time (no early exit), so the response time
//! says nothing about how close a guess was.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// The prefix of a stored key hash.
pub const HASH_PREFIX: &str = "sha256:";

/// `sha256:<64 hex digits>` for a key (what `medway api-key hash KEY` prints).
pub fn hash_api_key(key: &str) -> String {
    let digest = Sha256::digest(key.as_bytes());
    let mut out = String::with_capacity(HASH_PREFIX.len() + 64);
    out.push_str(HASH_PREFIX);
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

/// Parses `sha256:<64 hex digits>` (hex in either case).
pub fn parse_key_hash(text: &str) -> Option<[u8; 32]> {
    let hex = text.strip_prefix(HASH_PREFIX)?;
    // Hex digits only: `from_str_radix` alone would also take a leading `+`.
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, slot) in out.iter_mut().enumerate() {
        *slot = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// The accepted keys of one listener, as SHA-256 hashes.
#[derive(Debug, Clone, Default)]
pub struct ApiKeys {
    hashes: Vec<[u8; 32]>,
}

impl ApiKeys {
    pub fn new(hashes: Vec<[u8; 32]>) -> Self {
        Self { hashes }
    }

    /// No keys configured: the listener is open (rely on mTLS or the network).
    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hash of `presented` when it is one of the configured keys. Every configured hash is
    /// compared, whatever matched first.
    pub fn verify(&self, presented: &str) -> Option<[u8; 32]> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        let mut found = subtle::Choice::from(0);
        for hash in &self.hashes {
            found |= hash.ct_eq(&digest);
        }
        bool::from(found).then_some(digest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_round_trips_and_verifies() {
        let hash = hash_api_key("s3cret");
        assert!(
            hash.starts_with("sha256:") && hash.len() == 7 + 64,
            "{hash}"
        );
        let parsed = parse_key_hash(&hash).expect("parses");
        let keys = ApiKeys::new(vec![[7u8; 32], parsed]);
        assert_eq!(keys.verify("s3cret"), Some(parsed));
        assert_eq!(keys.verify("s3cret "), None);
        assert_eq!(keys.verify(""), None);
    }

    #[test]
    fn known_vector() {
        // sha256("abc")
        assert_eq!(
            hash_api_key("abc"),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn malformed_hashes_are_refused() {
        assert!(parse_key_hash("ba7816bf").is_none());
        assert!(parse_key_hash("sha256:zz").is_none());
        assert!(parse_key_hash(&format!("sha256:{}", "g".repeat(64))).is_none());
        assert!(parse_key_hash(&format!("sha256:{}", "é".repeat(32))).is_none());
        assert!(parse_key_hash(&format!("sha256:{}", "AB".repeat(32))).is_some());
    }
}
