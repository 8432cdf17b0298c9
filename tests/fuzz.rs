//! Property-based fuzzing (proptest, so it runs in CI with a bounded number
//! of cases): the frame decoder, the message decoder, the engine fed any
//! sequence of decoded messages, and the phrase parser. None may panic.

use daust::cli::phrase;
use daust::engine::{Config, Engine, LinkInfo, Now};
use daust::wire::ctl::{Answer, Body, Command, Reply, Request, Run};
use daust::wire::peer::*;
use daust::wire::{decode, encode};
use proptest::prelude::*;
use std::collections::BTreeMap;

const ME: u128 = 0xfeed;

fn id() -> impl Strategy<Value = NodeId> {
    prop_oneof![
        Just(NodeId(ME)),
        (1u128..6).prop_map(NodeId),
        any::<u128>().prop_map(NodeId)
    ]
}

fn version() -> impl Strategy<Value = Version> {
    (0u64..4, 0u64..6).prop_map(|(inc, seq)| Version { inc, seq })
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9.:]{1,12}",
        ".{0,40}",
        Just("x".repeat(300))
    ]
}

fn record() -> impl Strategy<Value = NodeRecord> {
    (
        text(),
        proptest::option::of(text()),
        proptest::collection::vec(text(), 0..3),
        any::<bool>(),
        any::<u16>(),
    )
        .prop_map(|(name, ip, addrs, deadend, port)| NodeRecord {
            name,
            internal_ip: ip,
            addrs,
            public_ip: None,
            port,
            kind: "host".into(),
            tags: BTreeMap::new(),
            version: "x".into(),
            os: "x".into(),
            started_ms: 0,
            deadend,
        })
}

fn na() -> impl Strategy<Value = Announcement> {
    (
        id(),
        version(),
        record(),
        proptest::collection::vec((id(), proptest::option::of(any::<u32>())), 0..4),
        any::<bool>(),
    )
        .prop_map(|(id, version, record, ns, left)| Announcement {
            id,
            version,
            record,
            neighbors: ns
                .into_iter()
                .map(|(id, rtt_us)| Neighbor {
                    id,
                    rtt_us,
                    seen_as: None,
                })
                .collect(),
            left,
        })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        Just(Command::Ping),
        Just(Command::List),
        Just(Command::Trace),
        Just(Command::Info),
        Just(Command::Stop),
        Just(Command::Keys),
        text().prop_map(|node| Command::Forget { node }),
    ]
}

fn hops() -> impl Strategy<Value = Vec<Hop>> {
    proptest::collection::vec(
        (id(), text()).prop_map(|(id, name)| Hop {
            id,
            name,
            rtt_us: None,
        }),
        0..4,
    )
}

fn msg() -> impl Strategy<Value = PeerMsg> {
    prop_oneof![
        (id(), na(), any::<u16>(), 0u64..5000).prop_map(|(id, na, proto, hb_ms)| PeerMsg::Hello(
            Box::new(Hello {
                proto: proto % 3,
                minor: 0,
                id,
                hb_ms,
                na,
                seen_as: "x".into()
            })
        )),
        any::<u32>().prop_map(|s| PeerMsg::Ping { s, r: None }),
        any::<u32>().prop_map(|s| PeerMsg::Pong { s }),
        (
            proptest::collection::vec((id(), version()), 0..5),
            any::<bool>()
        )
            .prop_map(|(entries, done)| PeerMsg::Digest { entries, done }),
        na().prop_map(|n| PeerMsg::Na(std::sync::Arc::new(n))),
        (id(), version()).prop_map(|(id, version)| PeerMsg::Forget { id, version }),
        (
            any::<u64>(),
            id(),
            prop_oneof![id().prop_map(Dest::Node), Just(Dest::All)],
            any::<u8>(),
            hops(),
            command()
        )
            .prop_map(|(mid, origin, dest, ttl, path, cmd)| PeerMsg::Cmd(Box::new(
                Routed {
                    mid,
                    origin,
                    dest,
                    ttl,
                    path,
                    cmd
                }
            ))),
        (any::<u64>(), id(), any::<u8>(), hops(), id()).prop_map(|(mid, to, ttl, path, from)| {
            PeerMsg::Resp(Box::new(RoutedReply {
                mid,
                to,
                ttl,
                path,
                answer: Answer {
                    id: from,
                    name: "n".into(),
                    addr: None,
                    body: Body::Pong,
                },
                part: None,
            }))
        }),
        text().prop_map(|reason| PeerMsg::Refuse { reason }),
    ]
}

fn record_of_me() -> NodeRecord {
    NodeRecord {
        name: "me".into(),
        internal_ip: None,
        addrs: vec![],
        public_ip: None,
        port: 4040,
        kind: "host".into(),
        tags: BTreeMap::new(),
        version: "x".into(),
        os: "x".into(),
        started_ms: 0,
        deadend: false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn frame_decoder_takes_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode::<PeerMsg>(&bytes);
        let _ = decode::<Run>(&bytes);
        let _ = decode::<Request>(&bytes);
        let _ = decode::<Reply>(&bytes);
    }

    #[test]
    fn message_decoder_takes_mutated_messages(m in msg(), at in any::<usize>(), byte in any::<u8>()) {
        let mut bytes = encode(&m).unwrap();
        let back: PeerMsg = decode(&bytes).unwrap().unwrap().0;
        prop_assert_eq!(&back, &m);
        let i = 4 + at % (bytes.len() - 4);
        bytes[i] = byte;
        let _ = decode::<PeerMsg>(&bytes);
    }

    #[test]
    fn engine_takes_any_sequence_of_messages(msgs in proptest::collection::vec((0u64..3, msg()), 1..30)) {
        let mut now = Now { mono_us: 1_000_000, wall_ms: 1_700_000_000_000 };
        let mut e = Engine::new(Config::default(), NodeId(ME), record_of_me(), now, 7, None);
        for l in 0..3 {
            let dialled = (l == 0).then(|| "peer:4040".to_string());
            e.link_up(now, l, LinkInfo { dialled, remote: format!("10.0.0.{l}:1") });
        }
        for (link, m) in msgs {
            now.mono_us += 7_000;
            now.wall_ms += 7;
            e.frame(now, link, m);
            e.tick(now);
            let _ = e.take_actions();
        }
        now.mono_us += 10_000_000;
        e.tick(now);
        let _ = e.take_actions();
        let me = e.table().get(&NodeId(ME)).expect("own entry");
        prop_assert_eq!(me.na.record.name.as_str(), "me");
    }

    #[test]
    fn phrase_parser_takes_any_words(words in proptest::collection::vec(
        prop_oneof![
            Just("remote".to_string()), Just("all".to_string()), Just("list".to_string()), Just("--timeout".to_string()),
            Just("trace".to_string()), Just("--width".to_string()), Just("top".to_string()), Just("help".to_string()),
            ".{0,12}"
        ], 0..8)) {
        let _ = phrase::parse(&words);
    }
}
