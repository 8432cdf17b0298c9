//! Links between simulated nodes: dialling (a link, or a failure of the
//! kind a real dial would give), both ends of each link, and closing them.

use super::{Scheduled, Sim};
use crate::engine::{DialFailure, LinkId, LinkInfo};

/// One end of a link.
pub(super) struct End {
    pub(super) node: usize,
    pub(super) peer: (usize, LinkId),
    /// Time of the last delivery scheduled in this direction, for order.
    pub(super) last_us: u64,
    pub(super) open: bool,
}

impl Sim {
    pub(super) fn set_end(&mut self, link: LinkId, end: End) {
        let k = link as usize;
        if self.ends.len() <= k {
            self.ends.resize_with(k + 1, || None);
        }
        self.ends[k] = Some(end);
    }

    /// Node `i` dials `addr`: a link if a running node is there and no
    /// cut lies between, else a failure (refused by a machine whose daemon
    /// is down, no answer across a cut or to an unknown address).
    pub(super) fn dial(&mut self, i: usize, addr: String) {
        let target = self.by_addr.get(&addr).copied();
        let d = self.delay();
        match target {
            Some(j) if self.nodes[j].engine.is_some() && !self.cut.contains(&(i, j)) => {
                let (li, lj) = (self.next_link, self.next_link + 1);
                self.next_link += 2;
                self.set_end(
                    li,
                    End {
                        node: i,
                        peer: (j, lj),
                        last_us: 0,
                        open: true,
                    },
                );
                self.set_end(
                    lj,
                    End {
                        node: j,
                        peer: (i, li),
                        last_us: 0,
                        open: true,
                    },
                );
                let at = self.now_us + 2 * d;
                let (ai, aj) = (self.nodes[i].addr.clone(), self.nodes[j].addr.clone());
                self.push(
                    at,
                    Scheduled::LinkUp {
                        node: j,
                        link: lj,
                        info: LinkInfo {
                            dialled: None,
                            remote: ai,
                        },
                    },
                );
                self.push(
                    at,
                    Scheduled::LinkUp {
                        node: i,
                        link: li,
                        info: LinkInfo {
                            dialled: Some(addr),
                            remote: aj,
                        },
                    },
                );
            }
            // Cut off: no answer, after a while.
            Some(j) if self.cut.contains(&(i, j)) => {
                let kind = DialFailure::Other;
                let ev = Scheduled::DialFailed {
                    node: i,
                    addr,
                    kind,
                };
                self.push(self.now_us + 1_000_000, ev);
            }
            // The machine is there and its daemon is not (crashed,
            // not started): refused at once.
            Some(_) => {
                let kind = DialFailure::Refused;
                let ev = Scheduled::DialFailed {
                    node: i,
                    addr,
                    kind,
                };
                self.push(self.now_us + 2 * d, ev);
            }
            None => {
                let kind = DialFailure::Other;
                let ev = Scheduled::DialFailed {
                    node: i,
                    addr,
                    kind,
                };
                self.push(self.now_us + 2 * d, ev);
            }
        }
    }

    pub(super) fn close_end(&mut self, i: usize, link: LinkId) {
        let Some(end) = end_mut_in(&mut self.ends, i, link) else {
            return;
        };
        if !end.open {
            return;
        }
        end.open = false;
        let (j, lj) = end.peer;
        let at = (self.now_us + self.net.delay_us).max(end.last_us);
        if !self.cut.contains(&(i, j)) {
            self.push(at, Scheduled::LinkDown { node: j, link: lj });
        }
    }

    pub(super) fn close_all(&mut self, i: usize) {
        let mine: Vec<LinkId> = self
            .ends
            .iter()
            .enumerate()
            .filter(|(_, e)| e.as_ref().is_some_and(|e| e.node == i && e.open))
            .map(|(l, _)| l as LinkId)
            .collect();
        for l in mine {
            self.close_end(i, l);
        }
    }
}

/// One end of `link`, if it is `node`'s.
pub(super) fn end_in(ends: &[Option<End>], node: usize, link: LinkId) -> Option<&End> {
    let e = ends.get(usize::try_from(link).ok()?)?.as_ref()?;
    (e.node == node).then_some(e)
}

pub(super) fn end_mut_in(ends: &mut [Option<End>], node: usize, link: LinkId) -> Option<&mut End> {
    let e = ends.get_mut(usize::try_from(link).ok()?)?.as_mut()?;
    (e.node == node).then_some(e)
}
