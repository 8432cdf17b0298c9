//! The terminal view behind `daust top`: a view model, the app state, key
//! handling and drawing, in the model-update-view style.
//!
//! This crate knows nothing of sockets or of the daemon's types: the root
//! crate maps the daemon's data into [`Node`]s and feeds [`Msg`]s to
//! [`run`], which is generic over the ratatui `Backend`. [`draw`] is pure.
//!
//! # Layout
//!
//! - this file: the model ([`Node`], [`App`]) and the update ([`App::key`]).
//! - [`view`]: the rows of the tree or the flat list, and [`draw`].
//!
//! Why this file is long: the model and every key's effect on it are the
//! update function of one state; splitting keys from the state would only
//! spread one `match` over two files.

mod popups;
mod view;

/// The terminal crates, for the caller's terminal set-up.
pub use crossterm;
pub use ratatui;

use std::collections::{BTreeMap, HashSet};

use ratatui::backend::Backend;
use ratatui::Terminal;

pub use popups::HELP;
pub use view::{buffer_text, draw, natural_width, render_text, visible_rows, Columns, VisibleRow};

/// A node's status.
#[derive(Copy, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Status {
    /// Reachable now.
    Alive,
    /// Known, no path now.
    #[default]
    Unreachable,
    /// Said goodbye.
    Left,
}

impl Status {
    /// As printed in the status column.
    pub fn as_str(&self) -> &'static str {
        match self {
            Status::Alive => "alive",
            Status::Unreachable => "unreachable",
            Status::Left => "left",
        }
    }
}

/// One node as the view shows it.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Node {
    /// Full id (hex).
    pub id: String,
    /// Name.
    pub name: String,
    /// `host`, `vm` or `container`.
    pub kind: String,
    /// Status.
    pub status: Status,
    /// Internal address.
    pub internal_ip: Option<String>,
    /// Public address.
    pub public_ip: Option<String>,
    /// Every interface address.
    pub addrs: Vec<String>,
    /// Addresses neighbours see it at.
    pub seen_as: Vec<String>,
    /// When last seen, wall clock ms (alive nodes: now).
    pub last_seen_ms: u64,
    /// Round trip from this node along the tree, µs.
    pub rtt_us: Option<u32>,
    /// Hops from this node.
    pub hops: Option<u32>,
    /// Tags.
    pub tags: Vec<(String, String)>,
    /// Parent in the tree (last known one for nodes not alive).
    pub parent: Option<String>,
    /// When its daemon started, wall clock ms.
    pub started_ms: u64,
    /// daust version.
    pub version: String,
    /// Operating system.
    pub os: String,
    /// Forwards nothing for others.
    pub deadend: bool,
}

/// A key, as the app understands it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Key {
    /// Arrow up.
    Up,
    /// Arrow down.
    Down,
    /// Page up.
    PageUp,
    /// Page down.
    PageDown,
    /// Home.
    Home,
    /// End.
    End,
    /// Enter.
    Enter,
    /// Escape.
    Esc,
    /// Backspace.
    Backspace,
    /// Ctrl-C.
    CtrlC,
    /// A printable character.
    Char(char),
}

impl Key {
    /// Maps a crossterm key event (presses only).
    pub fn from_crossterm(k: crossterm::event::KeyEvent) -> Option<Key> {
        use crossterm::event::{KeyCode, KeyEventKind, KeyModifiers};
        if k.kind == KeyEventKind::Release {
            return None;
        }
        Some(match k.code {
            KeyCode::Char('c') if k.modifiers.contains(KeyModifiers::CONTROL) => Key::CtrlC,
            KeyCode::Char(c) => Key::Char(c),
            KeyCode::Up => Key::Up,
            KeyCode::Down => Key::Down,
            KeyCode::PageUp => Key::PageUp,
            KeyCode::PageDown => Key::PageDown,
            KeyCode::Home => Key::Home,
            KeyCode::End => Key::End,
            KeyCode::Enter => Key::Enter,
            KeyCode::Esc => Key::Esc,
            KeyCode::Backspace => Key::Backspace,
            _ => return None,
        })
    }
}

/// How the list is sorted (siblings, in tree mode).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Sort {
    /// By name.
    Name,
    /// Most recently seen first (alive nodes first).
    LastSeen,
    /// By kind, then name.
    Kind,
}

impl Sort {
    fn next(self) -> Sort {
        match self {
            Sort::Name => Sort::LastSeen,
            Sort::LastSeen => Sort::Kind,
            Sort::Kind => Sort::Name,
        }
    }

    /// As shown in the header.
    pub fn as_str(&self) -> &'static str {
        match self {
            Sort::Name => "name",
            Sort::LastSeen => "last seen",
            Sort::Kind => "kind",
        }
    }
}

/// What a confirmation prompt is about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Confirm {
    /// Stop this node.
    Stop(String),
    /// Forget this node.
    Forget(String),
}

/// Which screen is in front.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// The tree or the list.
    Normal,
    /// Typing a filter.
    Filter,
    /// The details pane of the selected node.
    Details,
    /// The help screen.
    Help,
    /// A y/n prompt.
    Confirm(Confirm),
}

/// Something the app asks the outside world to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cmd {
    /// Ping the node with this id.
    Ping(String),
    /// Stop the node with this id.
    Stop(String),
    /// Forget the node with this id.
    Forget(String),
}

/// Everything the loop reacts to.
#[derive(Clone, Debug)]
pub enum Msg {
    /// A key.
    Key(Key),
    /// The terminal was resized.
    Resize,
    /// Time passed: the wall clock now, ms.
    Tick(u64),
    /// The whole table (on connecting).
    Table {
        /// This node's id.
        me: String,
        /// Whether peer traffic is authenticated.
        authenticated: bool,
        /// Every node.
        nodes: Vec<Node>,
    },
    /// Some nodes changed.
    Changed {
        /// New views.
        nodes: Vec<Node>,
        /// Dropped ids.
        removed: Vec<String>,
    },
    /// The daemon went away at this wall clock time, ms (the view keeps
    /// what it had, and says how old it is).
    Disconnected(u64),
    /// A message for the status line.
    Status(String),
    /// Leave (SIGTERM).
    Quit,
}

/// The state of the view.
#[derive(Clone, Debug)]
pub struct App {
    /// Every node by id.
    pub nodes: BTreeMap<String, Node>,
    /// This node's id, once connected.
    pub me: Option<String>,
    /// Whether peer traffic is authenticated.
    pub authenticated: bool,
    /// Whether the daemon is connected.
    pub connected: bool,
    /// When the connection was lost, wall ms: the data is as of then, so
    /// ages of alive nodes count from it.
    pub disconnected_ms: Option<u64>,
    /// One frame as text (`top --once`): no key bar, no status line.
    pub plain: bool,
    /// Wall clock now, ms: ages are computed against it.
    pub now_ms: u64,
    /// Tree (true) or flat list.
    pub tree: bool,
    /// Sort key.
    pub sort: Sort,
    /// Reverse the sort.
    pub reverse: bool,
    /// Filter text.
    pub filter: String,
    /// The screen in front.
    pub mode: Mode,
    /// The selected node's id.
    pub selected: Option<String>,
    /// Collapsed subtrees.
    pub collapsed: HashSet<String>,
    /// The status line.
    pub status_line: String,
    /// Rows per page, from the last draw's size.
    pub page: usize,
    /// Set when the user quits.
    pub quit: bool,
}

impl Default for App {
    fn default() -> Self {
        App {
            nodes: BTreeMap::new(),
            me: None,
            authenticated: false,
            connected: false,
            disconnected_ms: None,
            plain: false,
            now_ms: 0,
            tree: true,
            sort: Sort::Name,
            reverse: false,
            filter: String::new(),
            mode: Mode::Normal,
            selected: None,
            collapsed: HashSet::new(),
            status_line: String::new(),
            page: 20,
            quit: false,
        }
    }
}

impl App {
    /// Applies one event; returns a command for the outside world, if any.
    pub fn update(&mut self, ev: Msg) -> Option<Cmd> {
        match ev {
            Msg::Key(k) => return self.key(k),
            Msg::Resize => {}
            Msg::Tick(now) => self.now_ms = now,
            Msg::Table {
                me,
                authenticated,
                nodes,
            } => {
                self.nodes = nodes.into_iter().map(|n| (n.id.clone(), n)).collect();
                self.me = Some(me);
                self.authenticated = authenticated;
                if !self.connected && !self.status_line.is_empty() {
                    self.status_line = "connected".into();
                }
                self.connected = true;
                self.disconnected_ms = None;
            }
            Msg::Changed { nodes, removed } => {
                for n in nodes {
                    self.nodes.insert(n.id.clone(), n);
                }
                for id in removed {
                    self.nodes.remove(&id);
                }
            }
            Msg::Disconnected(at) => {
                self.connected = false;
                self.disconnected_ms.get_or_insert(at);
                self.now_ms = self.now_ms.max(at);
                self.status_line = "disconnected — retrying".into();
            }
            Msg::Status(s) => self.status_line = s,
            Msg::Quit => self.quit = true,
        }
        None
    }

    /// Counts of nodes by status.
    pub fn counts(&self) -> (usize, usize, usize) {
        let mut c = (0, 0, 0);
        for n in self.nodes.values() {
            match n.status {
                Status::Alive => c.0 += 1,
                Status::Unreachable => c.1 += 1,
                Status::Left => c.2 += 1,
            }
        }
        c
    }

    /// The selected node, if it is still shown.
    pub fn selected_node(&self) -> Option<&Node> {
        let rows = visible_rows(self);
        let i = self.selected_index(&rows)?;
        self.nodes.get(&rows[i].id)
    }

    /// Index of the selection among `rows` (the first row if none).
    pub fn selected_index(&self, rows: &[VisibleRow]) -> Option<usize> {
        if rows.is_empty() {
            return None;
        }
        Some(
            self.selected
                .as_ref()
                .and_then(|s| rows.iter().position(|r| &r.id == s))
                .unwrap_or(0),
        )
    }

    fn select(&mut self, delta: isize) {
        let rows = visible_rows(self);
        let Some(i) = self.selected_index(&rows) else {
            return;
        };
        let j = (i as isize + delta).clamp(0, rows.len() as isize - 1) as usize;
        self.selected = Some(rows[j].id.clone());
    }

    /// Handles one key.
    pub fn key(&mut self, k: Key) -> Option<Cmd> {
        if k == Key::CtrlC {
            self.quit = true;
            return None;
        }
        match self.mode.clone() {
            Mode::Filter => {
                match k {
                    Key::Char(c) => self.filter.push(c),
                    Key::Backspace => {
                        self.filter.pop();
                    }
                    Key::Enter => self.mode = Mode::Normal,
                    Key::Esc => {
                        self.filter.clear();
                        self.mode = Mode::Normal;
                    }
                    _ => {}
                }
                None
            }
            Mode::Details | Mode::Help => {
                match k {
                    Key::Char('q') => self.quit = true,
                    Key::Esc | Key::Enter | Key::Char('?') => self.mode = Mode::Normal,
                    _ => {}
                }
                None
            }
            Mode::Confirm(c) => {
                self.mode = Mode::Normal;
                if k == Key::Char('y') || k == Key::Char('Y') {
                    return Some(match c {
                        Confirm::Stop(id) => Cmd::Stop(id),
                        Confirm::Forget(id) => Cmd::Forget(id),
                    });
                }
                self.status_line = "cancelled".into();
                None
            }
            Mode::Normal => self.normal_key(k),
        }
    }

    fn normal_key(&mut self, k: Key) -> Option<Cmd> {
        let page = self.page.max(1) as isize;
        match k {
            Key::Up | Key::Char('k') => self.select(-1),
            Key::Down | Key::Char('j') => self.select(1),
            Key::PageUp => self.select(-page),
            Key::PageDown => self.select(page),
            Key::Home | Key::Char('g') => self.select(isize::MIN / 2),
            Key::End | Key::Char('G') => self.select(isize::MAX / 2),
            Key::Enter if self.selected_node().is_some() => self.mode = Mode::Details,
            Key::Char('t') => self.tree = !self.tree,
            Key::Char('s') => self.sort = self.sort.next(),
            Key::Char('S') => self.reverse = !self.reverse,
            Key::Char('/') => self.mode = Mode::Filter,
            Key::Esc if !self.filter.is_empty() => self.filter.clear(),
            Key::Esc | Key::Char('q') => self.quit = true,
            Key::Char('?') => self.mode = Mode::Help,
            Key::Char('p') => {
                if let Some(n) = self.selected_node() {
                    let id = n.id.clone();
                    self.status_line = format!("pinging {}…", n.name);
                    return Some(Cmd::Ping(id));
                }
            }
            Key::Char('x') => {
                if let Some(n) = self.selected_node() {
                    self.mode = Mode::Confirm(Confirm::Stop(n.id.clone()));
                }
            }
            Key::Char('f') => {
                if let Some(n) = self.selected_node() {
                    if n.status == Status::Alive {
                        self.status_line = format!(
                            "{} is alive; only unreachable or left nodes can be forgotten",
                            n.name
                        );
                    } else {
                        self.mode = Mode::Confirm(Confirm::Forget(n.id.clone()));
                    }
                }
            }
            Key::Char('-') => {
                if let Some(n) = self.selected_node() {
                    let id = n.id.clone();
                    self.collapsed.insert(id);
                }
            }
            Key::Char('+') => {
                if let Some(n) = self.selected_node() {
                    let id = n.id.clone();
                    self.collapsed.remove(&id);
                }
            }
            _ => {}
        }
        None
    }

    /// The name of a node by id, or the id's start.
    pub fn name_of(&self, id: &str) -> String {
        self.nodes
            .get(id)
            .map_or_else(|| id.chars().take(8).collect(), |n| n.name.clone())
    }
}

/// Runs the view until the user quits: draws, waits for the next event
/// (`next` blocks until there is one, or returns None when the source is
/// gone), updates, and hands commands to `exec`.
pub fn run<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    mut next: impl FnMut() -> Option<Msg>,
    mut exec: impl FnMut(Cmd),
) -> Result<(), B::Error> {
    while !app.quit {
        terminal.draw(|f| {
            draw(f, app);
        })?;
        let size = terminal.size()?;
        app.page = (size.height as usize)
            .saturating_sub(view::CHROME_ROWS)
            .max(1);
        let Some(ev) = next() else { break };
        if let Some(cmd) = app.update(ev) {
            exec(cmd);
        }
    }
    Ok(())
}

/// Seconds as people read them: `0s`, `42s`, `5m`, `3h`, `2d`.
pub fn age(secs: u64) -> String {
    match secs {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86400 => format!("{}h", s / 3600),
        s => format!("{}d", s / 86400),
    }
}

#[cfg(test)]
mod tests;
