//! The terminal view behind `daust top`.
//!
//! This crate will hold the view model, the app state, key handling and
//! drawing. It knows nothing of sockets or of the engine's types: the root
//! crate maps the daemon's data into [`Row`]s. For now it holds the view
//! model only; the live view is built by a later issue.

/// One line of the network tree as the view shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Depth in the tree: 0 for the top level.
    pub depth: usize,
    /// The node's name.
    pub name: String,
    /// `alive`, `unreachable` or `left`.
    pub status: String,
    /// Seconds since the node was last seen (0 while alive).
    pub last_seen_secs: u64,
}
