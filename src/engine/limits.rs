//! Bounds on what other nodes may make this one hold. Each limit is far
//! above what an honest node sends, and low enough that a hostile peer
//! cannot grow the table without end.

use crate::wire::peer::{Announcement, Version};

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

/// Bytes of the address a neighbour is seen at (an IPv6 address with a
/// port is 47).
pub const MAX_SEEN_AS: usize = 64;

/// Bytes of a node's record (name, addresses, tags, texts), about: a
/// hundred tags and addresses fit; a megabyte of them does not.
pub const MAX_RECORD_BYTES: usize = 16 * 1024;

/// Bytes all announcements in the table may take, about (see
/// [`na_bytes`]): 65,536 honest nodes take about 30 MiB. Past it, new
/// nodes are not taken in, but for this node's own neighbours.
pub const MAX_TABLE_BYTES: usize = 64 * 1024 * 1024;

/// Nodes past [`MAX_NODES`] (or past [`MAX_TABLE_BYTES`]) the table still
/// takes when they are this node's own neighbours: a node the operator
/// joins by hand, or one that dials in, is never refused for a table full
/// of others. One per peer connection.
pub const NEIGHBOR_RESERVE: usize = 1024;

/// Unreachable nodes a full table may drop a second to make room for new
/// ones, and at once.
pub const EVICT_RATE: Rate = Rate {
    per_s: 100,
    burst: 1000,
};

/// Announcements one node may make, as this node takes them in: fifty at
/// once, then ten a second. An honest node announces when its links
/// change (debounced by 20 ms), and every half hour; a node changing
/// faster (a hub while its containers start) is seen at this pace, its
/// newest announcement held back at most 100 ms (see `engine::pace`), so
/// no state is lost, only smoothed. Back at full burst 5 s after a burst:
/// a hub that just formed its star takes in a join at once. (At 2 a
/// second, the hub's announcement of a join right after a star of 500
/// formed waited half a second everywhere: joins took 1.3 s, not 1.0.)
pub const NODE_NA_RATE: Rate = Rate {
    per_s: 10,
    burst: 50,
};

/// Announcements past [`NODE_NA_RATE`] one link may bring: a relay passes
/// on only what it took in at that pace, so an honest link brings next to
/// none; a peer re-announcing nodes as fast as it can brings thousands,
/// and is shed.
pub const EXCESS_RATE: Rate = Rate {
    per_s: 1000,
    burst: 10_000,
};

/// Nodes never seen before one link may bring: a whole table at once
/// (twice: a relay cannot pass on more new nodes than its own table
/// holds), then five hundred a second. A link past it is shed.
pub const NEW_NODE_RATE: Rate = Rate {
    per_s: 500,
    burst: 2 * MAX_NODES as u64,
};

/// How far ahead of this node's clock an incarnation may be, ms. An
/// incarnation is its node's clock at start, and clocks are off, by hours
/// or days (a VM resumed from suspend, a host without NTP): 30 days is
/// honest. Beyond it a version can only be forged, and it would outrank the
/// node's own record for a long time.
pub const MAX_FUTURE_MS: u64 = 30 * 24 * 3600 * 1000;

/// Announcements one incarnation may make: 2^40, 35 years at a thousand a
/// second. A higher `seq` can only be forged.
pub const MAX_SEQ: u64 = 1 << 40;

/// How long a tombstone of a forgotten node lasts, ms: long enough for the
/// forget to reach every node that was down or cut off, short enough that
/// one forged forget is not for ever (Serf reaps after 24 h too).
pub const TOMBSTONE_MS: u64 = 24 * 3600 * 1000;

/// Bytes of one part of a long answer (a `list` of a big table): answers
/// travel in parts of about this size, each far below the frame limit.
pub const ANSWER_PART: usize = 256 * 1024;

/// Bytes of answers one request may gather: `all list` in a network of a
/// few hundred nodes, or one `list` of a table of 65,536 nodes, several
/// times over. Answers past it are noted, not kept.
pub const MAX_ANSWER_BYTES: usize = 128 * 1024 * 1024;

/// Commands a link may bring per second, and in a burst. Every `all`
/// command of every node crosses every link once, and a script pinging a
/// node in a loop sends a few hundred a second: a thousand is that with
/// room, and far below what costs a node its CPU. Past it they are
/// dropped (the log says so), never run.
pub const CMD_RATE: Rate = Rate {
    per_s: 1000,
    burst: 5000,
};

/// Bytes of answers this node gives per second, and in a burst, to the
/// commands that arrive over one link: a `list` of 65,536 nodes a few
/// times over, then one every few seconds. A peer asking for more gets an
/// error answer, not a flood of tables.
pub const ANSWER_RATE: Rate = Rate {
    per_s: 8 * 1024 * 1024,
    burst: 96 * 1024 * 1024,
};

/// A rate limit: so many a second, with a burst.
#[derive(Copy, Clone, Debug)]
pub struct Rate {
    /// Sustained, per second.
    pub per_s: u64,
    /// At once, after a quiet spell.
    pub burst: u64,
}

/// A token bucket for a [`Rate`], on the engine's monotonic clock.
#[derive(Clone, Debug, Default)]
pub struct Bucket {
    /// Tokens left, in thousandths.
    milli: u64,
    /// When it was last filled, ms.
    at_ms: u64,
    /// It was ever used (a new bucket starts full).
    used: bool,
    /// How much was refused since the last [`Bucket::refused`] call.
    refused: u64,
}

impl Bucket {
    /// Takes `n` tokens at `now_ms` if there are that many; says whether it
    /// did.
    pub fn take(&mut self, rate: Rate, now_ms: u64, n: u64) -> bool {
        let cap = rate.burst.saturating_mul(1000);
        if !self.used {
            self.used = true;
            self.milli = cap;
        } else {
            let gained = now_ms.saturating_sub(self.at_ms).saturating_mul(rate.per_s);
            self.milli = self.milli.saturating_add(gained).min(cap);
        }
        self.at_ms = now_ms;
        let want = n.saturating_mul(1000);
        if self.milli >= want {
            self.milli -= want;
            true
        } else {
            self.refused = self.refused.saturating_add(n);
            false
        }
    }

    /// How much was refused since the last call, and starts counting anew.
    pub fn refused(&mut self) -> u64 {
        std::mem::take(&mut self.refused)
    }
}

/// Whether a version from the network can be honest at wall clock `now_ms`.
pub fn plausible(v: Version, now_ms: u64) -> Result<(), String> {
    if v.inc > now_ms.saturating_add(MAX_FUTURE_MS) {
        return Err(format!(
            "an incarnation {} days ahead of this clock",
            (v.inc - now_ms) / 86_400_000
        ));
    }
    if v.seq > MAX_SEQ {
        return Err(format!("a sequence number of {} (limit 2^40)", v.seq));
    }
    Ok(())
}

/// The version after `v`, for a node's own next announcement: the next
/// `seq`, or the next incarnation once `seq` is at its limit. Never wraps.
pub fn next(v: Version) -> Version {
    if v.seq < MAX_SEQ {
        Version {
            inc: v.inc,
            seq: v.seq + 1,
        }
    } else {
        Version {
            inc: v.inc.saturating_add(1),
            seq: 0,
        }
    }
}

/// Bytes of a node's record, about: its texts, addresses and tags.
pub fn record_bytes(na: &Announcement) -> usize {
    record_len(&na.record)
}

/// Bytes of a record, about (see [`record_bytes`]).
pub fn record_len(r: &crate::wire::peer::NodeRecord) -> usize {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
    r.name.len()
        + opt(&r.internal_ip)
        + opt(&r.public_ip)
        + r.addrs.iter().map(|a| a.len() + 8).sum::<usize>()
        + r.tags
            .iter()
            .map(|(k, v)| k.len() + v.len() + 8)
            .sum::<usize>()
        + r.kind.len()
        + r.version.len()
        + r.os.len()
}

/// Bytes an announcement takes in memory, about: its record and links,
/// and the bookkeeping around them.
pub fn na_bytes(na: &Announcement) -> usize {
    let links: usize = na
        .neighbors
        .iter()
        .map(|n| 48 + n.seen_as.as_ref().map_or(0, String::len))
        .sum();
    256 + record_bytes(na) + links
}

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
    if let Some(n) = na
        .neighbors
        .iter()
        .filter_map(|n| n.seen_as.as_ref())
        .find(|s| s.len() > MAX_SEEN_AS)
    {
        return Err(format!(
            "a neighbour seen at an address of {} bytes (limit {MAX_SEEN_AS})",
            n.len()
        ));
    }
    let bytes = record_bytes(na);
    if bytes > MAX_RECORD_BYTES {
        return Err(format!(
            "a record of {bytes} bytes (limit {MAX_RECORD_BYTES})"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let rate = Rate {
            per_s: 10,
            burst: 5,
        };
        let mut b = Bucket::default();
        assert!((0..5).all(|_| b.take(rate, 1000, 1)));
        assert!(!b.take(rate, 1000, 1));
        assert!(!b.take(rate, 1099, 1), "a tenth of a second is one token");
        assert!(b.take(rate, 1100, 1));
        assert!(
            b.take(rate, u64::MAX, 5),
            "no overflow, and capped at the burst"
        );
        assert!(!b.take(rate, u64::MAX, 1));
        assert_eq!(b.refused(), 3);
        assert_eq!(b.refused(), 0);
        assert!(!b.take(rate, 0, u64::MAX));
    }
}
