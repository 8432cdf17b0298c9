//! Control protocol: what the `daust` client and its local daemon say over
//! the Unix control socket, and the commands and answers that also travel
//! between daemons inside [`super::peer::Routed`] messages.
//!
//! ```text
//!  client                         daemon
//!    |-- Request::Run{target, cmd} ->|
//!    |<-- Progress{answered, of} ----|   zero or more, for `all`
//!    |<-- Done{answers, missing} ----|   or Error{message, code}; then close
//! ```
//!
//! Answers are data, not text: the client renders them (or prints them as
//! JSON with `--json`), so a remote node's answer looks the same as a local
//! one.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::types::{Hop, NodeId};

/// What the client asks for.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "snake_case")]
pub enum Command {
    /// Round trip through the overlay.
    Ping,
    /// The node table in the seed's list format.
    List,
    /// With `all`: the tree of flood paths; with one target: the path to it.
    Trace,
    /// Announce `left` and exit.
    Stop,
    /// Everything about the node itself.
    Info,
    /// Dial an address and keep the link.
    Join {
        /// `host:port`, `host` (port 4040) or `gateway`.
        addr: String,
    },
    /// Drop an unreachable or left node from every table.
    Forget {
        /// Name, id prefix or address of the node.
        node: String,
    },
    /// Which cluster keys the node holds (fingerprints).
    Keys,
}

impl Command {
    /// The command's word in the phrase language.
    pub fn word(&self) -> &'static str {
        match self {
            Command::Ping => "ping",
            Command::List => "list",
            Command::Trace => "trace",
            Command::Stop => "stop",
            Command::Info => "info",
            Command::Join { .. } => "join",
            Command::Forget { .. } => "forget",
            Command::Keys => "keys",
        }
    }
}

/// Where a command runs.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// The local daemon.
    Local,
    /// One node: a name, a unique prefix of a name or id, or an address
    /// (dialled first if no node is known by it).
    Remote(String),
    /// Every node.
    All,
}

/// What a client asks its daemon: the first and only frame it sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Run a command here, on one node or on all: answered with
    /// [`Reply::Progress`] frames and one [`Reply::Done`] or
    /// [`Reply::Error`].
    Run(Run),
    /// The whole table once ([`Reply::Table`]), then every change as it
    /// happens ([`Reply::Changed`]) until the client hangs up or the daemon
    /// stops ([`Reply::Bye`]). For `daust top`.
    Watch,
    /// Membership changes as they happen ([`Reply::Event`]) until the
    /// client hangs up or the daemon stops ([`Reply::Bye`]). For
    /// `daust events`.
    Events,
}

/// A command to run, and where: the part of a request that may travel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Where to run it.
    pub target: Target,
    /// What to run.
    pub cmd: Command,
    /// How long to wait for answers, in ms.
    pub timeout_ms: u64,
}

/// A frame from the daemon to the client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Still waiting: how many of the expected nodes answered so far.
    Progress {
        /// Answers so far.
        answered: usize,
        /// Answers expected.
        expected: usize,
    },
    /// The result; the last frame.
    Done(Outcome),
    /// To `watch`: the table as it stands, this node first.
    Table {
        /// This node's id.
        me: NodeId,
        /// Every node.
        nodes: Vec<NodeView>,
        /// What `info` says about this node.
        info: Box<InfoView>,
    },
    /// To `watch`: nodes that changed since the last frame.
    Changed {
        /// Their new views.
        nodes: Vec<NodeView>,
        /// Nodes dropped from the table.
        removed: Vec<NodeId>,
    },
    /// To `events`: the stream is open; every event from now on follows.
    /// Its first frame, so a client knows when it cannot miss one.
    Subscribed {
        /// The name of the node whose events these are.
        name: String,
    },
    /// To `events`: one membership change.
    Event(Box<Event>),
    /// To `watch` and `events`: the daemon is stopping cleanly; the last
    /// frame of the stream. A stream that ends without it ended because
    /// the daemon died (killed, crashed).
    Bye {
        /// Why it stops, for the user (`SIGTERM`, `stop from hv1`).
        reason: String,
    },
    /// The request failed as a whole; the last frame.
    Error {
        /// What went wrong, for the user.
        message: String,
        /// Exit status the client should use (1 failure, 2 usage).
        code: u8,
    },
}

/// Everything the origin gathered for one request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outcome {
    /// The origin's id, so the client can put it first.
    pub origin: NodeId,
    /// One entry per node that answered.
    pub answers: Vec<Reached>,
    /// Nodes that were expected to answer and did not.
    pub missing: Vec<Missing>,
    /// With `all`: nodes known but not asked, because they were unreachable
    /// or had left when the command started; by name.
    #[serde(default)]
    pub not_asked: Vec<NotAsked>,
}

/// A node an `all` command did not go to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotAsked {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// `unreachable` or `left`.
    pub status: Status,
    /// Seconds since it was last seen.
    pub last_seen_secs: u64,
}

/// One node's answer and how it got there.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reached {
    /// The answer.
    pub answer: Answer,
    /// Path the command took from the origin to the node.
    pub path: Vec<Hop>,
    /// Round trip from the origin, µs.
    pub rtt_us: u64,
}

/// A node that did not answer in time.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Missing {
    /// Its id.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Seconds since it was last seen (0 if it was alive when asked).
    pub last_seen_secs: u64,
}

/// A node's answer to a command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    /// The answering node.
    pub id: NodeId,
    /// Its name.
    pub name: String,
    /// Its internal address, for `pong from NAME (ADDR)`.
    pub addr: Option<String>,
    /// What it said.
    pub body: Body,
}

/// The content of an answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    /// To `ping`.
    Pong,
    /// To `list`: self first, then by name.
    List {
        /// The node table as the answering node sees it.
        nodes: Vec<NodeView>,
    },
    /// To `trace`: the path is in [`Reached::path`].
    Trace,
    /// To `stop`.
    Stopping,
    /// To `info`.
    Info(Box<InfoView>),
    /// To `join`.
    Joined {
        /// The dialled address.
        addr: String,
        /// The node found there.
        peer: NodeId,
        /// Its name.
        peer_name: String,
    },
    /// To `keys`: fingerprints of the cluster keys, the initiating one
    /// first; empty without a key.
    Keys {
        /// SHA-256 fingerprints (16 hex digits).
        keys: Vec<String>,
    },
    /// To `forget`.
    Forgot {
        /// The forgotten node.
        id: NodeId,
        /// Its name.
        name: String,
    },
    /// The command failed on that node.
    Error {
        /// Why.
        message: String,
    },
}

/// Status of a node in a table.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Reachable over live links.
    Alive,
    /// Known, but no path to it now.
    Unreachable,
    /// It said goodbye.
    Left,
}

impl Status {
    /// Lowercase name, as printed.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Unreachable => "unreachable",
            Status::Left => "left",
        }
    }
}

/// One node as a table shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeView {
    /// Node id.
    pub id: NodeId,
    /// Name.
    pub name: String,
    /// Internal address.
    pub internal_ip: Option<String>,
    /// Public address (`-p`).
    pub public_ip: Option<String>,
    /// All interface addresses.
    pub addrs: Vec<String>,
    /// Addresses neighbours see it at.
    pub seen_as: Vec<String>,
    /// `host`, `vm` or `container`.
    pub kind: String,
    /// Status.
    pub status: Status,
    /// Seconds since last seen: 0 while alive.
    pub last_seen_secs: u64,
    /// When it was last seen, wall clock ms since the epoch.
    pub last_seen_ms: u64,
    /// Parent in the shortest-path tree (last known one if not alive).
    pub parent: Option<NodeId>,
    /// Hops from the answering node, while reachable.
    pub hops: Option<u32>,
    /// Round trip from the answering node along the tree, µs, while
    /// reachable and measured.
    #[serde(default)]
    pub rtt_us: Option<u32>,
    /// When its daemon started, wall clock ms.
    #[serde(default)]
    pub started_ms: u64,
    /// Its operating system.
    #[serde(default)]
    pub os: String,
    /// Tags.
    pub tags: BTreeMap<String, String>,
    /// daust version it runs.
    pub version: String,
    /// It forwards nothing for others.
    pub deadend: bool,
}

/// What happened to a node, as `daust events` and hooks tell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// A node this one had never seen.
    Joined,
    /// Its addresses, tags, name or version changed, or it restarted.
    Updated,
    /// It can no longer be reached.
    Unreachable,
    /// It can be reached again.
    Reachable,
    /// It said goodbye (a graceful stop).
    Left,
    /// It was dropped from the table (`forget`, or unseen too long).
    Forgotten,
}

impl EventKind {
    /// Every kind, in the order of a node's life.
    pub const ALL: [EventKind; 6] = [
        EventKind::Joined,
        EventKind::Updated,
        EventKind::Unreachable,
        EventKind::Reachable,
        EventKind::Left,
        EventKind::Forgotten,
    ];

    /// The word for it: `joined`, `unreachable`, ...
    pub fn as_str(&self) -> &'static str {
        match self {
            EventKind::Joined => "joined",
            EventKind::Updated => "updated",
            EventKind::Unreachable => "unreachable",
            EventKind::Reachable => "reachable",
            EventKind::Left => "left",
            EventKind::Forgotten => "forgotten",
        }
    }

    /// The kind a word names.
    pub fn parse(word: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == word)
    }
}

/// One membership change, as this node saw it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When this node saw it, wall clock ms since the epoch.
    pub time_ms: u64,
    /// What happened.
    pub event: EventKind,
    /// The node it happened to, as it stands now.
    pub node: NodeView,
    /// For `updated`: what changed (`addresses`, `tags`, `name`,
    /// `version`, `restarted`).
    #[serde(default)]
    pub changed: Vec<String>,
    /// The neighbour it was reached through: its parent in this node's
    /// tree (for `unreachable`, the last one).
    pub via: Option<String>,
    /// Names along the tree from this node to it.
    #[serde(default)]
    pub path: Vec<String>,
    /// The node that saw it (this daemon).
    pub reporter: String,
}

impl NodeView {
    /// About how many bytes it takes as JSON: for bounding answers and
    /// cutting long ones into parts, without encoding them twice.
    pub fn approx_bytes(&self) -> usize {
        let texts = |v: &[String]| v.iter().map(|s| s.len() + 4).sum::<usize>();
        let tags: usize = self.tags.iter().map(|(k, v)| k.len() + v.len() + 6).sum();
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        400 + self.name.len()
            + opt(&self.internal_ip)
            + opt(&self.public_ip)
            + texts(&self.addrs)
            + texts(&self.seen_as)
            + tags
            + self.kind.len()
            + self.os.len()
            + self.version.len()
    }

    /// The address a person or script most likely wants: internal, else
    /// public, else any interface address, else as a neighbour sees it.
    pub fn addr(&self) -> Option<&str> {
        self.internal_ip
            .as_deref()
            .or(self.public_ip.as_deref())
            .or(self.addrs.first().map(String::as_str))
            .or(self.seen_as.first().map(String::as_str))
    }
}

impl Body {
    /// About how many bytes it takes as JSON (see
    /// [`NodeView::approx_bytes`]).
    pub fn approx_bytes(&self) -> usize {
        match self {
            Body::List { nodes } => 32 + nodes.iter().map(NodeView::approx_bytes).sum::<usize>(),
            Body::Info(info) => {
                600 + info.node.approx_bytes()
                    + info
                        .links
                        .iter()
                        .map(|l| 120 + l.name.len() + l.addr.len())
                        .sum::<usize>()
            }
            Body::Joined {
                addr, peer_name, ..
            } => 120 + addr.len() + peer_name.len(),
            Body::Keys { keys } => 32 + keys.iter().map(|k| k.len() + 4).sum::<usize>(),
            Body::Forgot { name, .. } => 80 + name.len(),
            Body::Error { message } => 32 + message.len(),
            Body::Pong | Body::Trace | Body::Stopping => 32,
        }
    }
}

/// Everything `info` tells about a node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InfoView {
    /// The node as its own table shows it.
    pub node: NodeView,
    /// Operating system.
    pub os: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Current incarnation.
    pub incarnation: u64,
    /// Listening port.
    pub port: u16,
    /// Whether peer traffic is authenticated (a cluster key is set).
    pub authenticated: bool,
    /// Live links.
    pub links: Vec<LinkView>,
    /// Nodes in the table by status.
    pub counts: BTreeMap<String, usize>,
}

/// One live link as `info` shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// The node at the other end.
    pub peer: NodeId,
    /// Its name.
    pub name: String,
    /// Its address as this node sees it.
    pub addr: String,
    /// Whether this node dialled it.
    pub dialled: bool,
    /// Round trip in µs, once measured.
    pub rtt_us: Option<u32>,
}
