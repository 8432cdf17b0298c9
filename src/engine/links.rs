//! Links: handshakes, duplicate links, heartbeats and RTT, and timeouts.
//! Dialling and redialling are in [`super::dials`], the digest sync on
//! link up in [`super::sync`].
//!
//! Why this file is long: a link's life (handshake, dedup, heartbeats, the
//! lossy-path rule, close) is one state machine over one struct; its
//! timers and its frames need each other's fields.

use std::collections::HashSet;
use std::sync::Arc;

use super::dials::DialState;
use super::limits;
use super::{Action, Config, Engine, LinkId, Now};
use crate::wire::peer::{Hello, NodeId, PeerMsg, Version, MINOR_DELTAS, PROTO_MAJOR};
use crate::wire::FrameError;

/// Links' heartbeat timers are served on multiples of this, ms: late by
/// at most this against a heartbeat of a second.
const LINK_GRAIN_MS: u64 = 20;

/// Where a connection came from, as the daemon reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinkInfo {
    /// The address this side dialled, if it dialled.
    pub dialled: Option<String>,
    /// The other end's address (ip:port) as seen on the socket.
    pub remote: String,
}

/// One TCP connection as the engine sees it.
#[derive(Debug)]
pub struct Link {
    /// The address this side dialled, if it did.
    pub dialled: Option<String>,
    /// The other end's socket address.
    pub remote: String,
    /// The node at the other end, once its Hello arrived.
    pub peer: Option<NodeId>,
    /// The peer's name, once known.
    pub peer_name: String,
    /// Established and not a duplicate: counts as a neighbour.
    pub active: bool,
    /// When the link came up, ms.
    pub opened_ms: u64,
    /// Last frame received, ms.
    pub last_rx_ms: u64,
    /// Heartbeat interval silence is judged by: this node's own, ms.
    pub hb_ms: u64,
    /// Next ping due (dialling side only), ms.
    pub next_ping_ms: Option<u64>,
    /// Sequence number of the ping in flight and when it left, µs.
    pub ping_out: Option<(u32, u64)>,
    /// Last ping sequence number used.
    pub ping_seq: u32,
    /// Latest round-trip time, µs.
    pub rtt_us: Option<u32>,
    /// The round-trip time our announcements give for this link, µs
    /// (see [`Engine::announced_rtts`]).
    pub announced_rtt: Option<u32>,
    /// The address the peer sees us at.
    pub seen_as: Option<String>,
    /// Ids the peer listed in its digest so far (during sync only).
    pub digest_seen: Option<HashSet<NodeId>>,
    /// Last time the transport showed the peer sending although no frame
    /// completed (see [`Engine::packets_arrive`]), ms.
    pub packets_ms: u64,
    /// The current silence was logged as a lossy path.
    pub lossy_logged: bool,
    /// Last probe sent by the side that does not ping, ms (see
    /// [`Link::probe_due`]).
    pub probe_ms: u64,
    /// Commands it brought (see [`limits::CMD_RATE`]).
    pub cmds: limits::Bucket,
    /// When dropped commands may be logged again, ms.
    pub cmds_warned_ms: u64,
    /// Bytes of answers given to its commands (see [`limits::ANSWER_RATE`]).
    pub answers: limits::Bucket,
    /// Announcements it brought past their node's pace (see
    /// [`limits::EXCESS_RATE`]).
    pub excess: limits::Bucket,
    /// New nodes it brought (see [`limits::NEW_NODE_RATE`]).
    pub new_nodes: limits::Bucket,
    /// The peer takes announcements as changes (both ends speak minor
    /// [`MINOR_DELTAS`] or later).
    pub deltas: bool,
    /// The version of the peer's announcement its Hello carried: one it
    /// supersedes as soon as it announces this link (see `sync`).
    pub hello_version: Option<Version>,
}

/// A link silent for this many heartbeats is dead, unless its peer is
/// visibly still sending (a lossy path), which buys it up to
/// [`LOSSY_HEARTBEATS`].
pub const DEAD_HEARTBEATS: u64 = 3;
/// The longest silence a link survives while its peer's packets still
/// arrive out of order: TCP retransmitting one segment lost four times in a
/// row (0.2% at 20% loss) stalls about 6 s; a path worse than this is as
/// good as down.
pub const LOSSY_HEARTBEATS: u64 = 10;

impl Link {
    /// How far the live RTT has drifted from the one announced, in
    /// thousandths of it, if by more than a quarter and 100 µs; a first
    /// measurement most of all.
    pub fn rtt_drift(&self) -> Option<u64> {
        let r = self.rtt_us?;
        let Some(a) = self.announced_rtt else {
            return Some(u64::MAX);
        };
        let d = r.abs_diff(a);
        (d > (a / 4).max(100)).then(|| u64::from(d) * 1000 / u64::from(a.max(1)))
    }

    /// When the link is dead if nothing more arrives, ms.
    pub fn dead_at(&self) -> u64 {
        let normal = self.last_rx_ms + DEAD_HEARTBEATS * self.hb_ms;
        if self.packets_ms > self.last_rx_ms {
            let lossy = self.last_rx_ms + LOSSY_HEARTBEATS * self.hb_ms;
            (self.packets_ms + DEAD_HEARTBEATS * self.hb_ms).clamp(normal, lossy)
        } else {
            normal
        }
    }

    /// The side that does not ping (the one that accepted) answers pings
    /// only; while it hears nothing for 1.5 heartbeats it pings too, once
    /// per heartbeat, so a stall in one direction cannot silence the other
    /// (the stalled side would see nothing stir and call the link dead).
    pub fn probe_due(&self) -> Option<u64> {
        if self.next_ping_ms.is_some() || self.peer.is_none() {
            return None;
        }
        // Half a heartbeat of slack: the peer's next ping is due about a
        // heartbeat after its last, so on a healthy link this never fires.
        Some((self.last_rx_ms + self.hb_ms * 3 / 2).max(self.probe_ms + self.hb_ms))
    }

    /// The earliest time this link needs attention, ms.
    pub fn next_deadline(&self, cfg: &Config) -> u64 {
        if self.peer.is_none() {
            return self.opened_ms + cfg.handshake_timeout_ms();
        }
        let dead = self.dead_at();
        let dead = self.probe_due().map_or(dead, |p| p.min(dead));
        self.next_ping_ms.map_or(dead, |p| p.min(dead))
    }
}

impl Engine {
    /// When the links' timers need the engine next, ms.
    pub(super) fn links_wake(&self) -> u64 {
        // Looked up again only after something that may bring a link's
        // deadline forward: a hub of a thousand links looked at all of
        // them after every ping it answered (a fifth of its time).
        let links = self.links_due.get().unwrap_or_else(|| {
            let due = self.links_next();
            self.links_due.set(Some(due));
            due
        });
        debug_assert!(
            links <= self.links_next(),
            "a link's deadline came forward unseen"
        );
        // Links' timers are served together, on a grain: each tick looks
        // at every link, and a hub of a thousand, woken at each link's own
        // moment, ticked ~2,000 times a second (half a core at rest).
        links.div_ceil(LINK_GRAIN_MS).saturating_mul(LINK_GRAIN_MS)
    }

    /// The earliest of the links' deadlines, ms (`u64::MAX` with none).
    pub(super) fn links_next(&self) -> u64 {
        self.links
            .values()
            .map(|l| l.next_deadline(&self.cfg))
            .min()
            .unwrap_or(u64::MAX)
    }

    /// A TCP connection is open (dialled by us if `info.dialled` is set).
    pub fn link_up(&mut self, now: Now, link: LinkId, info: LinkInfo) {
        self.enter(now);
        let ms = now.ms();
        if let Some(addr) = &info.dialled {
            if let Some(d) = self.dials.get_mut(addr) {
                d.state = DialState::Up(link);
            }
        }
        self.links.insert(
            link,
            Link {
                dialled: info.dialled,
                remote: info.remote.clone(),
                peer: None,
                peer_name: String::new(),
                active: false,
                opened_ms: ms,
                last_rx_ms: ms,
                hb_ms: self.cfg.heartbeat_ms(),
                next_ping_ms: None,
                ping_out: None,
                ping_seq: 0,
                rtt_us: None,
                announced_rtt: None,
                seen_as: None,
                digest_seen: None,
                packets_ms: 0,
                lossy_logged: false,
                probe_ms: 0,
                cmds: limits::Bucket::default(),
                cmds_warned_ms: 0,
                answers: limits::Bucket::default(),
                excess: limits::Bucket::default(),
                new_nodes: limits::Bucket::default(),
                deltas: false,
                hello_version: None,
            },
        );
        let hello = Hello {
            proto: PROTO_MAJOR,
            minor: self.cfg.minor,
            id: self.me,
            hb_ms: self.cfg.heartbeat_ms(),
            // The version last announced as it was announced, not as it
            // would be now: one version has one content everywhere, or a
            // change made from it would not apply the same everywhere.
            na: self
                .table
                .get(&self.me)
                .map_or_else(|| self.own_na(), |e| e.na.as_ref().clone()),
            seen_as: super::table::split_addr(&info.remote).0.to_string(),
        };
        self.actions.push(Action::Send {
            link,
            msg: PeerMsg::Hello(Box::new(hello)),
        });
    }

    /// The transport shows the peer on `link` still sending although no
    /// frame completed since the last one: its packets arrive out of order
    /// behind a lost one (the daemon reads this off the TCP socket). Such
    /// a link is lossy, not dead: it gets up to [`LOSSY_HEARTBEATS`]
    /// before it is closed. A frozen or unplugged peer sends nothing, so
    /// this never delays noticing those. The daemon says the same of a
    /// link whose frames wait in its input queue: the peer is sending,
    /// this daemon is behind.
    pub fn packets_arrive(&mut self, now: Now, link: LinkId) {
        self.enter(now);
        if let Some(l) = self.links.get_mut(&link) {
            l.packets_ms = now.ms();
        }
    }

    /// A connection closed (EOF, error, or after we asked to close it).
    pub fn link_down(&mut self, now: Now, link: LinkId, reason: &str) {
        self.enter(now);
        self.drop_link(link, reason);
    }

    /// Bytes on `link` could not be decoded: close it, naming the peer.
    pub fn bad_frame(&mut self, now: Now, link: LinkId, err: &FrameError) {
        self.enter(now);
        self.close(link, &format!("bad frame: {err}"));
    }

    /// A frame arrived on `link`.
    pub fn frame(&mut self, now: Now, link: LinkId, msg: PeerMsg) {
        let due = self.links_due.get();
        self.enter(now);
        let ms = now.ms();
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if l.lossy_logged {
            l.lossy_logged = false;
            tracing::info!(peer = %format!("{} ({})", l.peer_name, l.remote), "link: frames arrive again after {} ms", ms.saturating_sub(l.last_rx_ms));
        }
        l.last_rx_ms = ms;
        let established = l.peer.is_some();
        match msg {
            PeerMsg::Hello(h) if !established => self.on_hello(link, *h),
            PeerMsg::Refuse { reason } => {
                let reason = format!("refused by peer: {reason}");
                tracing::warn!(peer = %self.describe(link), "{reason}");
                self.close(link, &reason);
            }
            _ if !established => self.close(link, "protocol error: expected hello first"),
            PeerMsg::Hello(_) => self.close(link, "protocol error: second hello"),
            PeerMsg::Ping { s, r } => {
                if let Some(l) = self.links.get_mut(&link) {
                    if r.is_some() {
                        l.rtt_us = r;
                    }
                }
                self.actions.push(Action::Send {
                    link,
                    msg: PeerMsg::Pong { s },
                });
                // A ping on an established link moves only its own
                // deadlines, and only later (it was heard from): the
                // earliest of all stands.
                self.links_due.set(due);
            }
            PeerMsg::Pong { s } => {
                if let Some(l) = self.links.get_mut(&link) {
                    if let Some((seq, sent)) = l.ping_out {
                        if seq == s {
                            if l.rtt_us.is_none() {
                                // First measurement: pass it on at once, so the
                                // other end knows the RTT too.
                                l.next_ping_ms = Some(ms);
                            }
                            l.rtt_us =
                                Some(now.mono_us.saturating_sub(sent).min(u32::MAX as u64) as u32);
                            l.ping_out = None;
                        }
                    }
                }
            }
            PeerMsg::Digest { entries, done } => self.on_digest(link, entries, done),
            PeerMsg::Na(na) => {
                if self.links.get(&link).is_some_and(|l| l.active) {
                    self.on_na(link, na)
                }
            }
            PeerMsg::Change(d) => {
                if self.links.get(&link).is_some_and(|l| l.active) {
                    self.on_change(link, d)
                }
            }
            PeerMsg::Want { id } => {
                if self.links.get(&link).is_some_and(|l| l.active) {
                    self.on_want(link, id)
                }
            }
            PeerMsg::Forget { id, version } => {
                self.forget(id, version, Some(link));
            }
            PeerMsg::Cmd(r) => self.on_cmd(link, *r),
            PeerMsg::Resp(r) => self.on_resp(link, *r),
        }
    }

    fn on_hello(&mut self, link: LinkId, h: Hello) {
        if h.proto != PROTO_MAJOR {
            let reason = format!(
                "protocol version mismatch: we speak {PROTO_MAJOR}.{}, peer speaks {}.{}",
                self.cfg.minor, h.proto, h.minor
            );
            tracing::warn!(peer = %self.describe(link), "{reason}");
            self.actions.push(Action::Send {
                link,
                msg: PeerMsg::Refuse {
                    reason: reason.clone(),
                },
            });
            self.close(link, &reason);
            return;
        }
        if h.id == self.me || h.na.id != h.id {
            let dialled = self.links.get(&link).and_then(|l| l.dialled.clone());
            if let Some(addr) = dialled {
                self.dials.remove(&addr);
                self.dial_resolved(&addr, Err(format!("{addr} is this node itself")));
            }
            self.close(link, "connected to itself");
            return;
        }
        let ms = self.now.ms();
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.peer = Some(h.id);
        l.deltas = h.minor >= MINOR_DELTAS && self.cfg.minor >= MINOR_DELTAS;
        l.peer_name = h.na.record.name.clone();
        l.hello_version = Some(h.na.version);
        l.seen_as = Some(h.seen_as);
        // Silence is judged by our own clock, whatever the peer's: one
        // asking for an endless heartbeat would hold the connection for
        // ever. A peer with a longer heartbeat than ours is kept alive by
        // our probes (see `Link::probe_due`), which it answers at once.
        l.hb_ms = self.cfg.heartbeat_ms();
        let dialled = l.dialled.clone();
        // Two links to one node: keep the one dialled by the lower id, or
        // the older one if the same side dialled both.
        let dialler = |l: &Link| if l.dialled.is_some() { self.me } else { h.id };
        let rival = self
            .links
            .iter()
            .find(|(id, o)| **id != link && o.active && o.peer == Some(h.id))
            .map(|(id, _)| *id);
        if let Some(other) = rival {
            let mine = (dialler(&self.links[&link]), link);
            let theirs = (dialler(&self.links[&other]), other);
            if mine > theirs {
                if let Some(addr) = dialled {
                    if let Some(d) = self.dials.get_mut(&addr) {
                        d.state = DialState::Covered;
                        d.peer = Some(h.id);
                        d.ever_up = true;
                        d.persistent = true;
                    }
                    self.dial_resolved(&addr, Ok(h.id));
                }
                self.close(link, "duplicate link");
                return;
            }
            self.close(other, "duplicate link");
        }
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        l.active = true;
        l.digest_seen = Some(HashSet::new());
        if l.dialled.is_some() {
            // Ping at once: the RTT is known from the start.
            l.next_ping_ms = Some(ms);
        }
        tracing::info!(peer = %self.describe(link), "link up");
        if let Some(addr) = &dialled {
            if let Some(d) = self.dials.get_mut(addr) {
                d.peer = Some(h.id);
                d.ever_up = true;
                d.persistent = true;
                d.backoff_ms = self.cfg.redial_min_ms();
            }
        }
        self.accept_na(link, &Arc::new(h.na));
        self.send_digest(link);
        self.dirty_routes();
        self.schedule_announce();
        if let Some(addr) = dialled {
            self.dial_resolved(&addr, Ok(h.id));
        }
    }

    /// Closes a link on our initiative.
    pub(super) fn close(&mut self, link: LinkId, reason: &str) {
        if self.links.contains_key(&link) {
            self.actions.push(Action::Close {
                link,
                reason: reason.to_string(),
            });
            self.drop_link(link, reason);
        }
    }

    /// Forgets a link and schedules what follows from its loss.
    fn drop_link(&mut self, link: LinkId, reason: &str) {
        let Some(l) = self.links.remove(&link) else {
            return;
        };
        if l.active {
            tracing::info!(peer = %format!("{} ({})", l.peer_name, l.remote), "link down: {reason}");
            self.dirty_routes();
            // A failure is news: tell everyone at once, no debounce.
            self.announce_at = Some(self.now.ms());
        } else if l.peer.is_none() {
            tracing::info!(peer = %l.remote, "connection closed before handshake: {reason}");
        }
        let ms = self.now.ms();
        let still_linked =
            |peer: Option<NodeId>, links: &std::collections::BTreeMap<LinkId, Link>| {
                peer.is_some_and(|p| links.values().any(|o| o.active && o.peer == Some(p)))
            };
        let mut redial = Vec::new();
        for (addr, d) in self.dials.iter_mut() {
            let affected = d.state == DialState::Up(link)
                || (d.state == DialState::Covered && l.peer.is_some() && d.peer == l.peer);
            if affected && !still_linked(d.peer, &self.links) {
                redial.push(addr.clone());
            }
        }
        for addr in redial {
            let persistent = self
                .dials
                .get(&addr)
                .is_some_and(|d| d.persistent || d.ever_up);
            if !persistent || self.stopping.is_some() {
                self.dials.remove(&addr);
                continue;
            }
            // The first redial after a working link is quick; failures back off.
            let delay =
                self.cfg.redial_min_ms() / 2 + self.rng.below(self.cfg.redial_min_ms() / 2 + 1);
            if let Some(d) = self.dials.get_mut(&addr) {
                d.state = DialState::Due(ms + delay);
            }
        }
        self.check_stop();
    }

    /// Heartbeats and timeouts.
    pub(super) fn link_timers(&mut self, ms: u64) {
        let mut close = Vec::new();
        let mut pings = Vec::new();
        for (id, l) in self.links.iter_mut() {
            if l.peer.is_none() {
                if ms >= l.opened_ms + self.cfg.handshake_timeout_ms() {
                    close.push((*id, "handshake timeout".to_string()));
                }
                continue;
            }
            if ms >= l.dead_at() {
                close.push((*id, format!("no heartbeat for {} ms", ms - l.last_rx_ms)));
                continue;
            }
            if ms >= l.last_rx_ms + DEAD_HEARTBEATS * l.hb_ms && !l.lossy_logged {
                l.lossy_logged = true;
                tracing::info!(peer = %format!("{} ({})", l.peer_name, l.remote), "link: no frame taken in for {} ms but the peer's packets or frames still arrive (a lossy path, or this daemon is behind): keeping it for up to {} ms", ms - l.last_rx_ms, LOSSY_HEARTBEATS * l.hb_ms);
            }
            if l.probe_due().is_some_and(|p| ms >= p) {
                l.probe_ms = ms;
                pings.push((*id, PeerMsg::Ping { s: 0, r: None }));
            }
            if let Some(p) = l.next_ping_ms {
                if ms >= p {
                    l.ping_seq = l.ping_seq.wrapping_add(1);
                    l.ping_out = Some((l.ping_seq, self.now.mono_us));
                    l.next_ping_ms = Some(ms + self.cfg.heartbeat_ms());
                    pings.push((
                        *id,
                        PeerMsg::Ping {
                            s: l.ping_seq,
                            r: l.rtt_us,
                        },
                    ));
                }
            }
        }
        for (link, msg) in pings {
            self.actions.push(Action::Send { link, msg });
        }
        for (link, reason) in close {
            tracing::warn!(peer = %self.describe(link), "closing link: {reason}");
            self.close(link, &reason);
        }
    }

    /// The link's live round-trip time, µs.
    pub(super) fn link_rtt(&self, link: LinkId) -> Option<u32> {
        self.links.get(&link).and_then(|l| l.rtt_us)
    }

    /// Every established link but `except`, for a flood.
    pub(super) fn active_links_but(&self, except: Option<LinkId>) -> Vec<LinkId> {
        self.links
            .iter()
            .filter(|(id, l)| l.active && Some(**id) != except)
            .map(|(id, _)| *id)
            .collect()
    }

    /// The established link to a neighbour.
    pub(super) fn link_to(&self, peer: NodeId) -> Option<LinkId> {
        self.links
            .iter()
            .find(|(_, l)| l.active && l.peer == Some(peer))
            .map(|(id, _)| *id)
    }

    /// A link's peer for log lines: `name (address)`, or the address
    /// before the handshake.
    pub fn describe(&self, link: LinkId) -> String {
        match self.links.get(&link) {
            Some(l) if !l.peer_name.is_empty() => format!("{} ({})", l.peer_name, l.remote),
            Some(l) => l.remote.clone(),
            None => format!("link {link}"),
        }
    }
}
