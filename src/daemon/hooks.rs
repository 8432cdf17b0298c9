//! `--on-event` hooks: a command run for each membership event, with the
//! facts in environment variables and the event as one JSON line on stdin
//! (as Serf's event handlers). Each hook has its own task and runs its
//! events one at a time, in order, each within a timeout; a slow or failing
//! hook is logged and delays nothing but itself. A hook far behind (its
//! queue full) loses events, with a warning, rather than hold memory.

use std::process::Stdio;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use crate::wire::ctl::{Event, EventKind};

/// Events queued for one hook before new ones are dropped.
const HOOK_QUEUE: usize = 1024;

/// One `--on-event [KINDS=]CMD`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    /// The kinds it wants; empty: all.
    pub kinds: Vec<EventKind>,
    /// Run by `/bin/sh -c`.
    pub cmd: String,
}

impl FromStr for Hook {
    type Err = String;
    /// `CMD`, or `KIND[,KIND...]=CMD` where every KIND is an event word (so
    /// `FOO=1 cmd` is a command, not a filter).
    fn from_str(spec: &str) -> Result<Hook, String> {
        let (kinds, cmd) = match spec.split_once('=') {
            Some((head, cmd)) if !head.is_empty() && !head.contains(' ') => {
                let kinds: Option<Vec<EventKind>> = head.split(',').map(EventKind::parse).collect();
                match kinds {
                    Some(k) => (k, cmd),
                    None if head.chars().all(|c| c.is_ascii_lowercase() || c == ',') => {
                        let words: Vec<&str> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                        return Err(format!(
                            "--on-event {spec:?}: unknown event in {head:?} (events: {})",
                            words.join(", ")
                        ));
                    }
                    None => (Vec::new(), spec),
                }
            }
            _ => (Vec::new(), spec),
        };
        if cmd.trim().is_empty() {
            return Err(format!("--on-event {spec:?}: no command"));
        }
        Ok(Hook {
            kinds,
            cmd: cmd.to_string(),
        })
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct HookStats {
    /// Hook runs finished (any outcome).
    pub runs: AtomicU64,
    /// Runs that failed: non-zero exit, timeout, or not started.
    pub failures: AtomicU64,
    /// Events a hook lost because it was too far behind.
    pub dropped: AtomicU64,
}

/// A running hook: where its events go.
pub struct Runner {
    hook: Hook,
    tx: mpsc::Sender<Event>,
}

/// Starts one task per hook.
pub fn start(hooks: Vec<Hook>, timeout: Duration, stats: Arc<HookStats>) -> Vec<Runner> {
    hooks
        .into_iter()
        .map(|hook| {
            let (tx, rx) = mpsc::channel(HOOK_QUEUE);
            tokio::spawn(run(hook.cmd.clone(), rx, timeout, stats.clone()));
            Runner { hook, tx }
        })
        .collect()
}

/// Hands `ev` to every hook that wants it, never waiting.
pub fn dispatch(runners: &[Runner], ev: &Event, stats: &HookStats) {
    for r in runners {
        if !r.hook.kinds.is_empty() && !r.hook.kinds.contains(&ev.event) {
            continue;
        }
        if r.tx.try_send(ev.clone()).is_err() {
            stats.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(hook = %r.hook.cmd, node = %ev.node.name, "hook too far behind: dropped a {} event", ev.event.as_str());
        }
    }
}

async fn run(cmd: String, mut rx: mpsc::Receiver<Event>, timeout: Duration, stats: Arc<HookStats>) {
    while let Some(ev) = rx.recv().await {
        let r = run_one(&cmd, &ev, timeout).await;
        stats.runs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = r {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(hook = %cmd, node = %format!("{} ({})", ev.node.name, ev.node.addr().unwrap_or("-")), "hook for {} failed: {e}", ev.event.as_str());
        }
    }
}

/// The environment a hook sees.
pub fn env(ev: &Event) -> Vec<(&'static str, String)> {
    let n = &ev.node;
    // `k=v,...` stays unambiguous: `%`, `,` and `=` inside a key or value
    // are written `%25`, `%2C`, `%3D` (a comma in a value forged tags).
    let enc = |s: &str| {
        s.replace('%', "%25")
            .replace(',', "%2C")
            .replace('=', "%3D")
    };
    let tags: Vec<String> = n
        .tags
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect();
    let vars = vec![
        ("DAUST_EVENT", ev.event.as_str().to_string()),
        ("DAUST_NODE_NAME", n.name.clone()),
        ("DAUST_NODE_ID", n.id.to_string()),
        ("DAUST_NODE_ADDR", n.addr().unwrap_or_default().to_string()),
        (
            "DAUST_NODE_PUBLIC_ADDR",
            n.public_ip.clone().unwrap_or_default(),
        ),
        ("DAUST_NODE_STATUS", n.status.as_str().to_string()),
        ("DAUST_NODE_KIND", n.kind.clone()),
        ("DAUST_NODE_TAGS", tags.join(",")),
        ("DAUST_NODE_LAST_SEEN_MS", n.last_seen_ms.to_string()),
        ("DAUST_CHANGED", ev.changed.join(",")),
        ("DAUST_VIA", ev.via.clone().unwrap_or_default()),
        ("DAUST_PATH", ev.path.join(" ")),
        ("DAUST_SELF", ev.reporter.clone()),
        ("DAUST_TIME_MS", ev.time_ms.to_string()),
    ];
    // Text from the network with control characters escaped: a NUL made
    // every hook for the node fail, a newline could forge a line of what
    // the hook writes. The event's JSON on stdin holds the text as it is.
    vars.into_iter()
        .map(|(k, v)| (k, crate::text::clean(&v).into_owned()))
        .collect()
}

async fn run_one(cmd: &str, ev: &Event, timeout: Duration) -> Result<(), String> {
    let json = serde_json::to_string(ev).map_err(|e| e.to_string())? + "\n";
    let mut child = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .envs(env(ev))
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
    let pgid = child.id();
    let stdin = child.stdin.take();
    let stderr = child.stderr.take();
    let work = async {
        if let Some(mut i) = stdin {
            // A hook that does not read its stdin is fine.
            let _ = i.write_all(json.as_bytes()).await;
        }
        let mut err = String::new();
        if let Some(mut e) = stderr {
            let mut buf = Vec::new();
            let _ = (&mut e).take(4096).read_to_end(&mut buf).await;
            err = String::from_utf8_lossy(&buf).trim().to_string();
        }
        (child.wait().await, err)
    };
    match tokio::time::timeout(timeout, work).await {
        Err(_) => {
            // The shell and anything it started.
            if let Some(g) = pgid {
                crate::sys::kill_group(g);
            }
            Err(format!(
                "still running after {} s: killed",
                timeout.as_secs_f64()
            ))
        }
        Ok((Err(e), _)) => Err(e.to_string()),
        Ok((Ok(st), _)) if st.success() => Ok(()),
        Ok((Ok(st), err)) => Err(format!(
            "{st}{}",
            if err.is_empty() {
                String::new()
            } else {
                format!(": {err}")
            }
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        let h: Hook = "echo hi".parse().expect("plain");
        assert!(h.kinds.is_empty());
        let h: Hook = "unreachable,left=notify-send gone"
            .parse()
            .expect("filtered");
        assert_eq!(h.kinds, [EventKind::Unreachable, EventKind::Left]);
        assert_eq!(h.cmd, "notify-send gone");
        let h: Hook = "FOO=1 env".parse().expect("env assignment is a command");
        assert_eq!(h.cmd, "FOO=1 env");
        assert!(h.kinds.is_empty());
        assert!("unreachabel=x".parse::<Hook>().is_err());
        assert!("left=".parse::<Hook>().is_err());
        assert!("".parse::<Hook>().is_err());
    }
}
