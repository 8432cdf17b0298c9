//! Announcements as changes, at one engine: applied to the version they
//! were made from and passed on as changes to the peers that take them
//! (whole to the others); a change to a version not held asks for the
//! whole announcement once; and what a hostile peer can make of either.

use std::sync::Arc;

use super::*;
use crate::engine::delta;
use crate::wire::peer::{Delta, MINOR_DELTAS};

/// Like [`link`], with a peer that takes changes when `changes`.
fn link_minor(e: &mut Engine, l: LinkId, peer: u128, changes: bool) {
    let info = LinkInfo {
        dialled: None,
        remote: format!("10.0.1.{peer}:4040"),
    };
    e.link_up(now(0), l, info);
    let mut h = match hello(peer, &[]) {
        PeerMsg::Hello(h) => h,
        _ => unreachable!(),
    };
    h.minor = if changes { MINOR_DELTAS } else { 0 };
    e.frame(now(0), l, PeerMsg::Hello(h));
}

fn change(id: u128, from: u64, to: u64, set: &[u128], unset: &[u128]) -> Arc<Delta> {
    let base = na(id, from, &[]);
    let mut d = delta::diff(&base, &na(id, to, set)).expect("a change");
    d.unset = unset.iter().map(|u| NodeId(*u)).collect();
    Arc::new(d)
}

fn links_of(e: &Engine, id: u128) -> Option<(u64, Vec<u128>)> {
    let x = e.table().get(&NodeId(id))?;
    let links = x.na.neighbors.iter().map(|n| n.id.0).collect();
    Some((x.na.version.seq, links))
}

fn wants(a: &[Action], l: LinkId) -> usize {
    sent(a, l)
        .iter()
        .filter(|m| matches!(m, PeerMsg::Want { .. }))
        .count()
}

#[test]
fn a_change_is_applied_and_passed_on_as_a_change_or_whole() {
    let mut e = engine(5, Config::default());
    link_minor(&mut e, 1, 9, true);
    link_minor(&mut e, 2, 8, true);
    link_minor(&mut e, 3, 7, false);
    e.tick(now(50));
    e.frame(now(100), 1, PeerMsg::Na(Arc::new(na(20, 1, &[9, 30]))));
    e.take_actions();
    let d = change(20, 1, 2, &[9, 21, 30], &[]);
    e.frame(now(200), 1, PeerMsg::Change(Arc::clone(&d)));
    assert_eq!(links_of(&e, 20), Some((2, vec![9, 21, 30])));
    let a = e.take_actions();
    assert!(
        matches!(sent(&a, 2)[..], [PeerMsg::Change(c)] if *c == d),
        "{a:?}"
    );
    assert!(
        matches!(sent(&a, 3)[..], [PeerMsg::Na(n)] if n.version.seq == 2 && n.neighbors.len() == 3),
        "an old peer gets it whole: {a:?}"
    );
    assert!(sent(&a, 1).is_empty(), "not back where it came from");
    // The same change again (from another path) is a copy: nothing.
    e.frame(now(210), 2, PeerMsg::Change(d));
    assert!(sent(&e.take_actions(), 1).is_empty());
}

#[test]
fn a_change_to_a_version_not_held_asks_for_the_whole_once() {
    let mut e = engine(5, Config::default());
    link_minor(&mut e, 1, 9, true);
    e.frame(now(100), 1, PeerMsg::Na(Arc::new(na(20, 1, &[9]))));
    e.take_actions();
    e.frame(
        now(200),
        1,
        PeerMsg::Change(change(20, 4, 5, &[9, 22], &[])),
    );
    e.frame(
        now(210),
        1,
        PeerMsg::Change(change(20, 5, 6, &[9, 23], &[])),
    );
    let a = e.take_actions();
    assert_eq!(wants(&a, 1), 1, "{a:?}");
    assert_eq!(links_of(&e, 20), Some((1, vec![9])), "nothing applied");
    // No answer (lost with a queue, or nothing newer there): asked again a
    // second later, though nothing more comes, a few times.
    let mut again = 0;
    for ms in (300..6000).step_by(100) {
        e.frame(now(ms), 1, PeerMsg::Ping { s: 0, r: None });
        e.tick(now(ms));
        again += wants(&e.take_actions(), 1);
    }
    assert_eq!(again, 2, "asked three times in all");
    e.frame(now(6100), 1, PeerMsg::Na(Arc::new(na(20, 6, &[9, 23]))));
    assert_eq!(links_of(&e, 20), Some((6, vec![9, 23])));
    // The peer asks us: it gets what we hold.
    e.frame(now(6200), 1, PeerMsg::Want { id: NodeId(20) });
    let a = e.take_actions();
    assert!(
        matches!(sent(&a, 1)[..], [PeerMsg::Na(n)] if n.version.seq == 6),
        "{a:?}"
    );
}

#[test]
fn a_malformed_change_changes_nothing() {
    let mut e = engine(5, Config::default());
    link_minor(&mut e, 1, 9, true);
    e.frame(now(100), 1, PeerMsg::Na(Arc::new(na(20, 1, &[9]))));
    let mut bad = (*change(20, 1, 2, &[9, 21, 22], &[])).clone();
    bad.set.reverse();
    e.frame(now(200), 1, PeerMsg::Change(Arc::new(bad.clone())));
    bad.set.reverse();
    bad.unset = vec![NodeId(21)];
    e.frame(now(200), 1, PeerMsg::Change(Arc::new(bad.clone())));
    bad.unset.clear();
    bad.version = Version { inc: 1, seq: 1 };
    e.frame(now(200), 1, PeerMsg::Change(Arc::new(bad.clone())));
    bad.version = Version {
        inc: u64::MAX,
        seq: u64::MAX,
    };
    e.frame(now(200), 1, PeerMsg::Change(Arc::new(bad)));
    assert_eq!(links_of(&e, 20), Some((1, vec![9])));
    assert!(closed(&e.take_actions()).is_empty(), "dropped, not fatal");
}

#[test]
fn a_change_of_this_node_is_outrun() {
    let mut e = engine(5, Config::default());
    link_minor(&mut e, 1, 9, true);
    e.tick(now(100));
    e.take_actions();
    let mine = e.table().get(&NodeId(5)).map(|x| x.na.version);
    let mut d = (*change(5, 1, 2, &[66], &[])).clone();
    d.base = mine.unwrap_or_default();
    d.version = Version {
        inc: d.base.inc,
        seq: d.base.seq + 10,
    };
    e.frame(now(200), 1, PeerMsg::Change(Arc::new(d.clone())));
    let ours = e.table().get(&NodeId(5)).expect("own entry");
    assert!(ours.na.version > d.version, "announced past it");
    assert!(ours.na.neighbors.iter().all(|n| n.id != NodeId(66)));
}

/// Asking for whole announcements draws no more than commands may: a
/// peer asking for a fat one a hundred thousand times gets the link's
/// answer budget, not 1.6 GB.
#[test]
fn wants_draw_no_more_than_the_links_answer_budget() {
    let mut e = engine(5, Config::default());
    link_minor(&mut e, 1, 9, true);
    let mut fat = na(20, 1, &[9]);
    for k in 0..60 {
        fat.record.tags.insert(format!("k{k}"), "v".repeat(250));
    }
    let each = limits::na_bytes(&fat) as u64;
    e.frame(now(100), 1, PeerMsg::Na(Arc::new(fat)));
    e.take_actions();
    let mut answered = 0u64;
    for _ in 0..100_000 {
        e.frame(now(200), 1, PeerMsg::Want { id: NodeId(20) });
        answered += sent(&e.take_actions(), 1).len() as u64;
    }
    assert!(answered > 0);
    assert!(
        answered * each <= limits::ANSWER_RATE.burst + each,
        "{answered} answers of {each} bytes"
    );
}

/// Changes of made-up nodes ask for each once, count as new nodes, and
/// a link bringing more than a link may is shed.
#[test]
fn changes_of_made_up_nodes_shed_their_link() {
    let mut e = engine(5, Config::default());
    link_minor(&mut e, 1, 9, true);
    e.take_actions();
    let burst = limits::NEW_NODE_RATE.burst as u128;
    let mut asked = 0;
    for id in 0..burst + 10 {
        e.frame(
            now(100),
            1,
            PeerMsg::Change(change(1000 + id, 1, 2, &[9], &[])),
        );
        let a = e.take_actions();
        asked += wants(&a, 1);
        if !closed(&a).is_empty() {
            break;
        }
    }
    assert!(asked as u128 <= burst, "{asked} wants");
    assert!(e.links.is_empty(), "the link was shed");
}
