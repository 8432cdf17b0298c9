//! Gathering the answers to a request of our own client: which nodes it
//! still waits on, answers heard only from those and only from their
//! direction, long answers joined from their parts, the bytes a request
//! may keep, and the outcome at the end (everyone answered, or the
//! deadline).

use std::collections::{BTreeSet, HashMap};

use super::{limits, Action, Engine, LinkId, Token};
use crate::wire::ctl::{
    Answer, Body, Missing, NodeView, NotAsked, Outcome, Reached, Reply, Run, Status,
};
use crate::wire::peer::{Hop, NodeId, Part, RoutedReply};

/// A request of a local client, waiting for answers.
#[derive(Debug)]
pub struct Pending {
    token: Token,
    /// Nodes that have not answered yet.
    waiting: BTreeSet<NodeId>,
    /// Everyone expected, for progress counts.
    expected: usize,
    answers: Vec<Reached>,
    /// With `all`: the nodes not asked (not alive when it started).
    pub(super) not_asked: Vec<NotAsked>,
    sent_us: u64,
    /// Give up on the missing at this time, ms.
    pub deadline_ms: u64,
    /// `all stop`: the origin stops itself once everyone answered.
    pub(super) stop_after: bool,
    all: bool,
    /// Bytes of the answers held, about (bounded by
    /// [`limits::MAX_ANSWER_BYTES`]).
    bytes: usize,
    /// Long answers arriving in parts, by answering node.
    partial: HashMap<NodeId, Partial>,
}

/// A long answer, part of which has arrived.
#[derive(Debug, Default)]
struct Partial {
    /// How many parts make it.
    of: u32,
    /// The parts in so far.
    got: BTreeSet<u32>,
    /// Their nodes.
    nodes: Vec<NodeView>,
}

impl Engine {
    /// Starts waiting for the answers of `waiting` to a request of client
    /// `token`; returns the request's message id.
    pub(super) fn start(
        &mut self,
        token: Token,
        req: &Run,
        waiting: BTreeSet<NodeId>,
        all: bool,
    ) -> u64 {
        let mid = self.next_mid;
        self.next_mid = self.next_mid.wrapping_add(1);
        self.pending.insert(
            mid,
            Pending {
                token,
                expected: waiting.len(),
                waiting,
                answers: Vec::new(),
                not_asked: Vec::new(),
                sent_us: self.now.mono_us,
                deadline_ms: self.now.ms() + req.timeout_ms.max(1),
                stop_after: false,
                all,
                bytes: 0,
                partial: HashMap::new(),
            },
        );
        mid
    }

    /// Whether an answer for us came from the direction its node lies in:
    /// the path it names starts here and ends at the answering node, and
    /// it arrived from our next hop towards that node, or back along its
    /// path, each step of which the node farther out announces (or that
    /// node has left: a stopping node announces no links). A neighbour
    /// cannot answer for a node that lies elsewhere: that node does not
    /// announce a link to it.
    pub(super) fn came_its_way(&self, link: LinkId, r: &RoutedReply) -> bool {
        let Some(peer) = self.links.get(&link).and_then(|l| l.peer) else {
            return false;
        };
        let (Some(first), Some(last)) = (r.path.first(), r.path.last()) else {
            return false;
        };
        if first.id != self.me || last.id != r.answer.id || r.path.len() < 2 {
            return false;
        }
        if self.table.next_hop(&r.answer.id) == Some(peer) || peer == r.answer.id {
            return true;
        }
        let vouched = |near: &NodeId, far: &NodeId| {
            self.table.get(far).is_some_and(|e| e.na.left) || self.table.lists(far, near)
        };
        r.path[1].id == peer && r.path[1..].windows(2).all(|w| vouched(&w[0].id, &w[1].id))
    }

    /// An answer, or part of one, for a request of ours.
    pub(super) fn on_answer(
        &mut self,
        mid: u64,
        answer: Answer,
        path: Vec<Hop>,
        part: Option<Part>,
    ) {
        let now_us = self.now.mono_us;
        let Some(p) = self.pending.get_mut(&mid) else {
            return;
        };
        // Only the nodes asked may answer, once each: a neighbour that
        // answers in another node's name, twice, or for a node nobody
        // asked, is not heard. The one exception is a node on the way
        // saying there is no way on: it ends a request for one node.
        if !p.waiting.contains(&answer.id) {
            let dead_end =
                !p.all && p.answers.is_empty() && matches!(answer.body, Body::Error { .. });
            if !dead_end || part.is_some() {
                tracing::debug!(node = %answer.id.short(), "an answer nobody waits for: dropped");
                return;
            }
            p.waiting.clear();
        }
        let mut answer = answer;
        p.bytes = p.bytes.saturating_add(answer.body.approx_bytes());
        if p.bytes > limits::MAX_ANSWER_BYTES {
            answer.body = Body::Error {
                message: format!(
                    "answer not kept: this request's answers passed {} MiB",
                    limits::MAX_ANSWER_BYTES >> 20
                ),
            };
            p.partial.remove(&answer.id);
        } else if let Some(part) = part {
            let Some(whole) = p.add_part(&mut answer, part) else {
                return;
            };
            answer.body = Body::List { nodes: whole };
        }
        p.waiting.remove(&answer.id);
        p.answers.push(Reached {
            answer,
            path,
            rtt_us: now_us.saturating_sub(p.sent_us),
        });
        if p.waiting.is_empty() {
            self.finish(mid);
        } else if p.all {
            let reply = Reply::Progress {
                answered: p.answers.len(),
                expected: p.expected.max(p.answers.len() + p.waiting.len()),
            };
            let token = p.token;
            self.actions.push(Action::Reply { token, reply });
        }
    }

    /// Deadlines of pending requests.
    pub(super) fn pending_timers(&mut self, ms: u64) {
        let mut due: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| ms >= p.deadline_ms)
            .map(|(m, _)| *m)
            .collect();
        due.sort();
        for mid in due {
            self.finish(mid);
        }
    }

    /// Answers the client with what arrived, naming who did not answer.
    fn finish(&mut self, mid: u64) {
        let Some(p) = self.pending.remove(&mid) else {
            return;
        };
        let me = self.me;
        let mut answers = p.answers;
        answers.sort_by(|a, b| {
            (a.answer.id != me, &a.answer.name, a.answer.id).cmp(&(
                b.answer.id != me,
                &b.answer.name,
                b.answer.id,
            ))
        });
        let mut missing: Vec<Missing> = p
            .waiting
            .iter()
            .map(|id| {
                let (name, secs) = match self.table.get(id) {
                    Some(e) if e.status == Status::Alive => (e.na.record.name.clone(), 0),
                    Some(e) => (
                        e.na.record.name.clone(),
                        self.now.wall_ms.saturating_sub(e.last_seen_ms) / 1000,
                    ),
                    None => (id.short(), 0),
                };
                Missing {
                    id: *id,
                    name,
                    last_seen_secs: secs,
                }
            })
            .collect();
        missing.sort_by(|a, b| (&a.name, a.id).cmp(&(&b.name, b.id)));
        let outcome = Outcome {
            origin: me,
            answers,
            missing,
            not_asked: p.not_asked,
        };
        self.actions.push(Action::Reply {
            token: p.token,
            reply: Reply::Done(outcome),
        });
        if p.stop_after {
            self.begin_stop(None, false);
        }
    }
}

impl Pending {
    /// Keeps part of a long answer; once every part is in, hands back all
    /// of its nodes. Parts that do not fit the first one's count, repeats
    /// and parts that are not a `list` are not heard.
    fn add_part(&mut self, answer: &mut Answer, part: Part) -> Option<Vec<NodeView>> {
        let Body::List { nodes } = &mut answer.body else {
            return None;
        };
        let limit = u32::try_from(limits::MAX_NODES).unwrap_or(u32::MAX);
        if part.of > limit || part.n >= part.of {
            return None;
        }
        let acc = self.partial.entry(answer.id).or_default();
        if acc.got.is_empty() {
            acc.of = part.of;
        }
        if acc.of != part.of || !acc.got.insert(part.n) {
            return None;
        }
        acc.nodes.append(nodes);
        if acc.got.len() < acc.of as usize {
            return None;
        }
        let done = self.partial.remove(&answer.id)?;
        Some(done.nodes)
    }
}
