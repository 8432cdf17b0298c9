//! `-d`: start the daemon as a child in its own process group and return
//! once it answers on its control socket (or report why it did not).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use super::settings::Settings;
use super::state::StateDir;

pub const DETACHED_ENV: &str = "DAUST_DETACHED";

/// `-d`: start the daemon as a child in its own process group and return
/// once it answers on its control socket (or report why it did not).
pub fn detach(s: &Settings) -> ExitCode {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    if StateDir::is_locked(&s.state_dir) {
        eprintln!(
            "daustd: daustd is already running (state dir {})",
            s.state_dir.display()
        );
        return ExitCode::FAILURE;
    }
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("daustd: cannot find my own binary to detach: {e}");
            return ExitCode::FAILURE;
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
            eprintln!("daustd: cannot start the daemon: {e}");
            return ExitCode::FAILURE;
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
            eprintln!("daustd: the daemon exited during start ({status})");
            return ExitCode::FAILURE;
        }
        if crate::client::ping_socket(&s.socket) {
            return ExitCode::SUCCESS;
        }
        if Instant::now() > deadline {
            eprintln!(
                "daustd: the daemon did not answer on {} within 15 s",
                s.socket.display()
            );
            return ExitCode::FAILURE;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
