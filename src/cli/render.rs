//! Turning answers into the text the seed promised.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write;

use crate::wire::ctl::{Answer, Body, Command, InfoView, NodeView, Outcome, Reached, Status};
use crate::wire::peer::NodeId;

/// Escapes (in place) control characters in one string from the network.
fn c(s: &mut String) {
    if let std::borrow::Cow::Owned(clean) = crate::text::clean(s) {
        *s = clean;
    }
}

fn c_opt(s: &mut Option<String>) {
    if let Some(s) = s {
        c(s);
    }
}

fn clean_node(n: &mut NodeView) {
    c(&mut n.name);
    c_opt(&mut n.internal_ip);
    c_opt(&mut n.public_ip);
    n.addrs.iter_mut().for_each(c);
    n.seen_as.iter_mut().for_each(c);
    c(&mut n.kind);
    c(&mut n.os);
    c(&mut n.version);
    let tags = std::mem::take(&mut n.tags);
    n.tags = tags
        .into_iter()
        .map(|(mut k, mut v)| {
            c(&mut k);
            c(&mut v);
            (k, v)
        })
        .collect();
}

/// `o` with every text that came from the network escaped
/// ([`crate::text::clean`]), before it is printed as text. Field by
/// field: a new text field in the wire types must be added here.
pub fn clean_outcome(mut o: Outcome) -> Outcome {
    for r in &mut o.answers {
        let a = &mut r.answer;
        c(&mut a.name);
        c_opt(&mut a.addr);
        match &mut a.body {
            Body::List { nodes } => nodes.iter_mut().for_each(clean_node),
            Body::Info(i) => {
                clean_node(&mut i.node);
                c(&mut i.os);
                for l in &mut i.links {
                    c(&mut l.name);
                    c(&mut l.addr);
                }
            }
            Body::Joined {
                addr, peer_name, ..
            } => {
                c(addr);
                c(peer_name);
            }
            Body::Forgot { name, .. } => c(name),
            Body::Keys { keys } => keys.iter_mut().for_each(c),
            Body::Error { message } => c(message),
            Body::Pong | Body::Trace | Body::Stopping => {}
        }
        r.path.iter_mut().for_each(|h| c(&mut h.name));
    }
    o.missing.iter_mut().for_each(|m| c(&mut m.name));
    o.not_asked.iter_mut().for_each(|m| c(&mut m.name));
    o
}

/// `ev` with every text that came from the network escaped.
pub fn clean_event(mut ev: crate::wire::ctl::Event) -> crate::wire::ctl::Event {
    clean_node(&mut ev.node);
    ev.changed.iter_mut().for_each(c);
    c_opt(&mut ev.via);
    ev.path.iter_mut().for_each(c);
    c(&mut ev.reporter);
    ev
}

/// The seed's list line.
pub fn list_line(n: &NodeView) -> String {
    let na = |x: &Option<String>| x.clone().unwrap_or_else(|| "N/A".into());
    let mut s = format!(
        "{}: internal ip {}, public ip {}, last seen {} seconds ago",
        n.name,
        na(&n.internal_ip),
        na(&n.public_ip),
        n.last_seen_secs
    );
    if n.status != Status::Alive {
        let _ = write!(s, " ({})", n.status.as_str());
    }
    s
}

fn ms(us: u64) -> String {
    format!("{:.2} ms", us as f64 / 1000.0)
}

/// One node's answer as text (without the `responded:` header).
pub fn answer(r: &Reached) -> String {
    let a: &Answer = &r.answer;
    match &a.body {
        Body::Pong => format!(
            "pong from {} ({}) in {}\n",
            a.name,
            a.addr.as_deref().unwrap_or("N/A"),
            ms(r.rtt_us)
        ),
        Body::List { nodes } => nodes.iter().map(|n| list_line(n) + "\n").collect(),
        Body::Trace => trace_path(r),
        Body::Stopping => format!("stopping {}\n", a.name),
        Body::Info(i) => info(i),
        Body::Joined {
            addr, peer_name, ..
        } => format!("{} joined {peer_name} at {addr}\n", a.name),
        Body::Forgot { name, .. } => format!("{} forgot {name}\n", a.name),
        Body::Keys { keys } if keys.is_empty() => {
            "no cluster key: peer traffic is unauthenticated\n".into()
        }
        Body::Keys { keys } => {
            let mut s = format!("keys: {} (initiates)", keys[0]);
            for k in &keys[1..] {
                s.push_str(&format!(", {k}"));
            }
            s + "\n"
        }
        Body::Error { message } => format!("error: {message}\n"),
    }
}

/// The hop-by-hop path to one node.
fn trace_path(r: &Reached) -> String {
    let mut s = String::new();
    for (i, hop) in r.path.iter().enumerate() {
        let link = if i == 0 {
            "(origin)".to_string()
        } else {
            r.path[i - 1]
                .rtt_us
                .map_or("rtt ?".into(), |u| ms(u as u64))
        };
        let _ = writeln!(s, "{:>2}  {:<24} {link}", i + 1, hop.name);
    }
    let _ = writeln!(
        s,
        "round trip {} over {} hop(s)",
        ms(r.rtt_us),
        r.path.len().saturating_sub(1)
    );
    s
}

/// `trace all`: the tree of the paths the flood took. The origin and its
/// direct neighbours stand at the top level, the origin first (so a reader
/// knows where they are), everything reached through a neighbour under it,
/// siblings by name.
pub fn trace_tree(o: &Outcome) -> String {
    let mut names: HashMap<NodeId, String> = HashMap::new();
    let mut parent: HashMap<NodeId, NodeId> = HashMap::new();
    for r in &o.answers {
        names.insert(r.answer.id, r.answer.name.clone());
        let n = r.path.len();
        if n >= 2 {
            parent.insert(r.answer.id, r.path[n - 2].id);
        }
    }
    let mut children: BTreeMap<NodeId, Vec<NodeId>> = BTreeMap::new();
    let mut top: Vec<NodeId> = Vec::new();
    for r in &o.answers {
        let id = r.answer.id;
        match parent.get(&id) {
            Some(p) if *p != o.origin && names.contains_key(p) => {
                children.entry(*p).or_default().push(id)
            }
            _ => top.push(id),
        }
    }
    let by_name = |v: &mut Vec<NodeId>| v.sort_by(|a, b| (&names[a], a).cmp(&(&names[b], b)));
    let mut out = String::new();
    fn walk(
        out: &mut String,
        ids: &[NodeId],
        depth: usize,
        names: &HashMap<NodeId, String>,
        children: &mut BTreeMap<NodeId, Vec<NodeId>>,
        sort: &dyn Fn(&mut Vec<NodeId>),
    ) {
        for id in ids {
            let _ = writeln!(out, "{}|__ {}", "|   ".repeat(depth), names[id]);
            if let Some(mut kids) = children.remove(id) {
                sort(&mut kids);
                walk(out, &kids, depth + 1, names, children, sort);
            }
        }
    }
    by_name(&mut top);
    if let Some(k) = top.iter().position(|id| *id == o.origin) {
        let me = top.remove(k);
        top.insert(0, me);
    }
    walk(&mut out, &top, 0, &names, &mut children, &by_name);
    out
}

fn info(i: &InfoView) -> String {
    let n = &i.node;
    let na = |x: &Option<String>| x.clone().unwrap_or_else(|| "N/A".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut s = String::new();
    let _ = writeln!(s, "name:         {}", n.name);
    let _ = writeln!(s, "id:           {}", n.id);
    let _ = writeln!(
        s,
        "kind:         {}{}",
        n.kind,
        if n.deadend { " (deadend)" } else { "" }
    );
    let _ = writeln!(s, "internal ip:  {}", na(&n.internal_ip));
    let _ = writeln!(s, "public ip:    {}", na(&n.public_ip));
    let _ = writeln!(s, "addresses:    {}", list(&n.addrs));
    let _ = writeln!(s, "seen as:      {}", list(&n.seen_as));
    let _ = writeln!(s, "port:         {}", i.port);
    let tags: Vec<String> = n.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let _ = writeln!(s, "tags:         {}", list(&tags));
    let _ = writeln!(s, "version:      {}", n.version);
    let _ = writeln!(s, "os:           {}", i.os);
    let _ = writeln!(s, "uptime:       {}", daust_ui::age(i.uptime_secs));
    let _ = writeln!(s, "incarnation:  {}", i.incarnation);
    let _ = writeln!(
        s,
        "peer traffic: {}",
        if i.authenticated {
            "authenticated"
        } else {
            "unauthenticated (no cluster key)"
        }
    );
    let c = |k: &str| i.counts.get(k).copied().unwrap_or(0);
    let _ = writeln!(
        s,
        "nodes:        {} alive, {} unreachable, {} left",
        c("alive"),
        c("unreachable"),
        c("left")
    );
    let _ = writeln!(s, "links:        {}", i.links.len());
    for l in &i.links {
        let rtt = l
            .rtt_us
            .map_or("rtt ?".into(), |u| format!("rtt {}", ms(u as u64)));
        let dir = if l.dialled { "dialled" } else { "accepted" };
        let _ = writeln!(s, "  {} {} ({dir}) {rtt}", l.name, l.addr);
    }
    s
}

/// An outcome as the client prints it.
pub struct Rendered {
    /// For stdout.
    pub out: String,
    /// Error lines for stderr (without the `daust: ` prefix).
    pub errors: Vec<String>,
    /// Whether everything succeeded (the exit status).
    pub ok: bool,
}

/// Whether every node asked answered, and none with an error.
pub fn succeeded(o: &Outcome) -> bool {
    o.missing.is_empty()
        && !o
            .answers
            .iter()
            .any(|r| matches!(r.answer.body, Body::Error { .. }))
}

/// The whole outcome as text. With `all`, each node's answer (an error
/// too) stands under its `NAME responded:`, then who did not answer and
/// who was not asked; with one target, an error or a silence is one line
/// on stderr, as every other error.
pub fn outcome(cmd: &Command, all: bool, o: &Outcome) -> Rendered {
    let mut s = String::new();
    let mut errors = Vec::new();
    let seen = |secs: u64| {
        if secs == 0 {
            "alive when asked".to_string()
        } else {
            format!("last seen {secs} seconds ago")
        }
    };
    if all && *cmd == Command::Trace {
        s.push_str(&trace_tree(o));
    } else if all {
        for r in &o.answers {
            let _ = writeln!(s, "{} responded:", r.answer.name);
            s.push_str(&answer(r));
            s.push('\n');
        }
    } else {
        for r in &o.answers {
            match &r.answer.body {
                Body::Error { message } => errors.push(format!("{}: {message}", r.answer.name)),
                _ => s.push_str(&answer(r)),
            }
        }
    }
    for m in &o.missing {
        let line = format!("no answer from {} ({})", m.name, seen(m.last_seen_secs));
        if all {
            let _ = writeln!(s, "{line}");
        } else {
            errors.push(line);
        }
    }
    for n in &o.not_asked {
        let _ = writeln!(
            s,
            "not asked: {} ({}, last seen {} seconds ago)",
            n.name,
            n.status.as_str(),
            n.last_seen_secs
        );
    }
    Rendered {
        out: s,
        errors,
        ok: succeeded(o),
    }
}

/// One event as `daust events` prints it:
/// `TIME EVENT NAME ADDR [via NEIGHBOUR] [(what changed)]`.
pub fn event(ev: &crate::wire::ctl::Event) -> String {
    let mut line = format!(
        "{} {} {} {}",
        crate::time::utc(ev.time_ms),
        ev.event.as_str(),
        ev.node.name,
        ev.node.addr().unwrap_or("-")
    );
    if let Some(v) = &ev.via {
        line.push_str(&format!(" via {v}"));
    }
    if !ev.changed.is_empty() {
        line.push_str(&format!(" ({})", ev.changed.join(", ")));
    }
    line
}

/// `trace all --dot`: the network as Graphviz DOT. Nodes that answered
/// hang below the node they were reached through, the edge labelled with
/// that link's RTT; nodes in the local table that did not answer hang,
/// dashed, below their last known parent. Colours by status.
pub fn dot(o: &Outcome, table: &[crate::wire::ctl::NodeView]) -> String {
    use crate::wire::ctl::Status;
    // A quoted DOT string; a newline becomes DOT's line break.
    let q = |s: &str| {
        let e = s.replace('\\', "\\\\").replace('"', "\\\"");
        format!("\"{}\"", e.replace('\n', "\\n"))
    };
    let mut out = String::from(
        "digraph daust {\n  graph [rankdir=LR, fontname=\"sans-serif\", fontsize=10];\n  \
         node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\", fontsize=10];\n  \
         edge [fontname=\"sans-serif\", fontsize=9];\n",
    );
    let colour = |s: Status| match s {
        Status::Alive => "#b8e0b0",
        Status::Unreachable => "#f2a7a7",
        Status::Left => "#d6d6d6",
    };
    let status: HashMap<NodeId, Status> = table.iter().map(|n| (n.id, n.status)).collect();
    let mut drawn = std::collections::HashSet::new();
    for r in &o.answers {
        let a = &r.answer;
        let st = status.get(&a.id).copied().unwrap_or(Status::Alive);
        let label = format!("{}\n{}", a.name, a.addr.clone().unwrap_or_default());
        let _ = writeln!(
            out,
            "  {} [label={}, fillcolor=\"{}\"];",
            q(&a.id.to_string()),
            q(&label),
            colour(st)
        );
        drawn.insert(a.id);
        let n = r.path.len();
        if n >= 2 {
            let from = &r.path[n - 2];
            let rtt = from.rtt_us.map_or(String::new(), |u| ms(u as u64));
            let _ = writeln!(
                out,
                "  {} -> {} [label={}];",
                q(&from.id.to_string()),
                q(&a.id.to_string()),
                q(&rtt)
            );
        }
    }
    for v in table.iter().filter(|v| !drawn.contains(&v.id)) {
        let label = format!(
            "{}\n{}\n{}",
            v.name,
            v.addr().unwrap_or_default(),
            v.status.as_str()
        );
        let _ = writeln!(
            out,
            "  {} [label={}, fillcolor=\"{}\"];",
            q(&v.id.to_string()),
            q(&label),
            colour(v.status)
        );
        if let Some(p) = v.parent {
            let _ = writeln!(
                out,
                "  {} -> {} [style=dashed, color=\"#c03030\", label={}];",
                q(&p.to_string()),
                q(&v.id.to_string()),
                q(&format!("last seen {} s ago", v.last_seen_secs))
            );
        }
    }
    out.push_str("}\n");
    out
}
