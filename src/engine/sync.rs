//! Digest sync on link up: each side lists the versions it holds, and the
//! other sends what the list lacks or holds older (and the forgets the
//! peer missed). A deadend sends only its own announcement.

use std::collections::HashSet;
use std::sync::Arc;

use super::{Action, Engine, LinkId};
use crate::wire::peer::{NodeId, PeerMsg, Version};

/// Entries per digest frame: keeps each frame far below the frame limit.
pub const DIGEST_CHUNK: usize = 2000;

impl Engine {
    /// Sends the whole table's `(id, version)` on `link`, in frames of
    /// [`DIGEST_CHUNK`], the last marked done.
    pub(super) fn send_digest(&mut self, link: LinkId) {
        let mut entries: Vec<(NodeId, Version)> = self
            .table
            .iter()
            .map(|(id, e)| (*id, e.na.version))
            .collect();
        entries.sort();
        let chunks: Vec<Vec<(NodeId, Version)>> =
            entries.chunks(DIGEST_CHUNK).map(|c| c.to_vec()).collect();
        let n = chunks.len();
        for (i, entries) in chunks.into_iter().enumerate() {
            self.actions.push(Action::Send {
                link,
                msg: PeerMsg::Digest {
                    entries,
                    done: i + 1 == n,
                },
            });
        }
    }

    /// The peer's digest: send what it lacks or holds older. A deadend sends
    /// only its own announcement: it relays nothing.
    pub(super) fn on_digest(&mut self, link: LinkId, entries: Vec<(NodeId, Version)>, done: bool) {
        let deadend = self.cfg.deadend;
        let mut send = Vec::new();
        // Nodes forgotten here that the peer still holds (it was down or
        // cut off when the forget went round): tell it, or they come back.
        let stale: Vec<(NodeId, Version)> = entries
            .iter()
            .filter_map(|(id, v)| {
                let t = self.forgotten.get(id)?;
                (*t >= *v).then_some((*id, *t))
            })
            .collect();
        for (id, version) in stale {
            self.actions.push(Action::Send {
                link,
                msg: PeerMsg::Forget { id, version },
            });
        }
        for (id, v) in &entries {
            if deadend && *id != self.me {
                continue;
            }
            if let Some(e) = self.table.get(id) {
                if e.na.version > *v {
                    send.push(*id);
                }
            }
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        let seen = l.digest_seen.get_or_insert_with(HashSet::new);
        seen.extend(entries.iter().map(|(id, _)| *id));
        if done {
            let seen = l.digest_seen.take().unwrap_or_default();
            send.extend(
                self.table
                    .iter()
                    .map(|(id, _)| *id)
                    .filter(|id| !seen.contains(id) && (!deadend || *id == self.me)),
            );
        }
        send.sort();
        send.dedup();
        // Not a neighbour's announcement as its Hello gave it: a node
        // announces anew as soon as a link comes up, so that version is
        // superseded within the debounce. Passed on, it went round the
        // whole network ahead of the next (half of all frames as a network
        // formed).
        let mut hello: Vec<(NodeId, Version)> = self
            .links
            .values()
            .filter(|l| l.active)
            .filter_map(|l| Some((l.peer?, l.hello_version?)))
            .collect();
        hello.sort_unstable();
        send.retain(|id| {
            let v = self.table.version(id);
            v.is_none_or(|v| hello.binary_search(&(*id, v)).is_err())
        });
        for id in send {
            if let Some(e) = self.table.get(&id) {
                self.actions.push(Action::Send {
                    link,
                    msg: PeerMsg::Na(Arc::clone(&e.na)),
                });
            }
        }
    }
}
