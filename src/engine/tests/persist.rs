//! When the snapshot is saved: soon after a quiet spell, seldom in a burst.

use std::sync::Arc;

use super::*;

/// 500 daemons starting at once each saved its whole table four times a
/// second, and were too busy to keep their heartbeats: links dropped,
/// were redialled, and the network took 20 s to form; once a second, the
/// saves were still a third of their CPU. In a burst of changes the gap
/// between saves doubles (1, 2, 4, then 8 s at most); after a quiet
/// spell, a change is saved at once (after the debounce).
#[test]
fn a_burst_of_changes_is_saved_ever_more_seldom() {
    let mut e = engine(5, Config::default());
    link(&mut e, 1, 9, false, 0);
    let mut saves = Vec::new();
    for k in 0..4000u64 {
        let ms = 10 + k * 10;
        e.frame(
            now(ms),
            1,
            PeerMsg::Na(Arc::new(na(1000 + u128::from(k), 1, &[9]))),
        );
        e.frame(now(ms), 1, PeerMsg::Ping { s: 0, r: None });
        e.tick(now(ms));
        if saved(&mut e) {
            saves.push(ms);
        }
    }
    let gaps: Vec<u64> = saves.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps.windows(2).all(|g| g[1] >= g[0]) && gaps.iter().all(|g| (990..=8010).contains(g)),
        "saved at {saves:?} in 40 s"
    );
    // Once a second would be 40 saves.
    assert!(
        saves.len() <= 7 && gaps.last() >= Some(&7990),
        "saved at {saves:?}"
    );
    // The burst's last save, then quiet, then one change: saved after the
    // debounce.
    let mut quiet = Vec::new();
    for ms in (40_500..70_000).step_by(500) {
        e.frame(now(ms), 1, PeerMsg::Ping { s: 0, r: None });
        e.tick(now(ms));
        if saved(&mut e) {
            quiet.push(ms);
        }
    }
    assert_eq!(quiet, [46_000], "the burst's last save, then none");
    e.frame(now(70_000), 1, PeerMsg::Na(Arc::new(na(90_000, 1, &[9]))));
    e.tick(now(70_300));
    assert!(saved(&mut e));
    // And the next change of a new burst two seconds later, not eight.
    e.frame(now(70_400), 1, PeerMsg::Na(Arc::new(na(90_001, 1, &[9]))));
    e.tick(now(72_300));
    assert!(saved(&mut e));
}

/// Whether the engine asked for a save since it was last asked.
fn saved(e: &mut Engine) -> bool {
    e.take_actions()
        .iter()
        .any(|a| matches!(a, Action::Persist))
}
