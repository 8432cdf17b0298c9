//! The one daust binary: `daustd` (or `daust daemon`) runs the daemon,
//! `daust` the client. Which one is decided by the name it was called by
//! (`daustd` and `daust` are links to one file) or the first word.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args();
    let argv0 = args.next().unwrap_or_default();
    let rest: Vec<String> = args.collect();
    let name = std::path::Path::new(&argv0)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("daust");
    if name.starts_with("daustd") {
        return daust::daemon::main("daustd", &rest);
    }
    match rest.first().map(String::as_str) {
        Some("daemon") => daust::daemon::main("daust daemon", &rest[1..]),
        _ => daust::cli::main(&rest),
    }
}
