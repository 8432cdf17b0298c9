//! The view: which rows show (tree or flat, filtered, folded, sorted), which
//! columns fit, and drawing them.
//!
//! Why this file is long: the rows (tree, filter, fold, sort), the columns
//! that fit and the drawing of the screen share the same row and column
//! types; the windows over it are in `popups`.

use std::collections::{HashMap, HashSet};

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table};
use ratatui::Frame;

use crate::{age, App, Mode, Node, Sort, Status};

/// Rows taken by everything but the table: header, column titles, status
/// line, footer.
pub const CHROME_ROWS: usize = 4;

/// One row of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VisibleRow {
    /// The node's id.
    pub id: String,
    /// Depth in the tree (0 in the flat list).
    pub depth: usize,
    /// Children hidden by folding.
    pub folded: usize,
}

fn matches(n: &Node, f: &str) -> bool {
    if f.is_empty() {
        return true;
    }
    let f = f.to_lowercase();
    let hit = |s: &str| s.to_lowercase().contains(&f);
    hit(&n.name)
        || n.internal_ip.as_deref().is_some_and(hit)
        || n.public_ip.as_deref().is_some_and(hit)
        || n.addrs.iter().any(|a| hit(a))
        || n.seen_as.iter().any(|a| hit(a))
        || n.tags.iter().any(|(k, v)| hit(&format!("{k}={v}")))
}

fn order(app: &App, a: &Node, b: &Node) -> std::cmp::Ordering {
    let o = match app.sort {
        Sort::Name => (&a.name, &a.id).cmp(&(&b.name, &b.id)),
        Sort::LastSeen => (
            a.status != Status::Alive,
            std::cmp::Reverse(a.last_seen_ms),
            &a.name,
        )
            .cmp(&(
                b.status != Status::Alive,
                std::cmp::Reverse(b.last_seen_ms),
                &b.name,
            )),
        Sort::Kind => (&a.kind, &a.name).cmp(&(&b.kind, &b.name)),
    };
    if app.reverse {
        o.reverse()
    } else {
        o
    }
}

/// The rows shown, in order: the tree as `trace all` draws it (this node
/// first, then its neighbours at the top level, the rest under the node they are
/// reached through, nodes not alive under their last known parent), or the
/// flat list; filtered (a tree keeps the ancestors of matches) and folded.
pub fn visible_rows(app: &App) -> Vec<VisibleRow> {
    let me = app.me.as_deref();
    let keep: HashSet<&str> = {
        let mut k = HashSet::new();
        for n in app.nodes.values().filter(|n| matches(n, &app.filter)) {
            k.insert(n.id.as_str());
            if app.tree {
                let mut p = n.parent.as_deref();
                let mut guard = 0;
                while let Some(id) = p {
                    if !k.insert(id) || guard > app.nodes.len() {
                        break;
                    }
                    guard += 1;
                    p = app.nodes.get(id).and_then(|x| x.parent.as_deref());
                }
            }
        }
        k
    };
    let mut nodes: Vec<&Node> = app
        .nodes
        .values()
        .filter(|n| keep.contains(n.id.as_str()))
        .collect();
    nodes.sort_by(|a, b| order(app, a, b));
    if !app.tree {
        return nodes
            .into_iter()
            .map(|n| VisibleRow {
                id: n.id.clone(),
                depth: 0,
                folded: 0,
            })
            .collect();
    }
    // Parent of each shown node, as the tree draws it.
    let shown: HashSet<&str> = nodes.iter().map(|n| n.id.as_str()).collect();
    let mut children: HashMap<&str, Vec<&Node>> = HashMap::new();
    let mut top: Vec<&Node> = Vec::new();
    for n in &nodes {
        match n.parent.as_deref() {
            Some(p)
                if Some(p) != me && Some(n.id.as_str()) != me && shown.contains(p) && p != n.id =>
            {
                children.entry(p).or_default().push(n)
            }
            _ => top.push(n),
        }
    }
    // This node first, as `trace all` and `list` have it: the reader sees
    // at once which node they are on.
    if let Some(k) = top.iter().position(|n| Some(n.id.as_str()) == me) {
        let n = top.remove(k);
        top.insert(0, n);
    }
    let mut out = Vec::with_capacity(nodes.len());
    let mut done: HashSet<&str> = HashSet::new();
    fn count(id: &str, children: &HashMap<&str, Vec<&Node>>, seen: &mut HashSet<String>) -> usize {
        let Some(kids) = children.get(id) else {
            return 0;
        };
        let mut n = 0;
        for k in kids {
            if seen.insert(k.id.clone()) {
                n += 1 + count(&k.id, children, seen);
            }
        }
        n
    }
    let mut stack: Vec<(&Node, usize)> = top.iter().rev().map(|n| (*n, 0)).collect();
    while let Some((n, depth)) = stack.pop() {
        if !done.insert(n.id.as_str()) {
            continue;
        }
        let kids = children.get(n.id.as_str());
        let folded = if app.collapsed.contains(&n.id) {
            count(&n.id, &children, &mut HashSet::new())
        } else {
            if let Some(kids) = kids {
                stack.extend(kids.iter().rev().map(|k| (*k, depth + 1)));
            }
            0
        };
        out.push(VisibleRow {
            id: n.id.clone(),
            depth,
            folded,
        });
    }
    // Nodes caught in a cycle of stale parents still show, at the top level.
    for n in nodes {
        if !done.contains(n.id.as_str()) && !is_folded_away(app, n) {
            out.push(VisibleRow {
                id: n.id.clone(),
                depth: 0,
                folded: 0,
            });
        }
    }
    out
}

fn is_folded_away(app: &App, n: &Node) -> bool {
    let mut p = n.parent.as_deref();
    let mut guard = 0;
    while let Some(id) = p {
        if app.collapsed.contains(id) {
            return true;
        }
        guard += 1;
        if guard > app.nodes.len() {
            return false;
        }
        p = app.nodes.get(id).and_then(|x| x.parent.as_deref());
    }
    false
}

/// The columns, in the order they are dropped when the terminal is narrow
/// (last first): name, status and last seen always stay.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Columns {
    /// Name (with the tree).
    Name,
    /// Status word.
    Status,
    /// Last seen.
    LastSeen,
    /// Internal ip.
    Internal,
    /// Kind.
    Kind,
    /// RTT.
    Rtt,
    /// Hops.
    Hops,
    /// Public ip.
    Public,
    /// Uptime.
    Uptime,
    /// Tags.
    Tags,
}

impl Columns {
    const ALL: [Columns; 10] = [
        Columns::Name,
        Columns::Status,
        Columns::LastSeen,
        Columns::Internal,
        Columns::Kind,
        Columns::Rtt,
        Columns::Hops,
        Columns::Public,
        Columns::Uptime,
        Columns::Tags,
    ];

    fn title(&self) -> &'static str {
        match self {
            Columns::Name => "NAME",
            Columns::Status => "STATUS",
            Columns::LastSeen => "SEEN",
            Columns::Internal => "INTERNAL IP",
            Columns::Kind => "KIND",
            Columns::Rtt => "RTT",
            Columns::Hops => "HOPS",
            Columns::Public => "PUBLIC IP",
            Columns::Uptime => "UPTIME",
            Columns::Tags => "TAGS",
        }
    }

    fn width(&self, name_w: u16) -> u16 {
        match self {
            Columns::Name => name_w,
            Columns::Status => 11,
            Columns::LastSeen => 5,
            Columns::Internal => 15,
            Columns::Kind => 9,
            Columns::Rtt => 9,
            Columns::Hops => 4,
            Columns::Public => 15,
            Columns::Uptime => 6,
            Columns::Tags => 20,
        }
    }

    /// The width `cols` take with a name column of `name_w`.
    fn total(cols: &[Columns], name_w: u16) -> u16 {
        cols.iter().map(|x| x.width(name_w) + 1).sum::<u16>()
    }

    /// The columns that fit in `width` with a name column of `name_w`.
    pub fn fitting(width: u16, name_w: u16) -> Vec<Columns> {
        let mut cols: Vec<Columns> = Columns::ALL.to_vec();
        let total = |c: &[Columns]| Columns::total(c, name_w);
        while cols.len() > 3 && total(&cols) > width {
            cols.pop();
        }
        cols
    }
}

fn status_style(s: Status) -> Style {
    match s {
        Status::Alive => Style::default().fg(Color::Green),
        Status::Unreachable => Style::default().fg(Color::Red).add_modifier(Modifier::DIM),
        Status::Left => Style::default()
            .fg(Color::Yellow)
            .add_modifier(Modifier::DIM),
    }
}

/// How long ago the node was last known to be there. An alive node is
/// there now, unless the view lost its daemon: then it was last known to
/// be there when the data stopped coming.
pub(crate) fn seen(app: &App, n: &Node) -> String {
    match (n.status, app.disconnected_ms) {
        (Status::Alive, None) => "0s".into(),
        (Status::Alive, Some(at)) => age(app.now_ms.saturating_sub(at) / 1000),
        _ => age(app.now_ms.saturating_sub(n.last_seen_ms) / 1000),
    }
}

pub(crate) fn cell(app: &App, n: &Node, r: &VisibleRow, c: Columns) -> String {
    let na = |x: &Option<String>| x.clone().unwrap_or_else(|| "N/A".into());
    match c {
        Columns::Name => {
            let fold = if r.folded > 0 {
                format!(" [+{}]", r.folded)
            } else {
                String::new()
            };
            format!("{}{}{}", "  ".repeat(r.depth), n.name, fold)
        }
        Columns::Status => n.status.as_str().into(),
        Columns::LastSeen => seen(app, n),
        Columns::Internal => na(&n.internal_ip),
        Columns::Kind => format!("{}{}", n.kind, if n.deadend { "*" } else { "" }),
        Columns::Rtt => match (n.status, n.rtt_us) {
            (Status::Alive, Some(u)) => format!("{:.2}ms", u as f64 / 1000.0),
            _ => "-".into(),
        },
        Columns::Hops => n.hops.map_or("-".into(), |h| h.to_string()),
        Columns::Public => na(&n.public_ip),
        Columns::Uptime => match n.status {
            Status::Alive if n.started_ms > 0 => {
                age(app.now_ms.saturating_sub(n.started_ms) / 1000)
            }
            _ => "-".into(),
        },
        Columns::Tags => n
            .tags
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(","),
    }
}

/// Draws the whole screen. Pure: the same app gives the same frame.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let chrome = if app.plain { 0 } else { 1 };
    let [header, body, status, footer] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(1),
        Constraint::Length(chrome),
        Constraint::Length(chrome),
    ])
    .areas(area);
    draw_header(f, app, header);
    draw_table(f, app, body);
    if app.plain {
        return;
    }
    let status_style = if app.connected {
        Style::default()
    } else {
        Style::default().fg(Color::Red)
    };
    let line = match &app.mode {
        Mode::Filter => format!("filter: {}▏ (Enter keeps it, Esc clears)", app.filter),
        _ => app.status_line.clone(),
    };
    f.render_widget(Paragraph::new(line).style(status_style), status);
    let keys = "↑↓/jk move  Enter details  t tree/list  s/S sort  / filter  p ping  x stop  f forget  +/- fold  ? help  q quit";
    f.render_widget(
        Paragraph::new(keys).style(Style::default().add_modifier(Modifier::REVERSED)),
        footer,
    );
    match &app.mode {
        Mode::Details => crate::popups::draw_details(f, app, area),
        Mode::Help => crate::popups::draw_help(f, area),
        Mode::Confirm(c) => crate::popups::draw_confirm(f, app, c, area),
        _ => {}
    }
}

fn draw_header(f: &mut Frame, app: &App, area: Rect) {
    let (a, u, l) = app.counts();
    let me = app
        .me
        .as_ref()
        .map(|m| app.name_of(m))
        .unwrap_or_else(|| "?".into());
    let auth = if app.authenticated {
        "authenticated"
    } else {
        "unauthenticated"
    };
    // Pieces of the header, each kept whole: a narrow terminal drops the
    // last ones rather than cutting one mid-word.
    let mut parts: Vec<(String, Style)> = Vec::new();
    if !app.connected {
        let age = match app.disconnected_ms {
            Some(at) => format!(
                ", data from {} ago",
                age(app.now_ms.saturating_sub(at) / 1000)
            ),
            None => String::new(),
        };
        parts.push((
            format!(" disconnected — retrying{age} "),
            Style::default()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ));
    }
    parts.push((
        format!("daust top: {me}"),
        Style::default().add_modifier(Modifier::BOLD),
    ));
    parts.push((format!("{a} alive"), status_style(Status::Alive)));
    parts.push((format!("{u} unreachable"), Style::default().fg(Color::Red)));
    parts.push((format!("{l} left"), Style::default().fg(Color::Yellow)));
    parts.push((format!("peer traffic {auth}"), Style::default()));
    parts.push((
        format!(
            "{} by {}",
            if app.tree { "tree" } else { "list" },
            app.sort.as_str()
        ),
        Style::default(),
    ));
    if !app.filter.is_empty() {
        parts.push((format!("filter \"{}\"", app.filter), Style::default()));
    }
    let mut spans = Vec::new();
    let mut used = 0usize;
    for (i, (text, style)) in parts.into_iter().enumerate() {
        let sep = if i == 0 { "" } else { "  " };
        let w = sep.chars().count() + text.chars().count();
        if i > 0 && used + w > area.width as usize {
            break;
        }
        used += w;
        spans.push(Span::raw(sep));
        spans.push(Span::styled(text, style));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

/// The width of the name column: the longest name with its indent.
fn name_width(app: &App, rows: &[VisibleRow]) -> u16 {
    rows.iter()
        .filter_map(|r| {
            app.nodes
                .get(&r.id)
                .map(|n| 2 * r.depth + n.name.chars().count() + if r.folded > 0 { 6 } else { 0 })
        })
        .max()
        .unwrap_or(4)
        .clamp(4, 40) as u16
}

/// The width at which every column shows: for a frame printed where no
/// terminal says how wide it is (`top --once` into a pipe).
pub fn natural_width(app: &App) -> u16 {
    let rows = visible_rows(app);
    let tags = app
        .nodes
        .values()
        .map(|n| {
            n.tags
                .iter()
                .map(|(k, v)| k.chars().count() + v.chars().count() + 2)
                .sum::<usize>()
        })
        .max()
        .unwrap_or(0)
        .min(1000) as u16;
    let all = Columns::total(&Columns::ALL, name_width(app, &rows));
    all + tags.saturating_sub(Columns::Tags.width(0))
}

fn draw_table(f: &mut Frame, app: &App, area: Rect) {
    let rows = visible_rows(app);
    if rows.is_empty() {
        let msg = if app.nodes.is_empty() {
            if app.connected {
                "no nodes yet"
            } else {
                "waiting for the daemon…"
            }
        } else {
            "no node matches the filter"
        };
        f.render_widget(
            Paragraph::new(msg).style(Style::default().add_modifier(Modifier::DIM)),
            area,
        );
        return;
    }
    let name_w = name_width(app, &rows);
    let cols = Columns::fitting(area.width, name_w);
    let height = area.height.saturating_sub(1) as usize;
    let sel = app.selected_index(&rows).unwrap_or(0);
    let offset = if height == 0 {
        0
    } else {
        sel.saturating_sub(height - 1)
    };
    let body: Vec<Row> = rows
        .iter()
        .enumerate()
        .skip(offset)
        .take(height)
        .filter_map(|(i, r)| {
            let n = app.nodes.get(&r.id)?;
            let cells: Vec<Cell> = cols
                .iter()
                .map(|c| Cell::from(cell(app, n, r, *c)))
                .collect();
            let mut style = status_style(n.status);
            if n.status == Status::Alive {
                style = Style::default();
            }
            if i == sel {
                style = style.add_modifier(Modifier::REVERSED);
            }
            let cells = cells
                .into_iter()
                .zip(&cols)
                .map(|(c, col)| {
                    if *col == Columns::Status {
                        c.style(status_style(n.status))
                    } else {
                        c
                    }
                })
                .collect::<Vec<_>>();
            Some(Row::new(cells).style(style))
        })
        .collect();
    let widths: Vec<Constraint> = cols
        .iter()
        .map(|c| match c {
            // The last column takes what is left: all the tags there is
            // room for.
            Columns::Tags => Constraint::Min(c.width(name_w)),
            _ => Constraint::Length(c.width(name_w)),
        })
        .collect();
    let title = Row::new(cols.iter().map(|c| Cell::from(c.title())))
        .style(Style::default().add_modifier(Modifier::BOLD));
    f.render_widget(
        Table::new(body, widths).header(title).column_spacing(1),
        area,
    );
}

/// One frame as plain text, `width` columns wide and as tall as the rows
/// need (for `daust top --once`).
pub fn render_text(app: &App, width: u16) -> String {
    use ratatui::backend::TestBackend;
    let chrome = if app.plain { 2 } else { CHROME_ROWS + 1 };
    let height = (visible_rows(app).len() + chrome).max(3) as u16;
    let mut term = match ratatui::Terminal::new(TestBackend::new(width.max(20), height)) {
        Ok(t) => t,
        Err(_) => return String::new(),
    };
    if term.draw(|f| draw(f, app)).is_err() {
        return String::new();
    }
    let mut text = buffer_text(term.backend().buffer());
    while text.ends_with("\n\n") {
        text.pop();
    }
    text
}

/// The text of a buffer, one line per row, trailing blanks trimmed.
pub fn buffer_text(buf: &ratatui::buffer::Buffer) -> String {
    let w = buf.area.width as usize;
    let mut out = String::new();
    for (i, c) in buf.content.iter().enumerate() {
        out.push_str(c.symbol());
        if (i + 1) % w == 0 {
            let t = out.trim_end_matches(' ').len();
            out.truncate(t);
            out.push('\n');
        }
    }
    out
}
