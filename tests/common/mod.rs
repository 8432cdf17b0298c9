//! Test harness: real daemons on loopback addresses, each with its own
//! state dir, killed by process id when the test ends.
#![allow(dead_code)]

pub mod peer;

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The binary under test: the one cargo built, or `$DAUST_TEST_BIN` (to
/// run the tests against another build, e.g. an older one to see a
/// regression test fail).
pub fn bin() -> &'static str {
    static BIN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        std::env::var("DAUST_TEST_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_daust").into())
    })
}

/// Generous: CI is a loaded 2-core machine.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// Polls `f` until it holds or `within` passes; returns whether it held.
pub fn wait_for(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
}

/// Exclusive use of some loopback addresses for the life of the value:
/// tests that must use fixed addresses (the seed's session) wait for each
/// other instead of colliding, across threads and processes.
pub struct AddrLock(Vec<File>);

impl AddrLock {
    pub fn take(ips: &[&str]) -> AddrLock {
        let mut ips: Vec<&str> = ips.to_vec();
        ips.sort();
        ips.dedup();
        let files = ips
            .iter()
            .map(|ip| {
                let f = File::create(format!("/tmp/daust-test-{ip}.lock")).expect("lock file");
                f.lock().expect("lock");
                f
            })
            .collect();
        AddrLock(files)
    }
}

/// A fresh, short state dir (Unix socket paths are short).
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let p = PathBuf::from(format!("/tmp/dt-{}-{n}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon run in the foreground by the test.
pub struct Daemon {
    pub name: String,
    pub ip: String,
    pub dir: PathBuf,
    pub args: Vec<String>,
    /// Environment variables for the next [`Daemon::spawn`].
    pub env: Vec<(String, String)>,
    child: Option<Child>,
    _tmp: TempDir,
}

impl Daemon {
    /// Starts `daust daemon --bind IP --name NAME` with its own state dir and
    /// `extra` arguments, and waits until its socket answers.
    pub fn start(name: &str, ip: &str, extra: &[&str]) -> Daemon {
        let mut d = Daemon::unstarted(name, ip, extra);
        d.spawn();
        d
    }

    /// As [`Daemon::start`], with the node id fixed (written to `ident`
    /// first): for tests that need ids in a known order.
    pub fn start_with_id(name: &str, ip: &str, extra: &[&str], id: u128) -> Daemon {
        let mut d = Daemon::unstarted(name, ip, extra);
        std::fs::create_dir_all(&d.dir).expect("state dir");
        std::fs::write(d.dir.join("ident"), format!("{id:032x}\n")).expect("ident");
        d.spawn();
        d
    }

    /// Starts many daemons at once (a docker host's containers after a
    /// reboot), then waits until each socket answers: `(name, ip, extra)`.
    pub fn start_all(specs: &[(String, String, Vec<String>)]) -> Vec<Daemon> {
        let mut ds: Vec<Daemon> = specs
            .iter()
            .map(|(name, ip, extra)| {
                let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
                let mut d = Daemon::unstarted(name, ip, &extra);
                d.launch();
                d
            })
            .collect();
        for d in &mut ds {
            d.wait_up();
        }
        ds
    }

    fn unstarted(name: &str, ip: &str, extra: &[&str]) -> Daemon {
        let tmp = TempDir::new(name);
        Daemon {
            name: name.into(),
            ip: ip.into(),
            dir: tmp.0.join("state"),
            args: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            child: None,
            _tmp: tmp,
        }
    }

    /// (Re)starts the process with the same state dir and arguments.
    pub fn spawn(&mut self) {
        self.launch();
        self.wait_up();
    }

    fn launch(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path())
            .expect("log");
        let child = Command::new(bin())
            .arg("daemon")
            .args(["--bind", &self.ip, "--name", &self.name, "--state-dir"])
            .arg(&self.dir)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn daemon");
        self.child = Some(child);
    }

    fn wait_up(&self) {
        let ok = wait_for(DEADLINE, || self.client(&["info"]).status.success());
        assert!(
            ok,
            "daemon {} did not come up; log:\n{}",
            self.name,
            self.log()
        );
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir
            .parent()
            .unwrap_or(Path::new("/tmp"))
            .join("daemon.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// `daust --state-dir DIR ARGS…`.
    pub fn client(&self, args: &[&str]) -> Output {
        client(&self.dir, args)
    }

    /// stdout of a client call that must succeed.
    pub fn ok(&self, args: &[&str]) -> String {
        let o = self.client(args);
        assert!(
            o.status.success(),
            "daust {args:?} failed: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).into_owned()
    }

    /// The node table as this daemon sees it: name -> status.
    pub fn statuses(&self) -> std::collections::BTreeMap<String, String> {
        let o = self.client(&["list", "--json", "--timeout", "2s"]);
        let mut m = std::collections::BTreeMap::new();
        let Ok(v) = serde_json::from_slice::<serde_json::Value>(&o.stdout) else {
            return m;
        };
        if let Some(nodes) = v["answers"][0]["answer"]["body"]["nodes"].as_array() {
            for n in nodes {
                m.insert(
                    n["name"].as_str().unwrap_or("").to_string(),
                    n["status"].as_str().unwrap_or("").to_string(),
                );
            }
        }
        m
    }

    /// Waits until this daemon lists `name` as `status` ("alive", ...).
    pub fn wait_sees(&self, name: &str, status: &str) {
        assert!(
            wait_for(DEADLINE, || self.statuses().get(name).map(String::as_str)
                == Some(status)),
            "{} never saw {name} {status}: {:?}",
            self.name,
            self.statuses()
        );
    }

    /// The id of this node.
    pub fn id(&self) -> String {
        let o = self.client(&["info", "--json"]);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("info json");
        v["answers"][0]["answer"]["id"]
            .as_str()
            .expect("id")
            .to_string()
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Sends a signal by pid.
    pub fn signal(&self, sig: &str) {
        if let Some(pid) = self.pid() {
            let _ = Command::new("kill")
                .args([&format!("-{sig}"), &pid.to_string()])
                .status();
        }
    }

    /// Waits for the process to exit by itself; returns its status code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let mut code = None;
        let c = self.child.as_mut()?;
        let done = wait_for(within, || match c.try_wait() {
            Ok(Some(s)) => {
                code = Some(s.code().unwrap_or(-1));
                true
            }
            _ => false,
        });
        if done {
            self.child = None;
        }
        code
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(pid) = self.pid() {
            // A SIGSTOPped daemon must be woken to die promptly.
            let _ = Command::new("kill")
                .args(["-CONT", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
        self.kill();
    }
}

/// `daust --state-dir DIR ARGS…`.
pub fn client(dir: &Path, args: &[&str]) -> Output {
    Command::new(bin())
        .arg("--state-dir")
        .arg(dir)
        .args(args)
        .env_remove("DAUST_SOCKET")
        .output()
        .expect("run daust")
}

/// A raw TCP connection to a daemon, for hostile input.
pub fn raw(ip: &str, bytes: &[u8]) -> std::net::TcpStream {
    let mut s = std::net::TcpStream::connect((ip, 4040)).expect("connect");
    s.write_all(bytes).expect("write");
    s
}

/// Reads until the daemon closes `s`; returns what it sent, or None if it
/// kept the connection open past the deadline.
pub fn read_until_closed(s: &mut std::net::TcpStream) -> Option<Vec<u8>> {
    use std::io::{ErrorKind, Read};
    s.set_read_timeout(Some(Duration::from_millis(200))).ok();
    let end = Instant::now() + DEADLINE;
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return Some(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if Instant::now() > end {
                    return None;
                }
            }
            Err(_) => return Some(got),
        }
    }
}

/// One length-prefixed frame around `body`.
pub fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// Runs `daust ARGS…` as user nobody (uid 65534): for the checks that a
/// daemon's control socket refuses other users. Needs root and `setpriv`.
pub fn client_as_nobody(args: &[&std::ffi::OsStr]) -> Output {
    Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", bin()])
        .args(args)
        .output()
        .expect("setpriv is needed for this test")
}

/// `daust events` running against a daemon, attached for sure: it returns
/// once the client said on stderr that the daemon streams to it. Its
/// stdout lines come on `lines`; the rest of stderr is kept for `finish`.
pub struct EventsClient {
    pub child: Child,
    pub lines: std::sync::mpsc::Receiver<String>,
    stderr: std::thread::JoinHandle<String>,
}

impl EventsClient {
    pub fn attach(dir: &Path, json: bool) -> EventsClient {
        use std::io::{BufRead, BufReader, Read};
        let mut child = Command::new(bin())
            .arg("--state-dir")
            .arg(dir)
            .arg("events")
            .args(json.then_some("--json"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("daust events");
        let mut err = BufReader::new(child.stderr.take().expect("stderr"));
        let mut first = String::new();
        let _ = err.read_line(&mut first);
        assert!(
            first.contains("streaming the events"),
            "daust events said {first:?}"
        );
        let stderr = std::thread::spawn(move || {
            let mut rest = String::new();
            let _ = err.read_to_string(&mut rest);
            rest
        });
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        EventsClient {
            child,
            lines,
            stderr,
        }
    }

    /// Waits for the client to end: its exit code and what it said after
    /// attaching.
    pub fn finish(mut self, within: Duration) -> (Option<i32>, String) {
        let mut code = None;
        wait_for(within, || match self.child.try_wait() {
            Ok(Some(s)) => {
                code = s.code();
                true
            }
            _ => false,
        });
        if code.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        (code, self.stderr.join().unwrap_or_default())
    }
}
