//! Repeated log lines held to a rate: each place in the code that logs
//! may write [`RATE`] lines a second (after a burst); past that its lines
//! are counted, not written, and every [`REPORT`] one line says how many
//! were left out and from where.
//!
//! Why: a peer flooding fake nodes, or one node flapping, made a line per
//! node per change: 325 MB of log in seconds. Per place, not overall, so
//! a flood of "new node" lines never hides the one line that says a real
//! link went down.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use tracing::callsite::Identifier;
use tracing::Metadata;

use crate::engine::limits::{Bucket, Rate};

/// Lines a second one place may log, and at once.
pub const RATE: Rate = Rate {
    per_s: 20,
    burst: 200,
};

/// How often the lines left out are reported.
pub const REPORT: Duration = Duration::from_secs(10);

struct Place {
    bucket: Bucket,
    /// `file:line`, for the report.
    at: String,
}

struct State {
    start: Instant,
    places: HashMap<Identifier, Place>,
    reported: Instant,
}

fn state() -> &'static Mutex<State> {
    static STATE: OnceLock<Mutex<State>> = OnceLock::new();
    STATE.get_or_init(|| {
        Mutex::new(State {
            start: Instant::now(),
            places: HashMap::new(),
            reported: Instant::now(),
        })
    })
}

/// Whether an event from `meta` may be written now (spans always may).
pub fn allow(meta: &Metadata<'_>) -> bool {
    if !meta.is_event() {
        return true;
    }
    let Ok(mut st) = state().lock() else {
        return true;
    };
    let now_ms = st.start.elapsed().as_millis() as u64;
    let place = st.places.entry(meta.callsite()).or_insert_with(|| Place {
        bucket: Bucket::default(),
        at: format!(
            "{}:{}",
            meta.file().unwrap_or("?"),
            meta.line().unwrap_or(0)
        ),
    });
    place.bucket.take(RATE, now_ms, 1)
}

/// Lines left out since the last report, by place, once every [`REPORT`]
/// (empty in between).
pub fn left_out() -> Vec<(String, u64)> {
    let Ok(mut st) = state().lock() else {
        return Vec::new();
    };
    if st.reported.elapsed() < REPORT {
        return Vec::new();
    }
    st.reported = Instant::now();
    let mut out: Vec<(String, u64)> = st
        .places
        .values_mut()
        .filter_map(|p| {
            let n = p.bucket.refused();
            (n > 0).then(|| (p.at.clone(), n))
        })
        .collect();
    out.sort();
    out
}

/// Logs what was left out, if it is time to.
pub fn report() {
    for (at, n) in left_out() {
        tracing::warn!(
            "{n} log lines from {at} left out in the last {} s (more than {} a second)",
            REPORT.as_secs(),
            RATE.per_s
        );
    }
}
