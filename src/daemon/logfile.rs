//! The log file of `-l FILE`: appended to; at the first line of a new day
//! (UTC) the file is renamed `FILE.YYYY-MM-DD` (the day it holds) and a new
//! one begun, keeping the newest [`KEEP`] old files; SIGHUP reopens it, so
//! logrotate and friends can move it away too.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// Old log files kept beside the current one.
pub const KEEP: usize = 7;

/// Wall clock ms, injectable for tests.
pub type Clock = Box<dyn Fn() -> u64 + Send + Sync>;

/// A rotating, reopenable log file.
pub struct LogFile {
    path: PathBuf,
    keep: usize,
    clock: Clock,
    reopen: AtomicBool,
    state: Mutex<Option<(File, u64)>>,
}

impl LogFile {
    /// Opens (creating, mode 0600) `path` for appending.
    pub fn open(path: &Path, keep: usize, clock: Clock) -> io::Result<Arc<LogFile>> {
        let day = clock() / 86_400_000;
        let file = open(path)?;
        Ok(Arc::new(LogFile {
            path: path.to_path_buf(),
            keep,
            clock,
            reopen: AtomicBool::new(false),
            state: Mutex::new(Some((file, day))),
        }))
    }

    /// Reopen the file before the next line (SIGHUP).
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
    }

    fn write_line(&self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self
            .state
            .lock()
            .map_err(|_| io::Error::other("log lock poisoned"))?;
        let today = (self.clock)() / 86_400_000;
        let reopen = self.reopen.swap(false, Ordering::Relaxed);
        let day = st.as_ref().map_or(today, |(_, d)| *d);
        if today != day || reopen || st.is_none() {
            if today != day {
                // Rotation failures must not lose the line: keep writing
                // to whatever can be opened.
                let _ = fs::rename(&self.path, self.rotated(day));
                self.prune();
            }
            *st = open(&self.path).ok().map(|f| (f, today));
        }
        match st.as_mut() {
            Some((f, _)) => f.write(buf),
            None => Ok(buf.len()), // nowhere to write: drop it, do not fail
        }
    }

    /// `FILE.YYYY-MM-DD` for day number `day`.
    fn rotated(&self, day: u64) -> PathBuf {
        let date = crate::time::utc(day * 86_400_000);
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{}", &date[..10]));
        PathBuf::from(p)
    }

    /// Deletes all but the newest `keep` rotated files.
    fn prune(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut old: Vec<PathBuf> = fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .and_then(|n| n.strip_prefix(&prefix))
                    .is_some_and(|d| d.len() == 10 && d.as_bytes()[4] == b'-')
            })
            .collect();
        old.sort();
        let n = old.len().saturating_sub(self.keep);
        for p in &old[..n] {
            let _ = fs::remove_file(p);
        }
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The writer handed to the logger.
pub struct Writer(pub Arc<LogFile>);

impl Write for Writer {
    /// One log line; text from the network in it is escaped
    /// ([`crate::text::clean_log_line`]).
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        self.0
            .write_line(crate::text::clean_log_line(&line, false).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Log lines to stderr, with text from the network escaped (the colour
/// codes of a terminal kept).
struct CleanStderr {
    colours: bool,
}

impl Write for CleanStderr {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let line = String::from_utf8_lossy(buf);
        let clean = crate::text::clean_log_line(&line, self.colours);
        io::stderr().lock().write_all(clean.as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

/// Repeated lines held to a rate (see [`super::lograte`]). Dynamic: asked
/// at every event, not once per place; the level's hint keeps every line
/// below the level off at its place, at no cost.
fn held_to_rate<S: tracing::Subscriber>(
    level: tracing::Level,
) -> impl tracing_subscriber::Layer<S> {
    tracing_subscriber::filter::dynamic_filter_fn(move |m, _| {
        *m.level() <= level && super::lograte::allow(m)
    })
    .with_max_level_hint(level)
}

/// The log file, for SIGHUP to reopen.
pub static LOG: std::sync::OnceLock<std::sync::Arc<LogFile>> = std::sync::OnceLock::new();

pub fn init_logging(
    s: &super::settings::Settings,
) -> Option<tracing_appender::non_blocking::WorkerGuard> {
    let level = match s.args.verbose {
        0 => tracing::Level::INFO,
        1 => tracing::Level::DEBUG,
        _ => tracing::Level::TRACE,
    };
    let detached = std::env::var_os(super::detach::DETACHED_ENV).is_some();
    let file = s
        .args
        .log
        .clone()
        .or_else(|| detached.then(|| s.state_dir.join("daustd.log")));
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_target(false);

    match file {
        Some(path) => {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(std::path::Path::new("."));
            use std::os::unix::fs::DirBuilderExt;
            let _ = std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir);
            let log = match LogFile::open(&path, KEEP, Box::new(crate::time::wall_ms)) {
                Ok(l) => l,
                Err(e) => {
                    eprintln!("daustd: cannot open the log file {}: {e}", path.display());
                    return None;
                }
            };
            let _ = LOG.set(log.clone());
            let (writer, guard) = tracing_appender::non_blocking(Writer(log));
            let _ = builder
                .with_ansi(false)
                .with_writer(writer)
                .finish()
                .with(held_to_rate(level))
                .try_init();
            Some(guard)
        }
        None => {
            use std::io::IsTerminal;
            let ansi = std::io::stderr().is_terminal();
            let _ = builder
                .with_ansi(ansi)
                .with_writer(move || CleanStderr { colours: ansi })
                .finish()
                .with(held_to_rate(level))
                .try_init();
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[test]
    fn rotates_daily_keeps_a_few_and_reopens() {
        let dir = std::env::temp_dir().join(format!("daust-log-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("d.log");
        let now = Arc::new(AtomicU64::new(1_795_651_200_000)); // 2026-11-26 00:00 UTC
        let t = now.clone();
        let log =
            LogFile::open(&path, 2, Box::new(move || t.load(Ordering::Relaxed))).expect("open");
        let mut w = Writer(log.clone());
        w.write_all(b"day one\n").expect("write");
        for _ in 0..3 {
            now.fetch_add(86_400_000, Ordering::Relaxed);
            w.write_all(b"next day\n").expect("write");
        }
        let mut names: Vec<String> = fs::read_dir(&dir)
            .expect("ls")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        // Three rotations (26th, 27th, 28th), two kept.
        assert_eq!(names, ["d.log", "d.log.2026-11-27", "d.log.2026-11-28"]);
        assert_eq!(fs::read_to_string(&path).expect("read"), "next day\n");
        // Moved away by someone else, then SIGHUP: a new file.
        fs::rename(&path, dir.join("moved")).expect("mv");
        log.reopen();
        w.write_all(b"after hup\n").expect("write");
        assert_eq!(fs::read_to_string(&path).expect("read"), "after hup\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
