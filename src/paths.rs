//! Where things are on the machine: the state dir and the control socket
//! in it. The daemon opens them; the client finds its daemon by them.

use std::path::{Path, PathBuf};

/// The default state dir: `/var/lib/daust` for root, else
/// `$XDG_STATE_HOME/daust` or `~/.local/state/daust`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("DAUST_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    if crate::sys::uid() == 0 {
        return PathBuf::from("/var/lib/daust");
    }
    if let Some(x) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(x).join("daust");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(h) => PathBuf::from(h).join(".local/state/daust"),
        None => PathBuf::from("/tmp/daust"),
    }
}

/// The control socket inside a state dir.
pub fn socket_in(dir: &Path) -> PathBuf {
    dir.join("daustd.sock")
}
