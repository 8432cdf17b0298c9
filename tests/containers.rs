//! Containers phoning home: the FROM scratch image on this machine's Docker
//! engine, on networks the test creates and removes. Fails, never skips,
//! when Docker is missing.

mod common;

use common::*;
use std::process::Command;
use std::time::{Duration, Instant};

/// Everything one test created in Docker, removed (by id and name) on drop.
struct Docker {
    tag: String,
    image: Option<String>,
    networks: Vec<String>,
    containers: Vec<String>,
}

fn docker(args: &[&str]) -> (bool, String) {
    let o = Command::new("docker")
        .args(args)
        .output()
        .expect("docker is needed for this test");
    let text = String::from_utf8_lossy(&o.stdout).trim().to_string();
    if !o.status.success() {
        return (
            false,
            format!("{text}{}", String::from_utf8_lossy(&o.stderr)),
        );
    }
    (true, text)
}

fn must(args: &[&str]) -> String {
    let (ok, out) = docker(args);
    assert!(ok, "docker {args:?}: {out}");
    out
}

impl Docker {
    fn new(tag: &str) -> Docker {
        let (ok, v) = docker(&["version", "--format", "{{.Server.Version}}"]);
        assert!(ok, "the Docker engine is needed for this test: {v}");
        Docker {
            tag: format!("daust-{tag}-{}", std::process::id()),
            image: None,
            networks: vec![],
            containers: vec![],
        }
    }

    /// Builds the image from the static binary.
    fn image(&mut self) -> String {
        let root = env!("CARGO_MANIFEST_DIR");
        let o = Command::new(format!("{root}/scripts/build-static"))
            .output()
            .expect("build-static");
        assert!(
            o.status.success(),
            "build-static: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let name = format!("{}:test", self.tag);
        let (ok, out) = docker(&[
            "build",
            "-q",
            "-f",
            &format!("{root}/Containerfile"),
            "-t",
            &name,
            root,
        ]);
        assert!(ok, "docker build: {out}");
        self.image = Some(name.clone());
        name
    }

    /// Creates a network; returns (name, gateway address).
    fn network(&mut self, suffix: &str, internal: bool) -> (String, String) {
        let name = format!("{}-{suffix}", self.tag);
        let mut args = vec!["network", "create"];
        if internal {
            args.push("--internal");
        }
        args.push(&name);
        must(&args);
        self.networks.push(name.clone());
        let gw = must(&[
            "network",
            "inspect",
            "-f",
            "{{range .IPAM.Config}}{{.Gateway}}{{end}}",
            &name,
        ]);
        (name, gw)
    }

    /// Starts a container of the image on `net`; returns its id.
    fn run(&mut self, net: &str, hostname: &str, args: &[&str]) -> String {
        let image = self.image.clone().expect("image first");
        let name = format!("{}-{hostname}", self.tag);
        let mut a = vec![
            "run",
            "-d",
            "--name",
            &name,
            "--hostname",
            hostname,
            "--network",
            net,
            &image,
        ];
        a.extend_from_slice(args);
        let id = must(&a);
        self.containers.push(id.clone());
        id
    }

    fn ip(&self, id: &str, net: &str) -> String {
        must(&[
            "inspect",
            "-f",
            &format!("{{{{(index .NetworkSettings.Networks \"{net}\").IPAddress}}}}"),
            id,
        ])
    }

    fn exec(&self, id: &str, args: &[&str]) -> (bool, String) {
        let mut a = vec!["exec", id, "/daust"];
        a.extend_from_slice(args);
        docker(&a)
    }
}

impl Drop for Docker {
    fn drop(&mut self) {
        for c in &self.containers {
            let _ = docker(&["rm", "-f", c]);
        }
        for n in &self.networks {
            let _ = docker(&["network", "rm", n]);
        }
        if let Some(i) = &self.image {
            let _ = docker(&["rmi", "-f", i]);
        }
    }
}

fn list_json(d: &Daemon, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["list", "--json", "--timeout", "5s"];
    args.extend_from_slice(extra);
    let o = d.client(&args);
    serde_json::from_slice(&o.stdout).unwrap_or(serde_json::Value::Null)
}

/// name -> (status, kind, id) in the host's table.
fn table(d: &Daemon) -> std::collections::BTreeMap<String, (String, String, String)> {
    let v = list_json(d, &[]);
    let mut m = std::collections::BTreeMap::new();
    for n in v["answers"][0]["answer"]["body"]["nodes"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let s = |k: &str| n[k].as_str().unwrap_or("").to_string();
        m.insert(s("name"), (s("status"), s("kind"), s("id")));
    }
    m
}

/// Whether every node that answers `all list` sees `name` with `status`.
fn everyone_sees(d: &Daemon, name: &str, status: &str, answering: usize) -> bool {
    let v = list_json(d, &["all", "--timeout", "3s"]);
    let answers = v["answers"].as_array().cloned().unwrap_or_default();
    answers.len() >= answering
        && answers.iter().all(|a| {
            a["answer"]["body"]["nodes"].as_array().is_some_and(|ns| {
                ns.iter()
                    .any(|n| n["name"] == name && n["status"] == status)
            })
        })
}

#[test]
fn ten_containers_phone_home_and_nothing_is_lost() {
    let mut dk = Docker::new("ct");
    let image = dk.image();
    let size: u64 = must(&["image", "inspect", "-f", "{{.Size}}", &image])
        .parse()
        .unwrap_or(0);
    eprintln!("image size: {size} bytes");
    let (net, gw) = dk.network("net", false);
    let host = Daemon::start("dockerhost", &gw, &[]);

    let t0 = Instant::now();
    let first = dk.run(&net, "ct00", &[]);
    assert!(wait_for(DEADLINE, || table(&host)
        .get("ct00")
        .is_some_and(|x| x.0 == "alive")));
    eprintln!(
        "docker run to alive on the host: {} ms",
        t0.elapsed().as_millis()
    );
    let mut ids = vec![first];
    for i in 1..10 {
        ids.push(dk.run(&net, &format!("ct{i:02}"), &[]));
    }
    let names: Vec<String> = (0..10).map(|i| format!("ct{i:02}")).collect();
    let t0 = Instant::now();
    let all_alive = |h: &Daemon| {
        let t = table(h);
        t.len() == 11
            && names.iter().all(|n| {
                t.get(n)
                    .is_some_and(|x| x.0 == "alive" && x.1 == "container")
            })
    };
    assert!(
        wait_for(DEADLINE, || all_alive(&host)),
        "{:?}",
        table(&host)
    );
    eprintln!(
        "ten containers alive on the host {} ms after the last docker run",
        t0.elapsed().as_millis()
    );

    // Inside a container, the client works too.
    let (ok, out) = dk.exec(&ids[3], &["list"]);
    assert!(
        ok && out.starts_with("ct03: internal ip ") && out.lines().count() == 11,
        "{out}"
    );
    let (_, info) = dk.exec(&ids[3], &["info"]);
    assert!(info.contains("kind:         container (deadend)"), "{info}");

    // Everyone answers.
    let t0 = Instant::now();
    let o = host.client(&["all", "ping"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout)
            .matches("pong from")
            .count(),
        11
    );
    eprintln!("all ping over 11 nodes: {} ms", t0.elapsed().as_millis());

    // docker kill: unreachable on every node within 5 s.
    let t0 = Instant::now();
    must(&["kill", &ids[5]]);
    assert!(
        wait_for(Duration::from_secs(5), || everyone_sees(
            &host,
            "ct05",
            "unreachable",
            10
        )),
        "{:?}",
        table(&host)
    );
    eprintln!(
        "docker kill seen by every node in {} ms",
        t0.elapsed().as_millis()
    );

    disconnect_and_reconnect(&host, &net, &ids[7], "ct07");

    // all stop: every running container exits with status 0.
    let o = host.client(&["all", "stop"]);
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    for (i, id) in ids.iter().enumerate() {
        if i == 5 {
            continue;
        }
        let stopped = || must(&["inspect", "-f", "{{.State.Running}}", id]) == "false";
        assert!(wait_for(DEADLINE, stopped), "container {i} still runs");
        assert_eq!(
            must(&["inspect", "-f", "{{.State.ExitCode}}", id]),
            "0",
            "container {i}"
        );
    }
}

/// Cut a container from the network: unreachable; back: alive with the
/// same id.
fn disconnect_and_reconnect(host: &Daemon, net: &str, id: &str, name: &str) {
    let node_id = table(host)[name].2.clone();
    let t0 = Instant::now();
    must(&["network", "disconnect", net, id]);
    assert!(wait_for(DEADLINE, || table(host)
        .get(name)
        .is_some_and(|x| x.0 == "unreachable")));
    eprintln!("network disconnect seen in {} ms", t0.elapsed().as_millis());
    let t0 = Instant::now();
    must(&["network", "connect", net, id]);
    assert!(
        wait_for(Duration::from_secs(40), || table(host)
            .get(name)
            .is_some_and(|x| x.0 == "alive")),
        "{:?}",
        table(host)
    );
    eprintln!(
        "reconnected and alive again in {} ms",
        t0.elapsed().as_millis()
    );
    assert_eq!(table(host)[name].2, node_id, "same id after the reconnect");
}

/// Two hypervisors on a shared network, each with three VMs on a private
/// network of its own: VMs of one reach VMs of the other through both.
#[test]
fn vms_behind_two_hypervisors_reach_each_other() {
    let mut dk = Docker::new("nest");
    dk.image();
    let (shared, _) = dk.network("shared", false);
    let (p1, _) = dk.network("p1", true);
    let (p2, _) = dk.network("p2", true);
    // Hypervisors relay for their VMs: not the image's default deadend leaf.
    let hv1 = dk.run(&shared, "hv1", &["--tag", "role=hypervisor"]);
    must(&["network", "connect", &p1, &hv1]);
    let hv1_ip = dk.ip(&hv1, &shared);
    let hv2 = dk.run(&shared, "hv2", &["-k", &hv1_ip, "--tag", "role=hypervisor"]);
    must(&["network", "connect", &p2, &hv2]);
    let (hv1_p1, hv2_p2) = (dk.ip(&hv1, &p1), dk.ip(&hv2, &p2));
    let mut vms = Vec::new();
    for i in 1..=6 {
        let (net, parent) = if i <= 3 {
            (&p1, &hv1_p1)
        } else {
            (&p2, &hv2_p2)
        };
        vms.push(dk.run(net, &format!("vm{i}"), &["-k", parent, "-e"]));
    }
    let eight = || {
        dk.exec(&vms[0], &["list"])
            .1
            .lines()
            .filter(|l| l.ends_with("ago"))
            .count()
            == 8
    };
    assert!(
        wait_for(DEADLINE, eight),
        "{}",
        dk.exec(&vms[0], &["list"]).1
    );
    let (_, tree) = dk.exec(&vms[0], &["trace", "all"]);
    assert_eq!(tree, "|__ vm1\n|__ hv1\n|   |__ hv2\n|   |   |__ vm4\n|   |   |__ vm5\n|   |   |__ vm6\n|   |__ vm2\n|   |__ vm3", "{tree}");
    let (ok, pong) = dk.exec(&vms[0], &["remote", "vm5", "ping"]);
    assert!(ok && pong.starts_with("pong from vm5 "), "{pong}");
}
