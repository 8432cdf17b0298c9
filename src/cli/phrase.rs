//! The phrase language: `daust [options] WORDS…`, where the words hold one
//! command and, anywhere before or after it, `remote TARGET` or `all`.
//! Options may stand anywhere too.

use std::path::PathBuf;
use std::time::Duration;

use crate::wire::ctl::{Command, Target};

/// A parsed command line.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    /// What to do.
    pub verb: Verb,
    /// Where.
    pub target: Target,
    /// `--json`.
    pub json: bool,
    /// `--timeout`.
    pub timeout: Duration,
    /// `--state-dir`.
    pub state_dir: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `-v`.
    pub verbose: u8,
    /// `top --once`.
    pub once: bool,
    /// `top --width N`.
    pub width: Option<u16>,
    /// `trace all --dot`.
    pub dot: bool,
}

/// What the phrase asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Verb {
    /// Send a command to the daemon.
    Run(Command),
    /// Print help (for one command if named).
    Help(Option<String>),
    /// Print the version.
    Version,
    /// The live view.
    Top,
    /// Stream membership events.
    Events,
    /// Print a new cluster key.
    Keygen,
}

/// A phrase that cannot be understood: the message names the bad word.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageError(pub String);

/// Default time to wait for answers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// The commands: word, arguments, one-line summary.
pub const COMMANDS: &[(&str, &str, &str)] = &[
    ("ping", "", "round trip to the node through the overlay"),
    (
        "list",
        "",
        "the nodes the node knows: address and last seen, itself first",
    ),
    (
        "trace",
        "[--dot]",
        "with all: the tree of the network; with a target: the path to it",
    ),
    (
        "info",
        "",
        "everything about the node: id, kind, addresses, links, uptime",
    ),
    (
        "stop",
        "",
        "the node says goodbye (left) and its daemon exits",
    ),
    (
        "join",
        "ADDR",
        "dial ADDR and keep the link: joins two networks",
    ),
    (
        "forget",
        "NODE",
        "drop an unreachable or left node from every table",
    ),
    (
        "keys",
        "",
        "fingerprints of the cluster keys the node holds",
    ),
    (
        "keygen",
        "",
        "print a new random cluster key (for daustd --key-file)",
    ),
    ("top", "[--once]", "live view of the network tree"),
    (
        "events",
        "[--json]",
        "membership changes as they happen, one line each",
    ),
    ("help", "[COMMAND]", "this help, or one command's"),
];

/// Parses the words after the program name.
pub fn parse(args: &[String]) -> Result<Phrase, UsageError> {
    let mut ps = Parser {
        p: Phrase {
            verb: Verb::Help(None),
            target: Target::Local,
            json: false,
            timeout: DEFAULT_TIMEOUT,
            state_dir: None,
            socket: None,
            verbose: 0,
            once: false,
            width: None,
            dot: false,
        },
        cmd: None,
        help: false,
    };
    let mut it = args.iter();
    while let Some(w) = it.next() {
        if w.starts_with('-') && w.len() > 1 {
            ps.option(w, &mut it)?;
        } else {
            ps.word(w, &mut it)?;
        }
    }
    ps.finish()
}

/// The phrase so far, while its words are read.
struct Parser {
    p: Phrase,
    cmd: Option<Verb>,
    help: bool,
}

impl Parser {
    /// An option (`--json`, `--timeout 2s`, `--timeout=2s`, ...).
    fn option<'a>(
        &mut self,
        w: &str,
        it: &mut impl Iterator<Item = &'a String>,
    ) -> Result<(), UsageError> {
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f, Some(v.to_string())),
            _ => (w, None),
        };
        let mut value = |name: &str| -> Result<String, UsageError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => it
                    .next()
                    .cloned()
                    .ok_or_else(|| UsageError(format!("{name} needs a value"))),
            }
        };
        let p = &mut self.p;
        match flag {
            "--json" => p.json = true,
            "--dot" => p.dot = true,
            "--once" => p.once = true,
            "--width" => {
                let v = value("--width")?;
                let w: u16 = v
                    .parse()
                    .map_err(|_| UsageError(format!("--width {v:?}: want a number of columns")))?;
                if w < 20 {
                    return Err(UsageError(format!("--width {w}: at least 20 columns")));
                }
                p.width = Some(w);
            }
            "-v" | "--verbose" => p.verbose += 1,
            "-vv" => p.verbose += 2,
            "-h" | "--help" => self.help = true,
            "-V" | "--version" => self.cmd = Some(Verb::Version),
            "--timeout" | "-t" => {
                p.timeout = crate::time::parse_duration(&value("--timeout")?)
                    .map_err(|e| UsageError(format!("--timeout: {e}")))?;
                if p.timeout.is_zero() {
                    return Err(UsageError("--timeout: must be more than 0".into()));
                }
            }
            "--state-dir" => p.state_dir = Some(PathBuf::from(value("--state-dir")?)),
            "--socket" => p.socket = Some(PathBuf::from(value("--socket")?)),
            _ => return Err(UsageError(format!("unknown option {w:?}"))),
        }
        Ok(())
    }

    fn set_target(&mut self, t: Target, word: &str) -> Result<(), UsageError> {
        if self.p.target != Target::Local {
            return Err(UsageError(format!("{word:?}: a target was already given")));
        }
        self.p.target = t;
        Ok(())
    }

    /// A word: `remote X`, `all`, the command, or what follows it.
    fn word<'a>(
        &mut self,
        word: &str,
        it: &mut impl Iterator<Item = &'a String>,
    ) -> Result<(), UsageError> {
        match word {
            "remote" => {
                let t = it.next().ok_or_else(|| {
                    UsageError(
                        "\"remote\" needs a target: a node name, id prefix or address".into(),
                    )
                })?;
                self.set_target(Target::Remote(t.clone()), "remote")
            }
            "all" => self.set_target(Target::All, "all"),
            _ if self.cmd.is_some() => self.after_command(word),
            _ => {
                self.cmd = Some(command(word, it)?);
                Ok(())
            }
        }
    }

    /// A word after the command: `trace X`, `help X`, or a mistake.
    fn after_command(&mut self, word: &str) -> Result<(), UsageError> {
        // `trace X` is `trace remote X`.
        if matches!(self.cmd, Some(Verb::Run(Command::Trace))) && self.p.target == Target::Local {
            self.p.target = Target::Remote(word.to_string());
            return Ok(());
        }
        if let Some(Verb::Help(None)) = self.cmd {
            self.cmd = Some(Verb::Help(Some(word.to_string())));
            return Ok(());
        }
        let is_command = COMMANDS.iter().any(|(w, _, _)| *w == word);
        Err(UsageError(match &self.cmd {
            Some(Verb::Run(c)) if !is_command && self.p.target == Target::Local => format!(
                "unexpected word {word:?}; to run {} on {word}: daust remote {word} {}",
                c.word(),
                c.word()
            ),
            _ => format!("unexpected word {word:?}: one command at a time"),
        }))
    }

    /// The phrase as a whole: help wins; local-only commands take no
    /// target; options that go with one command only.
    fn finish(self) -> Result<Phrase, UsageError> {
        let mut p = self.p;
        let local_only = |what: &str| Err(UsageError(format!("{what}: no remote or all")));
        p.verb = match (self.help, self.cmd) {
            (true, Some(Verb::Run(c))) => Verb::Help(Some(c.word().to_string())),
            (true, Some(Verb::Top)) => Verb::Help(Some("top".into())),
            (true, Some(Verb::Events)) => Verb::Help(Some("events".into())),
            (true, Some(Verb::Keygen)) => Verb::Help(Some("keygen".into())),
            (true, _) => Verb::Help(None),
            (false, Some(Verb::Top)) if p.target != Target::Local => {
                return local_only("\"top\" shows the local daemon's view")
            }
            (false, Some(Verb::Events)) if p.target != Target::Local => {
                return local_only("\"events\" streams what the local daemon sees")
            }
            (false, Some(Verb::Keygen)) if p.target != Target::Local => {
                return local_only("\"keygen\" makes a key here, with no daemon")
            }
            (false, Some(a)) => {
                if p.dot && (a != Verb::Run(Command::Trace) || p.target != Target::All || p.json) {
                    return Err(UsageError(
                        "--dot goes with \"trace all\" (and not with --json)".into(),
                    ));
                }
                if (p.once || p.width.is_some()) && a != Verb::Top {
                    return Err(UsageError("--once and --width go with \"top\"".into()));
                }
                a
            }
            (false, None) => return Err(UsageError("no command given".into())),
        };
        Ok(p)
    }
}

/// The command a word names, with its argument if it takes one.
fn command<'a>(word: &str, it: &mut impl Iterator<Item = &'a String>) -> Result<Verb, UsageError> {
    let mut arg = |what: &str| {
        it.next()
            .cloned()
            .ok_or_else(|| UsageError(format!("\"{word}\" needs {what}")))
    };
    Ok(match word {
        "ping" => Verb::Run(Command::Ping),
        "list" | "ls" => Verb::Run(Command::List),
        "trace" => Verb::Run(Command::Trace),
        "info" => Verb::Run(Command::Info),
        "stop" => Verb::Run(Command::Stop),
        "help" => Verb::Help(None),
        "top" => Verb::Top,
        "events" => Verb::Events,
        "keygen" => Verb::Keygen,
        "keys" => Verb::Run(Command::Keys),
        "join" => Verb::Run(Command::Join {
            addr: arg("an address: join HOST[:PORT]")?,
        }),
        "forget" => Verb::Run(Command::Forget {
            node: arg("a node: forget NAME")?,
        }),
        other => return Err(UsageError(format!("unknown command {other:?}"))),
    })
}

/// The usage text.
pub fn usage() -> String {
    let mut s = String::from(
        "usage: daust [options] COMMAND [remote TARGET | all]\n\
         \n\
         Talks to the local daustd and, through it, to one node (remote TARGET)\n\
         or to every node (all). remote and all may stand before or after the\n\
         command. TARGET is a node name, a unique prefix of a name or id, or an\n\
         address; an address no node has is dialled and joins the networks.\n\
         \n\
         commands:\n",
    );
    for (w, a, d) in COMMANDS {
        s.push_str(&format!("  {:<16}{d}\n", format!("{w} {a}").trim_end()));
    }
    s.push_str(
        "\noptions:\n\
         \x20 --json          machine-readable output\n\
         \x20 --timeout DUR   how long to wait for answers (default 5s)\n\
         \x20 --state-dir DIR the local daemon's state dir (or $DAUST_STATE_DIR)\n\
         \x20 --socket PATH   the local daemon's control socket (or $DAUST_SOCKET)\n\
         \x20 -v              say more\n\
         \x20 -h, --help      this help; daust COMMAND --help for one command\n\
         \x20 -V, --version   the version\n\
         \n\
         The daemon: daustd --help (or daust daemon --help).\n",
    );
    s
}

/// Help for one command.
pub fn command_help(word: &str) -> Option<String> {
    let (w, a, d) = COMMANDS.iter().find(|(w, _, _)| *w == word)?;
    let extra = match *w {
        "ping" => "prints: pong from NAME (ADDR) in X.XX ms",
        "list" => {
            "prints: NAME: internal ip IP, public ip IP, last seen N seconds ago\n\
                   with (unreachable) or (left) after nodes that are not alive"
        }
        "trace" => {
            "trace all: the tree of the paths the command took\n\
                    trace X / trace remote X: the hops to X with the RTT of each link\n\
                    trace all --dot: the network as Graphviz DOT (daust trace all --dot | dot -Tsvg > net.svg)"
        }
        "stop" => "all stop: every node stops, the local one last",
        "forget" => "refused for nodes that are alive",
        "top" => "keys: ? in the view; --once prints one frame as text (--width N columns)",
        "events" => {
            "prints: TIME EVENT NAME ADDR [via NEIGHBOUR] [(what changed)]\n\
                     events: joined, updated, unreachable, reachable, left, forgotten;\n\
                     --json: one JSON object per line; ends on Ctrl-C, when daustd stops (exit 0)\n\
                     or when it dies (exit 1)"
        }
        _ => "",
    };
    // Commands that run on the local machine only take no target.
    let target = match *w {
        "top" | "events" | "keygen" | "help" => "",
        _ => " [remote TARGET | all]",
    };
    Some(format!(
        "usage: daust {}{target}\n\n{d}\n{extra}\n",
        format!("{w} {a}").trim_end()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<Phrase, UsageError> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    #[test]
    fn position_free() {
        let a = p("remote 1.2.3.4 list").unwrap();
        let b = p("list remote 1.2.3.4").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.target, Target::Remote("1.2.3.4".into()));
        assert_eq!(p("all list").unwrap(), p("list all").unwrap());
        assert_eq!(p("--json all ping").unwrap(), p("ping all --json").unwrap());
        assert_eq!(
            p("trace node2").unwrap().target,
            Target::Remote("node2".into())
        );
    }

    #[test]
    fn errors_name_the_word() {
        assert!(p("frobnicate").unwrap_err().0.contains("frobnicate"));
        assert!(p("list --bogus").unwrap_err().0.contains("--bogus"));
        assert!(p("list remote").unwrap_err().0.contains("remote"));
        assert!(p("all remote x list").is_err());
        assert!(p("ping list").unwrap_err().0.contains("list"));
        assert!(p("--timeout soon list").unwrap_err().0.contains("soon"));
        assert!(p("").is_err());
    }

    /// `daust ping vm3` said only "one command at a time".
    #[test]
    fn a_stray_word_after_a_command_suggests_remote() {
        let e = p("ping vm3").unwrap_err().0;
        assert!(e.contains("daust remote vm3 ping"), "{e}");
        let e = p("ping list").unwrap_err().0;
        assert!(e.contains("one command at a time"), "{e}");
    }

    /// `keygen remote vm1` ignored the target; help for local-only commands
    /// showed one.
    #[test]
    fn local_only_commands_refuse_and_do_not_show_a_target() {
        assert!(p("keygen remote vm1").is_err());
        assert!(p("all keygen").is_err());
        for w in ["top", "events", "keygen", "help"] {
            let h = command_help(w).unwrap();
            assert!(!h.contains("remote TARGET"), "{w}: {h}");
        }
        assert!(command_help("ping")
            .unwrap()
            .contains("[remote TARGET | all]"));
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p("help").unwrap().verb, Verb::Help(None));
        assert_eq!(
            p("help list").unwrap().verb,
            Verb::Help(Some("list".into()))
        );
        assert_eq!(
            p("list --help").unwrap().verb,
            Verb::Help(Some("list".into()))
        );
        assert_eq!(p("--version").unwrap().verb, Verb::Version);
        // `events --help` printed the general usage.
        for w in ["top", "events", "keygen"] {
            assert_eq!(
                p(&format!("{w} --help")).unwrap().verb,
                Verb::Help(Some(w.into()))
            );
        }
    }
}
