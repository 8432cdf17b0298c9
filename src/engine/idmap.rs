//! Hash maps keyed by [`NodeId`].
//!
//! Ids are random 128-bit numbers, and the routing recompute is mostly map
//! lookups by id: SipHash was a fifth of the simulation's time. A keyed
//! folded multiply spreads random ids as well at a fraction of the cost.
//! The key is per engine ([`super::Config::hash_key`], from the daemon's
//! randomness), so a peer cannot simply choose ids that collide (as with
//! foldhash, this is resistance, not a proof; [`super::limits::MAX_NODES`]
//! bounds the rest). The simulation leaves the key at zero and stays
//! deterministic.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};

use crate::wire::peer::NodeId;

/// A map keyed by node id.
pub type IdMap<V> = HashMap<NodeId, V, IdBuild>;

/// Builds [`IdHasher`]s with a key; the default key is 0.
#[derive(Clone, Copy, Debug, Default)]
pub struct IdBuild(u64);

impl IdBuild {
    /// Hashers keyed by `key`.
    pub fn new(key: u64) -> IdBuild {
        IdBuild(key)
    }
}

/// An empty map whose hashes are keyed by `key`.
pub fn new_map<V>(key: u64) -> IdMap<V> {
    IdMap::with_hasher(IdBuild(key))
}

impl BuildHasher for IdBuild {
    type Hasher = IdHasher;
    fn build_hasher(&self) -> IdHasher {
        IdHasher(self.0 ^ 0x243f_6a88_85a3_08d3)
    }
}

/// Folded-multiply hasher; fast for the `u128` a [`NodeId`] hashes as.
#[derive(Clone, Copy, Debug)]
pub struct IdHasher(u64);

const K: u64 = 0x9e37_79b9_7f4a_7c15;

/// The high and low halves of a 128-bit product, xored.
pub(crate) fn fold(a: u64, b: u64) -> u64 {
    let m = (a as u128).wrapping_mul(b as u128);
    (m as u64) ^ ((m >> 64) as u64)
}

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        fold(self.0, K)
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut b = [0u8; 8];
            b[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = fold(self.0 ^ n, K);
    }

    fn write_u128(&mut self, n: u128) {
        self.write_u64(n as u64);
        self.write_u64((n >> 64) as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn spreads_ids_and_keys_change_it() {
        let h = |b: IdBuild, n: u128| b.hash_one(NodeId(n));
        let b = IdBuild(0);
        let mut low: HashSet<u64> = HashSet::new();
        for n in 0..4096u128 {
            // Sequential ids, the worst case for a weak hash: the low 12
            // bits (bucket index in a small table) must still spread.
            low.insert(h(b, n << 64) & 0xfff);
        }
        assert!(low.len() > 2000, "only {} of 4096 buckets hit", low.len());
        assert_ne!(h(IdBuild(1), 7), h(IdBuild(2), 7));
        assert_eq!(h(b, 7), h(b, 7));
    }
}
