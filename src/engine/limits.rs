//! Bounds on what other nodes may make this one hold. Each limit is far
//! above what an honest node sends, and low enough that a hostile peer
//! cannot grow the table without end.

use crate::wire::peer::Announcement;

/// Nodes in the table. Thousands of nodes per network are the design
/// target; 65,536 leaves room for ten times that.
pub const MAX_NODES: usize = 65_536;

/// Bytes of a node name (a DNS name's limit).
pub const MAX_NAME: usize = 253;

/// Tags per node.
pub const MAX_TAGS: usize = 64;

/// Bytes of a tag's key or value.
pub const MAX_TAG_LEN: usize = 256;

/// Addresses a node may list (interfaces, seen-as).
pub const MAX_ADDRS: usize = 256;

/// Links a node may announce.
pub const MAX_NEIGHBORS: usize = 4096;

/// Bytes of any other text field (kind, version, OS, an address).
pub const MAX_TEXT: usize = 256;

/// Checks an announcement against the bounds; says which one it breaks.
pub fn check(na: &Announcement) -> Result<(), String> {
    let r = &na.record;
    if r.name.is_empty() || r.name.len() > MAX_NAME {
        return Err(format!("name of {} bytes (limit {MAX_NAME})", r.name.len()));
    }
    if r.tags.len() > MAX_TAGS {
        return Err(format!("{} tags (limit {MAX_TAGS})", r.tags.len()));
    }
    if r.tags
        .iter()
        .any(|(k, v)| k.len() > MAX_TAG_LEN || v.len() > MAX_TAG_LEN)
    {
        return Err(format!("a tag longer than {MAX_TAG_LEN} bytes"));
    }
    if r.addrs.len() > MAX_ADDRS {
        return Err(format!("{} addresses (limit {MAX_ADDRS})", r.addrs.len()));
    }
    if na.neighbors.len() > MAX_NEIGHBORS {
        return Err(format!(
            "{} neighbours (limit {MAX_NEIGHBORS})",
            na.neighbors.len()
        ));
    }
    let texts = [&r.kind, &r.version, &r.os]
        .into_iter()
        .chain(r.internal_ip.iter())
        .chain(r.public_ip.iter())
        .chain(r.addrs.iter())
        .chain(na.neighbors.iter().filter_map(|n| n.seen_as.as_ref()));
    for t in texts {
        if t.len() > MAX_TEXT {
            return Err(format!("a field of {} bytes (limit {MAX_TEXT})", t.len()));
        }
    }
    Ok(())
}
