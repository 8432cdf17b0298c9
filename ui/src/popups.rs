//! The windows drawn over the table: a node's details, the help, and the
//! y/n prompts.

use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Borders, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::view::{cell, seen, Columns, VisibleRow};
use crate::{App, Confirm};

fn popup(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub(crate) fn draw_details(f: &mut Frame, app: &App, area: Rect) {
    let Some(n) = app.selected_node() else { return };
    let na = |x: &Option<String>| x.clone().unwrap_or_else(|| "N/A".into());
    let list = |v: &[String]| {
        if v.is_empty() {
            "none".to_string()
        } else {
            v.join(", ")
        }
    };
    let tags: Vec<String> = n.tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let parent = n
        .parent
        .as_ref()
        .map(|p| app.name_of(p))
        .unwrap_or_else(|| "-".into());
    // The table's cells, for a row of this node alone.
    let row = VisibleRow {
        id: n.id.clone(),
        depth: 0,
        folded: 0,
    };
    let lines = vec![
        format!("name:         {}", n.name),
        format!("id:           {}", n.id),
        format!(
            "status:       {} (last seen {} ago)",
            n.status.as_str(),
            seen(app, n)
        ),
        format!(
            "kind:         {}{}",
            n.kind,
            if n.deadend { " (deadend)" } else { "" }
        ),
        format!("internal ip:  {}", na(&n.internal_ip)),
        format!("public ip:    {}", na(&n.public_ip)),
        format!("addresses:    {}", list(&n.addrs)),
        format!("seen as:      {}", list(&n.seen_as)),
        format!("tags:         {}", list(&tags)),
        format!("parent:       {parent}"),
        format!(
            "hops:         {}",
            n.hops.map_or("-".into(), |h| h.to_string())
        ),
        format!("rtt:          {}", cell(app, n, &row, Columns::Rtt)),
        format!("uptime:       {}", cell(app, n, &row, Columns::Uptime)),
        format!("version:      {}", n.version),
        format!("os:           {}", n.os),
    ];
    let r = popup(area, 72, lines.len() as u16 + 2);
    f.render_widget(Clear, r);
    let text: Vec<Line> = lines.into_iter().map(Line::from).collect();
    let block = Block::default()
        .borders(Borders::ALL)
        .title(format!(" {} (Esc closes) ", n.name));
    f.render_widget(
        Paragraph::new(text).block(block).wrap(Wrap { trim: false }),
        r,
    );
}

/// The help screen's lines.
pub const HELP: &[&str] = &[
    "↑ ↓  j k       move",
    "PgUp PgDn      page",
    "g G  Home End  first, last",
    "Enter          details of the selected node",
    "t              tree / flat list",
    "s              sort by name, last seen, kind",
    "S              reverse the sort",
    "/              filter by name, address or tag (Esc clears)",
    "p              ping the selected node",
    "x              stop the selected node (asks first)",
    "f              forget a node that is not alive (asks first)",
    "- +            fold, unfold the subtree",
    "?              this help",
    "q Esc Ctrl-C   quit",
];

pub(crate) fn draw_help(f: &mut Frame, area: Rect) {
    let r = popup(area, 64, HELP.len() as u16 + 2);
    f.render_widget(Clear, r);
    let text: Vec<Line> = HELP.iter().map(|l| Line::from(*l)).collect();
    f.render_widget(
        Paragraph::new(text).block(Block::default().borders(Borders::ALL).title(" keys ")),
        r,
    );
}

pub(crate) fn draw_confirm(f: &mut Frame, app: &App, c: &Confirm, area: Rect) {
    let q = match c {
        Confirm::Stop(id) => format!("stop {}? its daemon will exit (y/n)", app.name_of(id)),
        Confirm::Forget(id) => format!("forget {} on every node? (y/n)", app.name_of(id)),
    };
    let r = popup(area, q.chars().count() as u16 + 4, 3);
    f.render_widget(Clear, r);
    f.render_widget(
        Paragraph::new(q).block(Block::default().borders(Borders::ALL).title(" confirm ")),
        r,
    );
}
