//! `-d`: start the daemon as a child in its own process group and return
//! once it answers on its control socket (or report why it did not).

use std::time::{Duration, Instant};

use super::settings::Settings;
use super::state::StateDir;

pub const DETACHED_ENV: &str = "DAUST_DETACHED";

/// `-d`: start the daemon as a child in its own process group and return
/// once it answers on its control socket (or report why it did not).
pub fn detach(s: &Settings) -> Result<(), String> {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    if StateDir::is_locked(&s.state_dir) {
        return Err(format!(
            "daustd is already running (state dir {})",
            s.state_dir.display()
        ));
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            return Err(format!("cannot find my own binary to detach: {e}"));
        }
    };
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().is_some_and(|a| a == "daemon") {
        args.remove(0);
    }
    let mut child = match std::process::Command::new(exe)
        .arg("daemon")
        .args(args)
        .env(DETACHED_ENV, "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .spawn()
    {
        Ok(c) => c,
        Err(e) => {
            return Err(format!("cannot start the daemon: {e}"));
        }
    };
    // Relay what the child says before it is ready (its fatal errors).
    let stderr = child.stderr.take();
    let relay = std::thread::spawn(move || {
        if let Some(mut e) = stderr {
            let mut buf = [0u8; 4096];
            while let Ok(n) = e.read(&mut buf) {
                if n == 0 {
                    break;
                }
                use std::io::Write;
                let _ = std::io::stderr().write_all(&buf[..n]);
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let _ = relay.join();
            return Err(format!("the daemon exited during start ({status})"));
        }
        if crate::client::ping_socket(&s.socket) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "the daemon did not answer on {} within 15 s",
                s.socket.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
