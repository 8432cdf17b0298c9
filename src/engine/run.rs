//! Running a command on this node: what each command does here and the
//! answer it gives, including `stop` (say goodbye, relay for the nodes
//! behind, exit) and `forget`.

use std::collections::HashSet;

use super::commands::{Parked, ParkedWhat, ReplyTo};
use super::{limits, Action, Engine, LinkId};
use crate::wire::ctl::{Body, Command, InfoView, LinkView, Reply, Status};
use crate::wire::peer::NodeId;

/// A node on its way out after `stop`.
#[derive(Debug)]
pub struct Stopping {
    /// Exit at this time at the latest, ms.
    pub deadline_ms: u64,
    /// Neighbours that got the flooded `stop` from us: we relay their
    /// answers until they are gone (their link closed).
    pub(super) wait_for: HashSet<NodeId>,
    /// Exit was asked for: nothing left to wait for.
    pub exited: bool,
}

impl Engine {
    /// Runs a command on this node and answers to `to`.
    pub(super) fn execute(
        &mut self,
        cmd: Command,
        to: ReplyTo,
        upstream: Option<LinkId>,
        flooded: bool,
    ) {
        match cmd {
            Command::Ping => self.deliver(to, Body::Pong),
            Command::Trace => self.deliver(to, Body::Trace),
            Command::List => {
                let nodes = self.table.views(self.me, self.now.wall_ms);
                let body = self.afford(upstream, Body::List { nodes });
                self.deliver(to, body);
            }
            Command::Info => {
                let info = self.info();
                self.deliver(to, Body::Info(Box::new(info)));
            }
            Command::Stop => {
                self.deliver(to, Body::Stopping);
                let up = upstream
                    .and_then(|l| self.links.get(&l))
                    .and_then(|l| l.peer);
                self.begin_stop(up, flooded);
            }
            Command::Join { addr } => {
                if self.stopping.is_some() {
                    return self.deliver(
                        to,
                        Body::Error {
                            message: "this daemon is stopping".into(),
                        },
                    );
                }
                let addr = self.add_dial(&addr, false);
                let up = self.dials.get(&addr).and_then(|d| match d.state {
                    super::dials::DialState::Up(_) | super::dials::DialState::Covered => d.peer,
                    _ => None,
                });
                match up {
                    Some(peer) => {
                        let peer_name = self
                            .table
                            .get(&peer)
                            .map(|e| e.na.record.name.clone())
                            .unwrap_or_default();
                        self.deliver(
                            to,
                            Body::Joined {
                                addr,
                                peer,
                                peer_name,
                            },
                        );
                    }
                    None => {
                        self.parked.push(Parked {
                            addr,
                            what: ParkedWhat::Join(to),
                        });
                        self.dial_timers(self.now.ms());
                    }
                }
            }
            Command::Forget { node } => {
                let body = self.forget_by_word(&node);
                self.deliver(to, body);
            }
            Command::Keys => {
                let keys = self.cfg.key_ids.clone();
                self.deliver(to, Body::Keys { keys });
            }
        }
    }

    /// `body` if the link the command came over may still have answers
    /// that large (see [`limits::ANSWER_RATE`]), else an error saying so:
    /// a few hundred bytes of commands must not draw gigabytes of tables.
    fn afford(&mut self, upstream: Option<LinkId>, body: Body) -> Body {
        let now_ms = self.now.ms();
        let bytes = body.approx_bytes() as u64;
        let Some(l) = upstream.and_then(|l| self.links.get_mut(&l)) else {
            return body;
        };
        if l.answers.take(limits::ANSWER_RATE, now_ms, bytes) {
            return body;
        }
        tracing::warn!(peer = %format!("{} ({})", l.peer_name, l.remote), "not answering a `list` that came over this link: its commands drew over {} MiB of answers", limits::ANSWER_RATE.burst >> 20);
        Body::Error {
            message: format!(
                "busy: the commands over {}'s link to {} drew more answers than it gives ({} MiB a second); try again in a few seconds",
                self.record.name, l.peer_name, limits::ANSWER_RATE.per_s >> 20
            ),
        }
    }

    fn forget_by_word(&mut self, word: &str) -> Body {
        let hits = self.table.resolve(word);
        let [id] = hits[..] else {
            let message = if hits.is_empty() {
                format!("no node is known as {word:?}")
            } else {
                format!("{word:?} is ambiguous: {} nodes match", hits.len())
            };
            return Body::Error { message };
        };
        let Some(e) = self.table.get(&id) else {
            return Body::Error {
                message: "gone".into(),
            };
        };
        let (name, version, status) = (e.na.record.name.clone(), e.na.version, e.status);
        if id == self.me || status == Status::Alive {
            return Body::Error {
                message: format!(
                    "{name} is alive; only unreachable or left nodes can be forgotten"
                ),
            };
        }
        self.forget(id, version, None);
        tracing::info!(node = %name, "forgotten by request");
        Body::Forgot { id, name }
    }

    /// The first frame of a watch: the whole table and `info`, this node
    /// first. Changes follow as [`Action::NodeChanged`] and
    /// [`Action::NodeRemoved`].
    pub fn table_reply(&self) -> Reply {
        Reply::Table {
            me: self.me,
            nodes: self.views(),
            info: Box::new(self.info()),
        }
    }

    /// What `info` says about this node.
    pub fn info(&self) -> InfoView {
        let node = match self.table.get(&self.me) {
            Some(e) => self.table.view(e, self.now.wall_ms),
            None => unreachable_own_entry(),
        };
        let links = self
            .links
            .values()
            .filter(|l| l.active)
            .filter_map(|l| {
                Some(LinkView {
                    peer: l.peer?,
                    name: l.peer_name.clone(),
                    addr: l.remote.clone(),
                    dialled: l.dialled.is_some(),
                    rtt_us: l.rtt_us,
                })
            })
            .collect();
        InfoView {
            node,
            os: self.record.os.clone(),
            uptime_secs: self.now.mono_us.saturating_sub(self.started.mono_us) / 1_000_000,
            incarnation: self.version.inc,
            port: self.record.port,
            authenticated: self.cfg.authenticated,
            links,
            counts: self.table.counts(),
        }
    }

    /// Says goodbye: floods `left` at once, then exits, after relaying for
    /// the neighbours the flooded `stop` went on to (when `wait`).
    pub(super) fn begin_stop(&mut self, upstream: Option<NodeId>, wait: bool) {
        if self.stopping.is_some() {
            return;
        }
        tracing::info!("stopping: announcing left");
        self.left = true;
        self.announce();
        let wait_for: HashSet<NodeId> = if wait {
            self.links
                .values()
                .filter(|l| l.active)
                .filter_map(|l| l.peer)
                .filter(|p| Some(*p) != upstream)
                .collect()
        } else {
            HashSet::new()
        };
        let linger = if wait { self.cfg.stop_linger_ms() } else { 0 };
        self.stopping = Some(Stopping {
            deadline_ms: self.now.ms() + linger,
            wait_for,
            exited: false,
        });
        self.persist();
        self.check_stop();
    }

    /// Exits once every neighbour we wait for has closed its link, or at
    /// the deadline. Not when it says `left`: it says so as it starts to
    /// stop, and may still relay answers from nodes behind it through us.
    pub(super) fn check_stop(&mut self) {
        let ms = self.now.ms();
        let Some(s) = &self.stopping else { return };
        if s.exited {
            return;
        }
        let done = s
            .wait_for
            .iter()
            .all(|p| !self.links.values().any(|l| l.active && l.peer == Some(*p)));
        if done || ms >= s.deadline_ms {
            if let Some(s) = self.stopping.as_mut() {
                s.exited = true;
            }
            self.actions.push(Action::Exit);
        }
    }
}

fn unreachable_own_entry() -> crate::wire::ctl::NodeView {
    // The engine inserts its own entry at birth and never removes it.
    crate::wire::ctl::NodeView {
        id: NodeId(0),
        name: String::new(),
        internal_ip: None,
        public_ip: None,
        addrs: Vec::new(),
        seen_as: Vec::new(),
        kind: String::new(),
        status: Status::Alive,
        last_seen_secs: 0,
        last_seen_ms: 0,
        parent: None,
        hops: None,
        rtt_us: None,
        started_ms: 0,
        os: String::new(),
        tags: Default::default(),
        version: String::new(),
        deadend: false,
    }
}
