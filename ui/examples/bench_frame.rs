//! Benchmark: build the rows and draw one frame of `daust top` for 2,000
//! nodes (a host with 40 hypervisors of 49 VMs each), on a 200x60 buffer.
//! Prints the time per frame; a figure, not a test.

use std::time::Instant;

use daust_ui::{draw, App, Msg, Node, Status};
use ratatui::backend::TestBackend;

fn main() {
    let now = 1_800_000_000_000u64;
    let mut nodes = vec![Node {
        id: "root".into(),
        name: "root".into(),
        status: Status::Alive,
        last_seen_ms: now,
        ..Node::default()
    }];
    for i in 0..2000 {
        let parent = if i < 40 {
            "root".to_string()
        } else {
            format!("n{:04}", i % 40)
        };
        nodes.push(Node {
            id: format!("n{i:04}"),
            name: format!("node{i:04}"),
            kind: "vm".into(),
            status: if i % 17 == 0 {
                Status::Unreachable
            } else {
                Status::Alive
            },
            internal_ip: Some(format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256)),
            last_seen_ms: now - (i as u64 % 100) * 1000,
            rtt_us: Some(300),
            hops: Some(2),
            parent: Some(parent),
            tags: vec![("role".into(), "web".into())],
            started_ms: now - 3_600_000,
            ..Node::default()
        });
    }
    let mut app = App {
        now_ms: now,
        ..App::default()
    };
    app.update(Msg::Table {
        me: "root".into(),
        authenticated: false,
        nodes,
    });
    let mut term = ratatui::Terminal::new(TestBackend::new(200, 60)).expect("terminal");
    let frames = 200;
    let mut times = Vec::with_capacity(frames);
    for i in 0..frames {
        // Move the selection so every frame differs, as when scrolling.
        app.update(Msg::Key(if i % 2 == 0 {
            daust_ui::Key::PageDown
        } else {
            daust_ui::Key::Down
        }));
        let t = Instant::now();
        term.draw(|f| draw(f, &app)).expect("draw");
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.total_cmp(b));
    let med = times[frames / 2];
    let p99 = times[frames * 99 / 100];
    println!("{{\"bench\":\"top_frame\",\"nodes\":2001,\"frames\":{frames},\"median_ms\":{med:.3},\"p99_ms\":{p99:.3},\"max_ms\":{:.3}}}", times[frames - 1]);
    println!("top frame, 2001 nodes: median {med:.2} ms, p99 {p99:.2} ms (target < 5 ms)");
}
