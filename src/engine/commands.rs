//! Commands: resolving targets, routing a command to one node hop by hop or
//! flooding it to all (at most so many a second from one link), and
//! carrying answers back to the origin, a long `list` in parts. What a
//! command does on the node is in `run`; how the origin gathers the
//! answers, in `gather`.

use std::collections::BTreeSet;

use super::{limits, Action, Engine, LinkId, Now, Token};
use crate::wire::ctl::{Answer, Body, Command, NodeView, NotAsked, Reply, Run, Status, Target};
use crate::wire::peer::{Dest, Hop, NodeId, Part, PeerMsg, Routed, RoutedReply};

/// Where an answer goes.
#[derive(Clone, Debug)]
pub enum ReplyTo {
    /// To a pending request of ours.
    Origin(u64),
    /// Back through the overlay to another node.
    Remote {
        /// The command's message id.
        mid: u64,
        /// Its origin.
        to: NodeId,
        /// The path it took, this node last.
        path: Vec<Hop>,
    },
}

/// Something waiting for a dial to `addr` to succeed or fail.
#[derive(Debug)]
pub struct Parked {
    pub(super) addr: String,
    pub(super) what: ParkedWhat,
}

#[derive(Debug)]
pub(super) enum ParkedWhat {
    /// A client's `remote ADDR ...` to an address no known node has.
    Request(Token, Run),
    /// A `join ADDR` whose answer waits for the link.
    Join(ReplyTo),
}

/// Whether a word the user gave as a target looks like an address.
pub fn looks_like_addr(word: &str) -> bool {
    let (host, _) = super::table::split_addr(word);
    host.parse::<core::net::IpAddr>().is_ok()
        || host == "gateway"
        || host == "localhost"
        || word.contains(':')
}

impl Engine {
    /// A request from a local client. Answers leave as [`Action::Reply`].
    pub fn request(&mut self, now: Now, token: Token, req: Run) {
        self.enter(now);
        self.refresh_routes();
        match req.target.clone() {
            Target::Local => {
                let mid = self.start(token, &req, [self.me].into(), false);
                self.run_local(mid, req.cmd, false);
            }
            Target::All => {
                let expected: BTreeSet<NodeId> = self.table.alive().into_iter().collect();
                let mid = self.start(token, &req, expected, true);
                let mut not_asked: Vec<NotAsked> = self
                    .table
                    .values()
                    .filter(|e| e.status != Status::Alive)
                    .map(|e| NotAsked {
                        id: e.na.id,
                        name: e.na.record.name.clone(),
                        status: e.status,
                        last_seen_secs: self.now.wall_ms.saturating_sub(e.last_seen_ms) / 1000,
                    })
                    .collect();
                not_asked.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
                if let Some(p) = self.pending.get_mut(&mid) {
                    p.not_asked = not_asked;
                }
                self.remember_seen(self.me, mid);
                let routed = Routed {
                    mid,
                    origin: self.me,
                    dest: Dest::All,
                    ttl: self.cfg.max_hops.get(),
                    path: Vec::new(),
                    cmd: req.cmd.clone(),
                };
                self.flood_cmd(routed, None);
                self.run_local(mid, req.cmd, true);
            }
            Target::Remote(word) => self.request_remote(token, req, &word),
        }
        self.refresh_routes();
    }

    fn request_remote(&mut self, token: Token, req: Run, word: &str) {
        let hits = self.table.resolve(word);
        let usable =
            |e: &Engine, id: &NodeId| e.table.get(id).is_some_and(|x| x.status == Status::Alive);
        if hits.len() > 1 {
            let mut named: Vec<(&str, NodeId)> = hits
                .iter()
                .filter_map(|id| self.table.get(id))
                .map(|e| (e.na.record.name.as_str(), e.na.id))
                .collect();
            named.sort();
            let names: Vec<String> = named
                .iter()
                .map(|(name, id)| format!("{name} ({})", id.short()))
                .collect();
            let message = format!(
                "target {word:?} is ambiguous: it could be {}",
                names.join(", ")
            );
            return self.error(token, message, 2);
        }
        if let Some(id) = hits.first().copied() {
            if id == self.me {
                let mid = self.start(token, &req, [self.me].into(), false);
                return self.run_local(mid, req.cmd, false);
            }
            if usable(self, &id) {
                let mid = self.start(token, &req, [id].into(), false);
                let routed = Routed {
                    mid,
                    origin: self.me,
                    dest: Dest::Node(id),
                    ttl: self.cfg.max_hops.get(),
                    path: Vec::new(),
                    cmd: req.cmd,
                };
                return self.route_cmd(routed);
            }
            if let Some(e) = self.table.get(&id).filter(|_| !looks_like_addr(word)) {
                let secs = self.now.wall_ms.saturating_sub(e.last_seen_ms) / 1000;
                let message = format!(
                    "can't reach {}: {}, last seen {secs} seconds ago",
                    e.na.record.name,
                    e.status.as_str()
                );
                return self.error(token, message, 1);
            }
        }
        if !looks_like_addr(word) {
            let message =
                format!("no node is known as {word:?}; `daust list` shows the known nodes");
            return self.error(token, message, 1);
        }
        if self.stopping.is_some() {
            return self.error(token, "this daemon is stopping".into(), 1);
        }
        let addr = self.add_dial(word, false);
        self.parked.push(Parked {
            addr,
            what: ParkedWhat::Request(token, req),
        });
        self.tick(self.now);
    }

    /// A dial finished: release whatever waited for it.
    pub(super) fn dial_resolved(&mut self, addr: &str, result: Result<NodeId, String>) {
        let (ready, rest): (Vec<Parked>, Vec<Parked>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|p| p.addr == addr);
        self.parked = rest;
        if ready.is_empty() {
            return;
        }
        self.refresh_routes();
        for p in ready {
            match (p.what, &result) {
                (ParkedWhat::Request(token, req), Ok(peer)) => {
                    let mid = self.start(token, &req, [*peer].into(), false);
                    let routed = Routed {
                        mid,
                        origin: self.me,
                        dest: Dest::Node(*peer),
                        ttl: self.cfg.max_hops.get(),
                        path: Vec::new(),
                        cmd: req.cmd,
                    };
                    self.route_cmd(routed);
                }
                (ParkedWhat::Request(token, _), Err(e)) => self.error(token, e.clone(), 1),
                (ParkedWhat::Join(to), Ok(peer)) => {
                    let peer_name = self
                        .table
                        .get(peer)
                        .map(|e| e.na.record.name.clone())
                        .unwrap_or_default();
                    let body = Body::Joined {
                        addr: p.addr.clone(),
                        peer: *peer,
                        peer_name,
                    };
                    self.deliver(to, body);
                }
                (ParkedWhat::Join(to), Err(e)) => {
                    self.deliver(to, Body::Error { message: e.clone() })
                }
            }
        }
    }

    fn error(&mut self, token: Token, message: String, code: u8) {
        self.actions.push(Action::Reply {
            token,
            reply: Reply::Error { message, code },
        });
    }

    /// Runs a command of our own client here.
    fn run_local(&mut self, mid: u64, cmd: Command, all: bool) {
        let path = vec![self.hop(None)];
        if all && cmd == Command::Stop {
            // The origin of `all stop` goes last, once everyone answered.
            if let Some(p) = self.pending.get_mut(&mid) {
                p.stop_after = true;
            }
            return self.on_answer(mid, self.answer(Body::Stopping), path, None);
        }
        self.execute(cmd, ReplyTo::Origin(mid), None, false);
    }

    fn hop(&self, link: Option<LinkId>) -> Hop {
        Hop {
            id: self.me,
            name: self.record.name.clone(),
            rtt_us: link.and_then(|l| self.link_rtt(l)),
        }
    }

    fn answer(&self, body: Body) -> Answer {
        Answer {
            id: self.me,
            name: self.record.name.clone(),
            addr: self.record.internal_ip.clone(),
            body,
        }
    }

    /// Sends a command one hop closer to its destination.
    fn route_cmd(&mut self, mut r: Routed) {
        let Dest::Node(dest) = r.dest else { return };
        let link = self.table.next_hop(&dest).and_then(|n| self.link_to(n));
        match link {
            Some(link) => {
                r.path.push(self.hop(Some(link)));
                self.actions.push(Action::Send {
                    link,
                    msg: PeerMsg::Cmd(Box::new(r)),
                });
            }
            None => {
                let name = self
                    .table
                    .get(&dest)
                    .map_or(dest.short(), |e| e.na.record.name.clone());
                let message = format!("no route from {} to {name}", self.record.name);
                r.path.push(self.hop(None));
                let to = ReplyTo::Remote {
                    mid: r.mid,
                    to: r.origin,
                    path: r.path,
                };
                let to = if r.origin == self.me {
                    ReplyTo::Origin(r.mid)
                } else {
                    to
                };
                self.deliver(to, Body::Error { message });
            }
        }
    }

    fn flood_cmd(&mut self, r: Routed, from: Option<LinkId>) {
        if r.ttl == 0 || (self.cfg.deadend && r.origin != self.me) {
            return;
        }
        for link in self.active_links_but(from) {
            let mut copy = r.clone();
            copy.ttl = r.ttl - 1;
            copy.path.push(self.hop(Some(link)));
            self.actions.push(Action::Send {
                link,
                msg: PeerMsg::Cmd(Box::new(copy)),
            });
        }
    }

    fn remember_seen(&mut self, origin: NodeId, mid: u64) -> bool {
        if !self.seen.insert((origin, mid)) {
            return false;
        }
        self.seen_order.push_back((origin, mid));
        while self.seen_order.len() > self.cfg.seen_cache {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    /// A routed command arrived on `link`.
    pub(super) fn on_cmd(&mut self, link: LinkId, r: Routed) {
        let now_ms = self.now.ms();
        let Some(l) = self.links.get_mut(&link) else {
            return;
        };
        if !l.cmds.take(limits::CMD_RATE, now_ms, 1) {
            // Dropped, not run, not passed on: a peer sending more
            // commands than any network makes is flooding.
            if now_ms >= l.cmds_warned_ms {
                l.cmds_warned_ms = now_ms + 10_000;
                let dropped = l.cmds.refused();
                tracing::warn!(peer = %self.describe(link), "dropping commands from this link: {dropped} over the limit of {} a second", limits::CMD_RATE.per_s);
            }
            return;
        }
        self.refresh_routes();
        match r.dest {
            Dest::Node(id) if id == self.me => {
                let mut path = r.path;
                path.push(self.hop(None));
                let to = ReplyTo::Remote {
                    mid: r.mid,
                    to: r.origin,
                    path,
                };
                self.execute(r.cmd, to, Some(link), false);
            }
            Dest::Node(_) => {
                if self.cfg.deadend {
                    tracing::debug!(peer = %self.describe(link), "deadend: not relaying a command");
                } else if r.ttl == 0 {
                    tracing::warn!(peer = %self.describe(link), "dropping a command past its hop limit");
                } else {
                    let mut r = r;
                    r.ttl -= 1;
                    self.route_cmd(r);
                }
            }
            Dest::All => {
                if !self.remember_seen(r.origin, r.mid) {
                    // The sender had it before us, from elsewhere: its
                    // answers do not come back through us, so a stopping
                    // node need not wait for it (in a mesh, two such
                    // neighbours would wait for each other until the linger).
                    let peer = self.links.get(&link).and_then(|l| l.peer);
                    if let (Some(p), Some(s)) = (peer, self.stopping.as_mut()) {
                        if s.wait_for.remove(&p) {
                            self.check_stop();
                        }
                    }
                    return;
                }
                let mut path = r.path.clone();
                path.push(self.hop(None));
                let cmd = r.cmd.clone();
                let to = ReplyTo::Remote {
                    mid: r.mid,
                    to: r.origin,
                    path,
                };
                self.flood_cmd(r, Some(link));
                self.execute(cmd, to, Some(link), true);
            }
        }
    }

    /// An answer arrived on `link`: ours, or one to pass on towards its
    /// origin.
    pub(super) fn on_resp(&mut self, link: LinkId, r: RoutedReply) {
        self.refresh_routes();
        if r.to == self.me {
            if !self.came_its_way(link, &r) {
                tracing::debug!(peer = %self.describe(link), node = %r.answer.id.short(), "an answer from a direction its node does not lie in: dropped");
                return;
            }
            return self.on_answer(r.mid, r.answer, r.path, r.part);
        }
        if self.cfg.deadend || r.ttl == 0 {
            return;
        }
        self.send_resp(r);
    }

    /// Sends an answer one hop towards its origin: back the way the
    /// command came while that link is up (it still is when the nodes on
    /// the way are stopping, and routes no longer pass through them), else
    /// along the route.
    fn send_resp(&mut self, r: RoutedReply) {
        let back = r
            .path
            .iter()
            .rposition(|h| h.id == self.me)
            .and_then(|k| k.checked_sub(1))
            .and_then(|k| r.path.get(k))
            .and_then(|h| self.link_to(h.id));
        let link = back.or_else(|| self.table.next_hop(&r.to).and_then(|n| self.link_to(n)));
        match link {
            Some(link) => {
                let mut r = r;
                r.ttl -= 1;
                self.actions.push(Action::Send {
                    link,
                    msg: PeerMsg::Resp(Box::new(r)),
                });
            }
            None => tracing::debug!(to = %r.to.short(), "no route for an answer; dropped"),
        }
    }

    /// Sends an answer where it belongs; a long `list` in parts.
    pub(super) fn deliver(&mut self, to: ReplyTo, body: Body) {
        match to {
            ReplyTo::Origin(mid) => {
                let answer = self.answer(body);
                self.on_answer(mid, answer, vec![self.hop(None)], None)
            }
            ReplyTo::Remote { mid, to, path } => {
                let parts = match body {
                    Body::List { nodes } if nodes.len() > 1 => split_list(nodes),
                    body => vec![body],
                };
                let of = u32::try_from(parts.len()).unwrap_or(u32::MAX);
                for (n, body) in (0..).zip(parts) {
                    let r = RoutedReply {
                        mid,
                        to,
                        ttl: self.cfg.max_hops.get(),
                        path: path.clone(),
                        answer: self.answer(body),
                        part: (of > 1).then_some(Part { n, of }),
                    };
                    self.send_resp(r);
                }
            }
        }
    }
}

/// Cuts a `list` into bodies of about [`limits::ANSWER_PART`] bytes each,
/// in order (one body if it is short).
fn split_list(nodes: Vec<NodeView>) -> Vec<Body> {
    let mut parts = Vec::new();
    let mut cur = Vec::new();
    let mut bytes = 0;
    for n in nodes {
        let b = n.approx_bytes();
        if !cur.is_empty() && bytes + b > limits::ANSWER_PART {
            parts.push(Body::List {
                nodes: std::mem::take(&mut cur),
            });
            bytes = 0;
        }
        bytes += b;
        cur.push(n);
    }
    parts.push(Body::List { nodes: cur });
    parts
}

/// Where a run's command ids start. Nothing a restart keeps or loses can
/// make two runs collide: not a counter in the state dir (lost with it, or
/// restored from a backup), not the clock (set back). A random start from
/// the run's seed makes it as unlikely as two random 64-bit numbers falling
/// within a few thousand of each other; the incarnation is mixed in so that
/// a seed reused by a test still moves on across restarts.
pub(super) fn first_mid(rng: &mut super::rng::Rng, inc: u64) -> u64 {
    rng.next_u64() ^ inc.wrapping_mul(0x9E37_79B9_7F4A_7C15)
}
