//! Hubs over real daemons: a docker host whose containers all start at
//! once (after a reboot), every one phoning home to it. Addresses
//! 127.0.38.x.

mod common;

use std::time::Duration;

use common::*;

/// How many nodes `d` sees alive.
fn alive(d: &Daemon) -> usize {
    let o = d.client(&["list", "--json", "--timeout", "10s"]);
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .ok()
        .and_then(|v| {
            let nodes = v["answers"][0]["answer"]["body"]["nodes"]
                .as_array()?
                .clone();
            Some(nodes.iter().filter(|n| n["status"] == "alive").count())
        })
        .unwrap_or(0)
}

/// 150 nodes phoning home to one hub, started at once: some of them kept
/// an old version of the hub's announcement for good (13 of 150 seen
/// alive), since the hub's changes to them were queued behind a change
/// the whole announcement they asked for could not replace, and nothing
/// asked again.
#[test]
fn a_hub_and_150_nodes_started_at_once_all_see_all() {
    let n = 150;
    let hub_ip = "127.0.38.1".to_string();
    let mut specs = vec![("hub".to_string(), hub_ip.clone(), Vec::new())];
    for i in 0..n {
        let extra = vec!["-k".to_string(), hub_ip.clone()];
        specs.push((format!("c{i:03}"), format!("127.0.38.{}", i + 2), extra));
    }
    let ds = Daemon::start_all(&specs);
    let all = n + 1;
    for d in &ds {
        assert!(
            wait_for(Duration::from_secs(90), || alive(d) == all),
            "{} sees {} of {all} alive; log:\n{}",
            d.name,
            alive(d),
            d.log()
        );
    }
}
