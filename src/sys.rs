//! Facts about this machine: its name, addresses, default gateway, whether
//! it is a host, a VM or a container, its OS, and random bytes. Each reads
//! files under /proc, /sys or /etc and degrades to a sensible default.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// The hostname, or `localhost` if it cannot be read.
pub fn hostname() -> String {
    fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| fs::read_to_string("/etc/hostname"))
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// The routing table's default route: (interface, gateway).
pub fn default_route() -> Option<(String, Ipv4Addr)> {
    let table = fs::read_to_string("/proc/net/route").ok()?;
    parse_default_route(&table)
}

/// Parses `/proc/net/route` for the default route.
pub fn parse_default_route(table: &str) -> Option<(String, Ipv4Addr)> {
    for line in table.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 3 || f[1] != "00000000" {
            continue;
        }
        let gw = u32::from_str_radix(f[2], 16).ok()?;
        // The kernel prints the address in host (little-endian) order.
        return Some((f[0].to_string(), Ipv4Addr::from(gw.swap_bytes())));
    }
    None
}

/// The default gateway, for `-k gateway`.
pub fn gateway() -> Option<Ipv4Addr> {
    default_route().map(|(_, gw)| gw)
}

/// Every address of every interface but loopback, IPv4 first.
pub fn interface_addrs() -> Vec<(String, IpAddr)> {
    let mut v = every_interface_addr();
    v.retain(|(_, ip)| !ip.is_loopback());
    v
}

/// Every interface's addresses, loopback included, IPv4 first.
fn every_interface_addr() -> Vec<(String, IpAddr)> {
    let mut v: Vec<(String, IpAddr)> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| (i.name.clone(), i.ip()))
        .collect();
    v.sort_by_key(|(n, ip)| (ip.is_ipv6(), n.clone(), *ip));
    v
}

/// The address of interface `name` (`-i`): its IPv4 address, else its
/// IPv6 one; any interface will do, loopback included. The error names the
/// interfaces there are.
pub fn iface_ip(name: &str) -> Result<IpAddr, String> {
    let all = every_interface_addr();
    if let Some((_, ip)) = all.iter().find(|(n, _)| n == name) {
        return Ok(*ip);
    }
    let mut names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    names.dedup();
    Err(format!(
        "no interface {name:?} with an address (there are: {})",
        names.join(", ")
    ))
}

/// The internal address: that of the interface holding the default route,
/// else the first IPv4 address there is other than loopback.
pub fn internal_ip() -> Option<IpAddr> {
    let addrs = interface_addrs();
    let of = |name: &str| {
        addrs
            .iter()
            .find(|(n, ip)| n == name && ip.is_ipv4())
            .map(|(_, ip)| *ip)
    };
    if let Some((i, _)) = default_route() {
        if let Some(ip) = of(&i) {
            return Some(ip);
        }
    }
    addrs.iter().find(|(_, ip)| ip.is_ipv4()).map(|(_, ip)| *ip)
}

/// `container`, `vm` or `host`.
pub fn kind() -> &'static str {
    let root = Path::new("/");
    detect_kind(
        root.join(".dockerenv").exists() || root.join("run/.containerenv").exists(),
        &fs::read_to_string("/proc/1/cgroup").unwrap_or_default(),
        &[
            fs::read_to_string("/sys/class/dmi/id/sys_vendor").unwrap_or_default(),
            fs::read_to_string("/sys/class/dmi/id/product_name").unwrap_or_default(),
        ]
        .join(" "),
        &fs::read_to_string("/proc/cpuinfo").unwrap_or_default(),
    )
}

/// The decision behind [`kind`], from what the files said.
pub fn detect_kind(marker: bool, cgroup: &str, dmi: &str, cpuinfo: &str) -> &'static str {
    let in_cgroup = ["docker", "kubepods", "containerd", "libpod", "lxc"]
        .iter()
        .any(|w| cgroup.contains(w));
    if marker || in_cgroup {
        return "container";
    }
    let dmi = dmi.to_ascii_lowercase();
    let vm_vendor = [
        "kvm",
        "qemu",
        "vmware",
        "virtualbox",
        "xen",
        "bochs",
        "hyper-v",
        "parallels",
        "bhyve",
        "cloud hypervisor",
    ]
    .iter()
    .any(|w| dmi.contains(w));
    let hv_flag = cpuinfo
        .lines()
        .any(|l| l.starts_with("flags") && l.split_whitespace().any(|f| f == "hypervisor"));
    if vm_vendor || hv_flag {
        "vm"
    } else {
        "host"
    }
}

/// The OS name, from os-release.
pub fn os() -> String {
    let rel = fs::read_to_string("/etc/os-release").unwrap_or_default();
    for line in rel.lines() {
        if let Some(v) = line.strip_prefix("PRETTY_NAME=") {
            return v.trim_matches('"').to_string();
        }
    }
    "Linux".into()
}

/// 16 random bytes from the kernel, or a clock-and-pid mix if it has none.
pub fn random_u128() -> u128 {
    let mut buf = [0u8; 16];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        if f.read_exact(&mut buf).is_ok() {
            return u128::from_le_bytes(buf);
        }
    }
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    t ^ ((std::process::id() as u128) << 64)
}

/// `TCP_RTO_MAX_MS` (Linux 6.15), newer than the libc crate knows.
const TCP_RTO_MAX_MS: libc::c_int = 44;

/// Reads TCP option `name` of socket `fd` into `buf`; the bytes the kernel
/// filled, or None.
fn tcp_option(fd: std::os::fd::RawFd, name: libc::c_int, buf: &mut [u8]) -> Option<usize> {
    let mut len = libc::socklen_t::try_from(buf.len()).ok()?;
    // SAFETY: `buf` is writable for `len` bytes and outlives the call; the
    // kernel writes at most `len` bytes and stores how many in `len`.
    let r = unsafe {
        libc::getsockopt(
            fd,
            libc::IPPROTO_TCP,
            name,
            buf.as_mut_ptr().cast(),
            &mut len,
        )
    };
    (r == 0).then_some(len as usize)
}

/// How many data segments the kernel has received on TCP socket `fd`,
/// in order or not (`tcpi_data_segs_in` of `TCP_INFO`, Linux 4.6 and
/// later). It moves while a peer's packets arrive behind a lost one, when
/// the application has nothing to read yet. None if the kernel won't say.
pub fn tcp_data_segs_in(fd: std::os::fd::RawFd) -> Option<u32> {
    const DATA_SEGS_IN: usize = 152; // offset in struct tcp_info
    let mut info = [0u8; 256];
    let len = tcp_option(fd, libc::TCP_INFO, &mut info)?;
    let b = info.get(DATA_SEGS_IN..(DATA_SEGS_IN + 4).min(len))?;
    Some(u32::from_ne_bytes(b.try_into().ok()?))
}

/// Caps the TCP retransmission timeout of socket `fd` at `ms`
/// (`TCP_RTO_MAX_MS`, Linux 6.15 and later; elsewhere nothing happens and
/// false comes back). A lost segment is then retried at least that often
/// instead of after 0.4, 0.8, 1.6, 3.2, 6.4 ... s: on a lossy path a link's
/// silence stays near its loss, not its backoff.
pub fn tcp_rto_max(fd: std::os::fd::RawFd, ms: u32) -> bool {
    let v = libc::c_int::try_from(ms).unwrap_or(libc::c_int::MAX);
    // SAFETY: `v` is a readable int that outlives the call, and its size is
    // what is passed.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            TCP_RTO_MAX_MS,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        ) == 0
    }
}

/// Tells a service manager about this process (`READY=1`, `STOPPING=1`,
/// `STATUS=...`) on `$NOTIFY_SOCKET`, as sd_notify(3) does: one datagram
/// to a Unix socket, `@` naming the abstract namespace. Without the
/// variable, nothing happens. Returns whether a datagram went out.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    if let Err(e) = &sent {
        tracing::warn!("NOTIFY_SOCKET: cannot tell the service manager: {e}");
    }
    sent.is_ok()
}

/// Sends SIGKILL to every process in group `pgid` (a hook and whatever it
/// started).
pub fn kill_group(pgid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pgid) else {
        return;
    };
    if pid > 1 {
        // SAFETY: kill(2) takes plain integers; a negative pid names a group.
        unsafe {
            libc::kill(-pid, libc::SIGKILL);
        }
    }
}

/// The user id this process runs as.
pub fn uid() -> u32 {
    // SAFETY: getuid(2) takes nothing and cannot fail.
    unsafe { libc::getuid() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_info_counts_segments_received() {
        use std::io::{Read, Write};
        use std::os::fd::AsRawFd;
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut a = std::net::TcpStream::connect(l.local_addr().expect("addr")).expect("connect");
        let (mut b, _) = l.accept().expect("accept");
        let before = tcp_data_segs_in(b.as_raw_fd()).expect("TCP_INFO");
        for _ in 0..3 {
            a.write_all(b"x").expect("write");
            let mut one = [0u8; 1];
            b.read_exact(&mut one).expect("read");
        }
        let after = tcp_data_segs_in(b.as_raw_fd()).expect("TCP_INFO");
        assert!(after >= before + 3, "{before} -> {after}");
        assert_eq!(tcp_data_segs_in(-1), None);
        assert!(!tcp_rto_max(-1, 1000));
        // Where the kernel has TCP_RTO_MAX_MS (6.15+), it takes.
        if tcp_rto_max(b.as_raw_fd(), 1000) {
            let mut v = [0u8; 4];
            assert_eq!(tcp_option(b.as_raw_fd(), TCP_RTO_MAX_MS, &mut v), Some(4));
            assert_eq!(i32::from_ne_bytes(v), 1000);
        }
    }

    #[test]
    fn default_route_is_read_in_host_order() {
        let t = "Iface\tDestination\tGateway \tFlags\n\
                 eth0\t00000000\t010011AC\t0003\n\
                 eth0\t000011AC\t00000000\t0001\n";
        assert_eq!(
            parse_default_route(t),
            Some(("eth0".into(), Ipv4Addr::new(172, 17, 0, 1)))
        );
        assert_eq!(parse_default_route("Iface\tDestination\n"), None);
    }

    #[test]
    fn kinds() {
        assert_eq!(detect_kind(true, "", "", ""), "container");
        assert_eq!(
            detect_kind(false, "0::/system.slice/docker-abc.scope", "", ""),
            "container"
        );
        assert_eq!(detect_kind(false, "0::/", "QEMU Standard PC", ""), "vm");
        assert_eq!(
            detect_kind(false, "0::/", "", "flags\t\t: fpu vme hypervisor lahf_lm"),
            "vm"
        );
        assert_eq!(
            detect_kind(
                false,
                "0::/init.scope",
                "Dell Inc. PowerEdge",
                "flags : fpu vme"
            ),
            "host"
        );
    }
}
