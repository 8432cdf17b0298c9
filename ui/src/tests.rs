//! Screens on a `TestBackend` and the effect of each key.

use super::*;
use ratatui::backend::TestBackend;

const NOW: u64 = 1_800_000_000_000;

fn node(id: &str, name: &str, parent: Option<&str>, status: Status, seen_secs_ago: u64) -> Node {
    Node {
        id: id.into(),
        name: name.into(),
        kind: if name.starts_with("vm") {
            "vm".into()
        } else {
            "host".into()
        },
        status,
        internal_ip: Some(format!("10.0.0.{}", id.len() + name.len())),
        public_ip: None,
        addrs: vec![],
        seen_as: vec![],
        last_seen_ms: NOW - seen_secs_ago * 1000,
        rtt_us: (status == Status::Alive).then_some(250),
        hops: parent.map(|_| 1),
        tags: vec![("role".into(), name.into())],
        parent: parent.map(String::from),
        started_ms: NOW - 3_600_000,
        version: "0.1.0".into(),
        os: "Linux".into(),
        deadend: false,
    }
}

/// hv1 (this node) - hv2 - vm4 (alive), vm5 (unreachable) ; vm1 left.
fn three_levels() -> App {
    let mut app = App {
        now_ms: NOW,
        ..App::default()
    };
    app.update(Msg::Table {
        me: "a1".into(),
        authenticated: false,
        nodes: vec![
            node("a1", "hv1", None, Status::Alive, 0),
            node("a2", "hv2", Some("a1"), Status::Alive, 0),
            node("b4", "vm4", Some("a2"), Status::Alive, 0),
            node("b5", "vm5", Some("a2"), Status::Unreachable, 42),
            node("c1", "vm1", Some("a1"), Status::Left, 7200),
            node("d1", "ct1", Some("b4"), Status::Alive, 0),
        ],
    });
    app
}

fn screen(app: &App, w: u16, h: u16) -> String {
    let mut t = ratatui::Terminal::new(TestBackend::new(w, h)).unwrap();
    t.draw(|f| draw(f, app)).unwrap();
    buffer_text(t.backend().buffer())
}

fn names(app: &App) -> Vec<(String, usize)> {
    visible_rows(app)
        .into_iter()
        .map(|r| (app.nodes[&r.id].name.clone(), r.depth))
        .collect()
}

#[test]
fn three_level_tree_with_all_statuses() {
    let app = three_levels();
    assert_eq!(
        names(&app),
        vec![
            ("hv1".into(), 0),
            ("hv2".into(), 0),
            ("vm4".into(), 1),
            ("ct1".into(), 2),
            ("vm5".into(), 1),
            ("vm1".into(), 0)
        ]
    );
    let s = screen(&app, 140, 12);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[0].contains("daust top: hv1")
            && lines[0].contains("4 alive")
            && lines[0].contains("1 unreachable")
            && lines[0].contains("1 left")
    );
    assert!(lines[0].contains("unauthenticated"));
    assert!(
        lines[1].starts_with("NAME") && lines[1].contains("STATUS") && lines[1].contains("TAGS")
    );
    assert!(lines[2].starts_with("hv1 ") && lines[2].contains("alive"));
    assert!(lines[4].starts_with("  vm4 "));
    assert!(lines[5].starts_with("    ct1 "));
    assert!(
        lines[6].starts_with("  vm5 ")
            && lines[6].contains("unreachable")
            && lines[6].contains("42s"),
        "{}",
        lines[6]
    );
    assert!(
        lines[7].starts_with("vm1 ") && lines[7].contains("left") && lines[7].contains(" 2h "),
        "{}",
        lines[7]
    );
    assert!(lines[11].contains("q quit"));
    // Colour by status.
    let mut t = ratatui::Terminal::new(TestBackend::new(140, 12)).unwrap();
    t.draw(|f| draw(f, &app)).unwrap();
    let buf = t.backend().buffer();
    let status_x = lines[1].find("STATUS").unwrap() as u16;
    assert_eq!(buf[(status_x, 6)].fg, ratatui::style::Color::Red);
    assert_eq!(buf[(status_x, 7)].fg, ratatui::style::Color::Yellow);
    assert_eq!(buf[(status_x, 3)].fg, ratatui::style::Color::Green);
}

#[test]
fn narrow_terminal_drops_columns_not_rows() {
    let app = three_levels();
    let s = screen(&app, 40, 12);
    let lines: Vec<&str> = s.lines().collect();
    assert!(
        lines[1].contains("NAME") && lines[1].contains("STATUS") && lines[1].contains("SEEN"),
        "{s}"
    );
    assert!(!lines[1].contains("TAGS") && !lines[1].contains("PUBLIC"));
    assert!(lines.iter().all(|l| l.chars().count() <= 40));
    assert!(lines[6].contains("unreachable"));
}

#[test]
fn empty_network() {
    let mut app = App {
        now_ms: NOW,
        ..App::default()
    };
    app.update(Msg::Table {
        me: "a1".into(),
        authenticated: true,
        nodes: vec![],
    });
    let s = screen(&app, 100, 8);
    assert!(s.contains("0 alive") && s.contains("authenticated"));
    assert!(s.contains("no nodes yet"));
}

#[test]
fn details_pane_shows_everything_about_the_node() {
    let mut app = three_levels();
    app.key(Key::Down);
    app.key(Key::Down);
    app.key(Key::Down);
    app.key(Key::Down);
    app.key(Key::Enter);
    assert_eq!(app.mode, Mode::Details);
    let s = screen(&app, 100, 24);
    for want in [
        "vm5",
        "id:           b5",
        "unreachable (last seen 42s ago)",
        "kind:         vm",
        "tags:         role=vm5",
        "parent:       hv2",
        "version:      0.1.0",
    ] {
        assert!(s.contains(want), "details lack {want:?}:\n{s}");
    }
    app.key(Key::Esc);
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn help_screen() {
    let mut app = three_levels();
    app.key(Key::Char('?'));
    let s = screen(&app, 100, 24);
    assert!(s.contains("keys") && s.contains("forget a node that is not alive"));
    app.key(Key::Char('?'));
    assert_eq!(app.mode, Mode::Normal);
}

#[test]
fn confirmation_prompt() {
    let mut app = three_levels();
    app.key(Key::Down);
    assert_eq!(app.key(Key::Char('x')), None);
    assert!(screen(&app, 100, 12).contains("stop hv2? its daemon will exit (y/n)"));
    assert_eq!(app.key(Key::Char('n')), None);
    assert_eq!(app.status_line, "cancelled");
    app.key(Key::Char('x'));
    assert_eq!(app.key(Key::Char('y')), Some(Cmd::Stop("a2".into())));
}

#[test]
fn disconnected_banner() {
    let mut app = three_levels();
    app.update(Msg::Disconnected(NOW));
    let s = screen(&app, 120, 12);
    assert!(s
        .lines()
        .next()
        .unwrap()
        .contains("disconnected — retrying"));
    // The view keeps what it had.
    assert!(s.contains("vm4"));
    app.update(Msg::Table {
        me: "a1".into(),
        authenticated: false,
        nodes: vec![],
    });
    assert!(!screen(&app, 120, 12).contains("disconnected — retrying"));
}

#[test]
fn moving_keys() {
    let mut app = three_levels();
    let sel = |a: &App| a.selected_node().map(|n| n.name.clone()).unwrap();
    assert_eq!(sel(&app), "hv1");
    app.key(Key::Char('j'));
    assert_eq!(sel(&app), "hv2");
    app.key(Key::Down);
    assert_eq!(sel(&app), "vm4");
    app.key(Key::Char('k'));
    app.key(Key::Up);
    app.key(Key::Up);
    assert_eq!(sel(&app), "hv1");
    app.key(Key::Char('G'));
    assert_eq!(sel(&app), "vm1");
    app.key(Key::Char('g'));
    assert_eq!(sel(&app), "hv1");
    app.page = 3;
    app.key(Key::PageDown);
    assert_eq!(sel(&app), "ct1");
    app.key(Key::PageUp);
    assert_eq!(sel(&app), "hv1");
    app.key(Key::End);
    assert_eq!(sel(&app), "vm1");
    app.key(Key::Home);
    assert_eq!(sel(&app), "hv1");
}

#[test]
fn tree_list_sort_and_filter_keys() {
    let mut app = three_levels();
    app.key(Key::Char('t'));
    assert!(!app.tree);
    assert!(names(&app).iter().all(|(_, d)| *d == 0));
    assert_eq!(names(&app)[0].0, "ct1");
    app.key(Key::Char('s'));
    assert_eq!(app.sort, Sort::LastSeen);
    assert_eq!(
        names(&app).last().unwrap().0,
        "vm1",
        "the longest unseen last"
    );
    app.key(Key::Char('s'));
    assert_eq!(app.sort, Sort::Kind);
    app.key(Key::Char('S'));
    assert!(app.reverse);
    app.key(Key::Char('s'));
    assert_eq!(app.sort, Sort::Name);
    app.key(Key::Char('S'));
    app.key(Key::Char('t'));
    app.key(Key::Char('/'));
    assert_eq!(app.mode, Mode::Filter);
    for c in "vm5".chars() {
        app.key(Key::Char(c));
    }
    app.key(Key::Enter);
    // The tree keeps the ancestors of a match.
    assert_eq!(
        names(&app),
        vec![("hv1".into(), 0), ("hv2".into(), 0), ("vm5".into(), 1)]
    );
    app.key(Key::Esc);
    assert!(app.filter.is_empty());
    assert!(!app.quit, "Esc first clears the filter");
    // Filter by address and tag too; Backspace edits.
    app.key(Key::Char('/'));
    for c in "role=ct1x".chars() {
        app.key(Key::Char(c));
    }
    app.key(Key::Backspace);
    app.key(Key::Enter);
    assert_eq!(names(&app).last().unwrap().0, "ct1");
    app.key(Key::Char('/'));
    app.key(Key::Esc);
    assert!(app.filter.is_empty() && app.mode == Mode::Normal);
}

#[test]
fn action_keys() {
    let mut app = three_levels();
    app.key(Key::Down);
    assert_eq!(app.key(Key::Char('p')), Some(Cmd::Ping("a2".into())));
    // Forget refuses an alive node, asks for a dead one.
    assert_eq!(app.key(Key::Char('f')), None);
    assert!(app.status_line.contains("is alive"));
    app.key(Key::Char('G'));
    app.key(Key::Char('f'));
    assert_eq!(app.mode, Mode::Confirm(Confirm::Forget("c1".into())));
    assert_eq!(app.key(Key::Char('y')), Some(Cmd::Forget("c1".into())));
    // Fold and unfold.
    app.key(Key::Char('g'));
    app.key(Key::Char('j'));
    app.key(Key::Char('-'));
    assert_eq!(names(&app).len(), 3);
    assert!(screen(&app, 120, 10).contains("hv2 [+3]"));
    app.key(Key::Char('+'));
    assert_eq!(names(&app).len(), 6);
}

#[test]
fn quit_keys() {
    for k in [Key::Char('q'), Key::Esc, Key::CtrlC] {
        let mut app = three_levels();
        app.key(k);
        assert!(app.quit, "{k:?}");
    }
    let mut app = three_levels();
    app.key(Key::Char('/'));
    app.key(Key::CtrlC);
    assert!(app.quit, "Ctrl-C quits from any mode");
}

#[test]
fn changes_apply_and_selection_follows_the_node() {
    let mut app = three_levels();
    app.key(Key::Char('G'));
    let mut vm5 = app.nodes["b5"].clone();
    vm5.status = Status::Alive;
    app.update(Msg::Changed {
        nodes: vec![vm5],
        removed: vec!["d1".into()],
    });
    assert_eq!(app.counts(), (4, 0, 1));
    assert_eq!(app.selected_node().unwrap().name, "vm1");
    assert!(!app.nodes.contains_key("d1"));
}

#[test]
fn ages_are_humanised() {
    assert_eq!(age(0), "0s");
    assert_eq!(age(42), "42s");
    assert_eq!(age(300), "5m");
    assert_eq!(age(3 * 3600), "3h");
    assert_eq!(age(2 * 86400), "2d");
}

#[test]
fn run_loop_is_generic_over_the_backend() {
    let mut app = three_levels();
    let mut t = ratatui::Terminal::new(TestBackend::new(100, 12)).unwrap();
    let mut events = vec![
        Msg::Key(Key::Char('j')),
        Msg::Key(Key::Char('p')),
        Msg::Key(Key::Char('q')),
    ]
    .into_iter();
    let mut cmds = Vec::new();
    run(&mut t, &mut app, || events.next(), |c| cmds.push(c)).unwrap();
    assert_eq!(cmds, vec![Cmd::Ping("a2".into())]);
    assert!(app.quit);
}

#[test]
fn two_thousand_nodes_render_in_one_frame() {
    let mut nodes = vec![node("root", "root", None, Status::Alive, 0)];
    for i in 0..2000 {
        let parent = if i < 40 {
            "root".to_string()
        } else {
            format!("n{:04}", i % 40)
        };
        nodes.push(node(
            &format!("n{i:04}"),
            &format!("node{i:04}"),
            Some(&parent),
            Status::Alive,
            0,
        ));
    }
    let mut app = App {
        now_ms: NOW,
        ..App::default()
    };
    app.update(Msg::Table {
        me: "root".into(),
        authenticated: false,
        nodes,
    });
    assert_eq!(visible_rows(&app).len(), 2001);
    app.key(Key::End);
    let s = screen(&app, 120, 40);
    assert!(s.contains("node1999") || s.contains("node0039"), "{s}");
}

/// While the daemon is away, alive nodes' ages count from the last data
/// (they showed `alive 0s` for ever), and the banner says how old it is.
#[test]
fn ages_tick_while_disconnected() {
    let mut app = three_levels();
    app.update(Msg::Disconnected(NOW));
    app.update(Msg::Tick(NOW + 12_000));
    let s = screen(&app, 120, 12);
    assert!(
        s.lines().next().unwrap().contains("data from 12s ago"),
        "{s}"
    );
    let vm4 = s.lines().find(|l| l.contains("vm4")).unwrap();
    assert!(vm4.contains("alive       12s"), "{vm4}");
    // A node that was already unreachable keeps counting from its own time.
    let vm5 = s.lines().find(|l| l.contains("vm5")).unwrap();
    assert!(vm5.contains("54s"), "{vm5}");
    // Back: fresh data, fresh ages.
    app.update(Msg::Table {
        me: "a1".into(),
        authenticated: false,
        nodes: vec![node("a1", "hv1", None, Status::Alive, 0)],
    });
    let s = screen(&app, 120, 12);
    let hv1 = s.lines().find(|l| l.starts_with("hv1")).unwrap();
    assert_eq!(hv1.split_whitespace().nth(2), Some("0s"), "{s}");
}

/// `trace all` and `list` put the local node first; the tree did not when
/// its name sorted later.
#[test]
fn the_local_node_heads_the_tree() {
    let mut app = three_levels();
    app.me = Some("b4".into());
    let first = names(&app)[0].clone();
    assert_eq!(first, ("vm4".into(), 0));
}

/// `top --once`: whole words in the header, no key bar or status line.
#[test]
fn a_plain_frame_has_no_key_bar_and_cuts_the_header_at_words() {
    let mut app = three_levels();
    app.plain = true;
    let s = render_text(&app, natural_width(&app));
    assert!(!s.contains("q quit"), "{s}");
    assert_eq!(s.lines().count(), 2 + 6, "{s}");
    let header = s.lines().next().unwrap();
    assert!(header.ends_with("tree by name"), "{header}");
    let narrow = render_text(&app, 50);
    let header = narrow.lines().next().unwrap();
    assert!(header.ends_with("left"), "cut mid-word: {header:?}");
    assert!(natural_width(&app) >= 100);
}
