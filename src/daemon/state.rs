//! The state dir: the node's identity, the snapshot of its table, the lock
//! that keeps a second daemon out, and the control socket's home.
//!
//! Every write is atomic (temp file, fsync, rename; the pid file skips
//! the fsync). A corrupt file is moved aside with a warning. A dir that
//! cannot be written degrades to memory-only with a warning: an ephemeral
//! container still runs.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::journal;
use crate::engine::Snapshot;
use crate::wire::peer::NodeId;

/// An open state dir.
pub struct StateDir {
    /// Its path.
    pub path: PathBuf,
    /// False while writes fail (read-only, full): the daemon runs
    /// memory-only and retries now and then (see [`StateDir::save_snapshot`]).
    pub writable: bool,
    _lock: Option<File>,
    /// What the snapshot file and its journal hold together, once this run
    /// wrote them (see [`super::journal`]).
    saved: Option<Arc<Snapshot>>,
    /// Bytes of the snapshot file and of its journal as this run wrote them.
    base_bytes: u64,
    journal_bytes: u64,
}

/// The journal may grow to the snapshot's size, or this, whichever is
/// larger, before the snapshot is written whole again.
pub(super) const MIN_JOURNAL: u64 = 256 * 1024;

/// Why the state dir cannot be used at all.
#[derive(Debug)]
pub enum StateError {
    /// Another daemon holds the lock.
    AlreadyRunning(PathBuf),
    /// Someone else could plant files in it (it is not ours, or others may
    /// write to it): the daemon, maybe root, would follow their symlinks
    /// and adopt their identity.
    Unsafe(String),
}

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StateError::AlreadyRunning(p) => {
                write!(f, "daustd is already running (state dir {})", p.display())
            }
            StateError::Unsafe(m) => f.write_str(m),
        }
    }
}

/// Refuses a state dir that another user could write to, as OpenSSH's
/// StrictModes refuses such a home: it must belong to this user (or root)
/// and be writable by its owner only.
fn check_owner(path: &Path) -> Result<(), StateError> {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::metadata(path) else {
        return Ok(()); // not there: memory-only, nothing to plant in
    };
    let me = crate::sys::uid();
    let (owner, mode) = (m.uid(), m.mode() & 0o7777);
    if owner != me && owner != 0 {
        return Err(StateError::Unsafe(format!(
            "state dir {} belongs to uid {owner}, not to this user (uid {me}) or root: refusing to use it (its files could be planted)",
            path.display()
        )));
    }
    if mode & 0o022 != 0 {
        return Err(StateError::Unsafe(format!(
            "state dir {} is writable by others (mode {mode:o}): refusing to use it; chmod 700 {}",
            path.display(),
            path.display()
        )));
    }
    Ok(())
}

impl StateDir {
    /// Opens (creating, mode 0700) the state dir and takes its lock.
    pub fn open(path: &Path) -> Result<StateDir, StateError> {
        let created = fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(path);
        if let Err(e) = &created {
            tracing::warn!(dir = %path.display(), "state dir cannot be created ({e}); running memory-only");
        }
        check_owner(path)?;
        // A read-only dir still gets locked (flock works on a read-only
        // file), so writes can resume safely once it takes them again.
        let lock_file = path.join("daustd.lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&lock_file)
            .or_else(|_| {
                OpenOptions::new()
                    .read(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&lock_file)
            });
        let lock = match lock {
            Ok(f) => match f.try_lock() {
                Ok(()) => Some(f),
                Err(fs::TryLockError::WouldBlock) => {
                    return Err(StateError::AlreadyRunning(path.to_path_buf()))
                }
                Err(fs::TryLockError::Error(e)) => {
                    tracing::warn!(dir = %path.display(), "cannot lock the state dir ({e}); running memory-only");
                    None
                }
            },
            Err(e) => {
                tracing::warn!(dir = %path.display(), "cannot lock the state dir ({e}); running memory-only");
                None
            }
        };
        let writable = lock.is_some() && probe_writable(path);
        if lock.is_some() && !writable {
            tracing::warn!(dir = %path.display(), "state dir is not writable: running memory-only until it is");
        }
        Ok(StateDir {
            path: path.to_path_buf(),
            writable,
            _lock: lock,
            saved: None,
            base_bytes: 0,
            journal_bytes: 0,
        })
    }

    /// Whether another daemon holds the lock of `path` right now.
    pub fn is_locked(path: &Path) -> bool {
        match File::open(path.join("daustd.lock")) {
            Ok(f) => matches!(f.try_lock(), Err(fs::TryLockError::WouldBlock)),
            Err(_) => false,
        }
    }

    /// Writes `daustd.pid`, for scripts and service managers. Not synced:
    /// it means nothing after a crash, and a daemon starting on a busy
    /// disk should not wait for it.
    pub fn write_pid(&mut self) {
        let pid = format!("{}\n", std::process::id());
        self.write("daustd.pid", pid.as_bytes(), false);
    }

    /// The node id kept in `ident`, created on first start.
    pub fn ident(&mut self) -> NodeId {
        let file = self.path.join("ident");
        match read_nofollow(&file).map(|b| String::from_utf8_lossy(&b).into_owned()) {
            Ok(s) => match s.trim().parse::<NodeId>() {
                Ok(id) => return id,
                Err(e) => {
                    tracing::warn!("corrupt ident file: {e}");
                    self.move_aside(&file);
                }
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!(file = %file.display(), "cannot read ident: {e}"),
        }
        let id = NodeId(crate::sys::random_u128());
        self.write("ident", format!("{id}\n").as_bytes(), true);
        id
    }

    /// The snapshot of the last run, if there is a readable one: the
    /// snapshot file with its journal's lines applied.
    pub fn load_snapshot(&mut self) -> Option<Snapshot> {
        let file = self.path.join("snapshot.json");
        let bytes = match read_nofollow(&file) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(file = %file.display(), "cannot read the snapshot: {e}");
                return None;
            }
        };
        let mut snap: Snapshot = match serde_json::from_slice(&bytes) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(file = %file.display(), "corrupt snapshot ({e}); starting with an empty table");
                self.move_aside(&file);
                return None;
            }
        };
        let journal = self.path.join(JOURNAL);
        match read_nofollow(&journal) {
            Ok(lines) => {
                let (applied, cut) = journal::replay(&mut snap, &lines);
                if cut {
                    tracing::warn!(file = %journal.display(), "the snapshot's journal ends in a line cut short (a crash while saving); {applied} changes before it applied");
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(file = %journal.display(), "cannot read the snapshot's journal: {e}");
            }
        }
        Some(snap)
    }

    /// Saves the snapshot: what changed since the last save, appended to
    /// the journal, or (the first time in a run, or once the journal has
    /// grown past the snapshot) the whole of it, atomically. Returns
    /// whether it is on disk; the caller retries a failed one later (the
    /// disk may get room again).
    pub fn save_snapshot(&mut self, snap: &Arc<Snapshot>) -> bool {
        if self.append_change(snap) {
            return true;
        }
        // The journal goes just before the new snapshot takes the old
        // one's place: a crash between the two leaves the old snapshot
        // alone (older, whole), never the new one with stale changes.
        let journal = self.path.join(JOURNAL);
        let drop_journal = || match fs::remove_file(&journal) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
        // Streamed to the file: a big table is not held twice, as
        // structures and as one string of JSON.
        let fill = |f: &mut File| {
            let mut w = io::BufWriter::new(f);
            serde_json::to_writer(&mut w, snap).map_err(io::Error::other)?;
            w.flush()
        };
        if !self.write_then(SNAPSHOT, &fill, true, &drop_journal) {
            self.saved = None;
            return false;
        }
        self.base_bytes = fs::metadata(self.path.join(SNAPSHOT)).map_or(0, |m| m.len());
        self.journal_bytes = 0;
        self.saved = Some(Arc::clone(snap));
        true
    }

    /// Appends what changed since the last save to the journal, if this
    /// run saved before and the journal has room; says whether it did.
    fn append_change(&mut self, snap: &Arc<Snapshot>) -> bool {
        let Some(saved) = &self.saved else {
            return false;
        };
        let change = journal::diff(saved, snap);
        // A change of over half the nodes (a network forming) costs what
        // the whole does: write the whole, rather than both.
        if (change.upsert.len() + change.patch.len()) * 2 > snap.nodes.len() {
            return false;
        }
        let mut line = match serde_json::to_vec(&change) {
            Ok(l) => l,
            Err(_) => return false,
        };
        line.push(b'\n');
        let room = self.base_bytes.max(MIN_JOURNAL);
        if self.journal_bytes + line.len() as u64 > room || self._lock.is_none() {
            return false;
        }
        match append(&self.path.join(JOURNAL), &line) {
            Ok(()) => {
                self.journal_bytes += line.len() as u64;
                self.saved = Some(Arc::clone(snap));
                true
            }
            // The whole snapshot next (a line may be cut short).
            Err(_) => {
                self.saved = None;
                false
            }
        }
    }

    /// Writes `name` atomically (and `durable`: synced before and after
    /// the rename). The first failure turns on memory-only
    /// with one warning, the first success after it turns it off with one
    /// line; what was on disk before stays intact either way. Without the
    /// lock nothing is written: another daemon may own the dir.
    fn write(&mut self, name: &str, data: &[u8], durable: bool) -> bool {
        self.write_with(name, &|f| f.write_all(data), durable)
    }

    /// As [`StateDir::write`], the content written by `fill`.
    fn write_with(&mut self, name: &str, fill: &Fill, durable: bool) -> bool {
        self.write_then(name, fill, durable, &|| Ok(()))
    }

    /// As [`StateDir::write_with`], doing `before` once the new content is
    /// safely in its temp file, just before it takes the old one's place.
    fn write_then(&mut self, name: &str, fill: &Fill, durable: bool, before: &Before) -> bool {
        if self._lock.is_none() {
            return false;
        }
        match replace(&self.path.join(name), fill, durable, before) {
            Ok(()) => {
                if !self.writable {
                    tracing::info!(dir = %self.path.display(), "the state dir takes writes again: saving state");
                    self.writable = true;
                }
                true
            }
            Err(e) => {
                if self.writable {
                    tracing::warn!(dir = %self.path.display(), "cannot write {name} ({e}); running memory-only until it can, the last saved state is kept");
                    self.writable = false;
                }
                false
            }
        }
    }

    fn move_aside(&self, file: &Path) {
        let mut aside = file.as_os_str().to_owned();
        aside.push(".corrupt");
        if let Err(e) = fs::rename(file, &aside) {
            tracing::warn!(file = %file.display(), "cannot move the corrupt file aside: {e}");
        }
    }
}

fn probe_writable(dir: &Path) -> bool {
    replace(&dir.join(".probe"), &|_| Ok(()), false, &|| Ok(())).is_ok()
        && fs::remove_file(dir.join(".probe")).is_ok()
}

/// Temp file, rename; if `durable`, fsync before the rename and of the dir
/// after. On failure the temp file goes (a full disk must not fill up
/// further) and `path` is untouched.
/// Reads a file of the state dir, refusing a symlink in its place.
fn read_nofollow(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    let mut buf = Vec::new();
    f.read_to_end(&mut buf)?;
    Ok(buf)
}

/// Writes a file's content.
type Fill<'a> = dyn Fn(&mut File) -> io::Result<()> + 'a;

/// Done just before a rename.
type Before<'a> = dyn Fn() -> io::Result<()> + 'a;

/// The snapshot file and its journal, in the state dir.
pub(super) const SNAPSHOT: &str = "snapshot.json";
pub(super) const JOURNAL: &str = "snapshot.journal";

/// Appends `line` to `path` (created mode 0600, never through a symlink)
/// and syncs it.
pub(super) fn append(path: &Path, line: &[u8]) -> io::Result<()> {
    let mut f = OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)?;
    f.write_all(line)?;
    f.sync_data()
}

fn replace(path: &Path, fill: &Fill, durable: bool, before: &Before) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let r = write_then_rename(&tmp, path, fill, durable, before);
    if r.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    r
}

fn write_then_rename(
    tmp: &Path,
    path: &Path,
    fill: &Fill,
    durable: bool,
    before: &Before,
) -> io::Result<()> {
    {
        // A new file, never one that is there (a planted symlink): rename
        // replaces the name itself, it does not follow it.
        let _ = fs::remove_file(tmp);
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(tmp)?;
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        fill(&mut f)?;
        if durable {
            f.sync_all()?;
        }
    }
    before()?;
    fs::rename(tmp, path)?;
    if let Some(dir) = path.parent().filter(|_| durable) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
/// How often a state dir that refused a write is tried again.
const PERSIST_RETRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Writes snapshots as they come; only the latest matters. While the
/// state dir refuses writes (read-only, full) the latest is kept and tried
/// again every [`PERSIST_RETRY`], with or without news.
pub fn writer(
    mut dir: StateDir,
    mut rx: tokio::sync::watch::Receiver<Option<Arc<crate::engine::Snapshot>>>,
) {
    let mut pending = None;
    let mut next_try = std::time::Instant::now();
    loop {
        let closed = if pending.is_none() {
            block_on(rx.changed()).is_err()
        } else {
            // Waiting to retry: news replaces the pending snapshot.
            let wait = next_try.saturating_duration_since(std::time::Instant::now());
            matches!(
                block_on(tokio::time::timeout(wait, rx.changed())),
                Ok(Err(_))
            )
        };
        if let Some(snap) = rx.borrow_and_update().clone() {
            pending = Some(snap);
        }
        if closed || std::time::Instant::now() >= next_try {
            if let Some(snap) = pending.take() {
                if !dir.save_snapshot(&snap) {
                    pending = Some(snap);
                    next_try = std::time::Instant::now() + PERSIST_RETRY;
                }
            }
        }
        if closed {
            break;
        }
    }
}

/// Blocks the (blocking-pool) thread on a future.
fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Handle::current().block_on(f)
}
