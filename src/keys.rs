//! Cluster keys as people handle them: the key file (one base64 key of 32
//! bytes per line, the first initiates, all are accepted), fingerprints
//! that name a key without giving it away, and new random keys. The
//! daemon's Noise sessions (`daemon::secure`) use them; `daust keygen`
//! makes them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

/// Keys a key file may hold: enough for any rotation.
pub const MAX_KEYS: usize = 16;

/// The cluster keys: the first initiates, all are accepted.
#[derive(Clone)]
pub struct Keys(Vec<[u8; 32]>);

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keys({:?})", self.fingerprints())
    }
}

impl Keys {
    /// Parses a key file: one base64 key of 32 bytes per line; blank lines
    /// and `#` comments are skipped.
    pub fn parse(text: &str) -> Result<Keys, String> {
        let mut keys = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bytes = STANDARD
                .decode(line)
                .map_err(|_| format!("line {}: not base64", n + 1))?;
            let key: [u8; 32] = bytes
                .try_into()
                .map_err(|b: Vec<u8>| format!("line {}: {} bytes, want 32", n + 1, b.len()))?;
            keys.push(key);
        }
        if keys.is_empty() {
            return Err("no key in it (make one with: daust keygen)".into());
        }
        if keys.len() > MAX_KEYS {
            return Err(format!("{} keys, at most {MAX_KEYS}", keys.len()));
        }
        Ok(Keys(keys))
    }

    /// The key that initiates links.
    pub fn first(&self) -> &[u8; 32] {
        // `parse` refuses a file without a key.
        &self.0[0]
    }

    /// Every key, the initiating one first: each is accepted.
    pub fn all(&self) -> &[[u8; 32]] {
        &self.0
    }

    /// Short, non-secret names of the keys, in order: the first 8 bytes of
    /// their SHA-256, in hex.
    pub fn fingerprints(&self) -> Vec<String> {
        use sha2::{Digest, Sha256};
        self.0
            .iter()
            .map(|k| {
                Sha256::digest(k)
                    .iter()
                    .take(8)
                    .map(|b| format!("{b:02x}"))
                    .collect()
            })
            .collect()
    }
}

/// A new random key, base64.
pub fn keygen() -> String {
    let a = crate::sys::random_u128().to_le_bytes();
    let b = crate::sys::random_u128().to_le_bytes();
    let mut k = a.to_vec();
    k.extend_from_slice(&b);
    STANDARD.encode(k)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_files() {
        let k = keygen();
        assert_eq!(STANDARD.decode(&k).map(|b| b.len()), Ok(32));
        let two = format!("# rotation\n{k}\n\n{}  # new\n", keygen());
        let keys = Keys::parse(&two).unwrap();
        assert_eq!(keys.all().len(), 2);
        assert_eq!(keys.fingerprints()[0].len(), 16);
        assert!(Keys::parse("").is_err());
        assert!(Keys::parse("not base64!")
            .unwrap_err()
            .contains("not base64"));
        assert!(Keys::parse("c2hvcnQ=").unwrap_err().contains("want 32"));
    }
}
