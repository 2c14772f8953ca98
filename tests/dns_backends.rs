//! Backends found in DNS, end to end: a real `dnsmasq` on a loopback port, the stateful app
//! (`tests/support_app.py`, sessions in memory) on 127.0.0.2, 127.0.0.3, 127.0.0.4, tether
//! following `{ dns = "app.test", port = P }` and `{ srv = "_app._tcp.test" }`.
//!
//! - a backend added to DNS gets traffic (the time from the change to its first request is
//!   printed);
//! - a backend removed from DNS is drained: users pinned to it (sealed cookie, HTTP/1.1 and
//!   HTTP/2) stay on it until the drain time, new users go elsewhere; after the drain time
//!   it is dropped;
//! - a dead resolver keeps the last set;
//! - SRV records give the servers' ports and weights, and a record removed drains its
//!   server.

mod affinity_support;
mod common;
mod dns_support;

use std::time::{Duration, Instant};

use affinity_support::*;
use common::*;
use dns_support::*;

const HOSTS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

fn hosts_file(names: &[(&str, &str)]) -> String {
    names.iter().map(|(ip, n)| format!("{ip} {n}\n")).collect()
}

fn tether_config(port: u16, upstream: &str) -> String {
    // Two event-loop threads: one discovery thread changes the pools both use.
    format!(
        "workers = 2\n[[upstream]]\nname = \"app\"\n{upstream}\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
    )
}

/// One HTTP/2 GET with a Cookie header: (status, body).
fn h2_with_cookie(port: u16, path: &str, cookie: &str) -> (u16, String) {
    let c = format!("cookie={cookie}");
    let (status, _, body) = h2_get(port, path, &[&c]);
    (status, body)
}

#[test]
fn dns_backends_join_drain_on_removal_and_survive_a_dead_resolver() {
    let dir = TempDir::new("dns-a");
    let app_port = free_port_on_all(&HOSTS);
    let _b2 = app_on("127.0.0.2", app_port, "b2");
    let _b3 = app_on("127.0.0.3", app_port, "b3");
    let mut dns = Dnsmasq::start(&dir, &hosts_file(&[("127.0.0.2", "app.test")]), &[]);
    let port = free_port();
    let drain_ms = 4000;
    let upstream = format!(
        "servers = [{{ dns = \"app.test\", port = {app_port} }}]\n\
         resolver = [\"127.0.0.1:{}\"]\nresolve_min_ms = 200\nresolve_max_ms = 2000\n\
         drain_timeout_ms = {drain_ms}\n\
         balance = \"cookie\"\ncookie_name = \"srv\"\nkeys = [\"{KEY}\"]\n\
         [upstream.health]\npath = \"/health\"\ninterval_ms = 200",
        dns.port
    );
    let t = tether(&dir, &tether_config(port, &upstream), &[port]);
    let b2 = format!("127.0.0.2:{app_port}");
    let b3 = format!("127.0.0.3:{app_port}");
    assert!(
        t.wait_log(&format!("server {b2}: joined (dns)")),
        "{}",
        t.log_text()
    );
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // Two users log in on b2: one over HTTP/1.1, one over HTTP/2.
    let login = fetch(&url("/login"), &[]);
    assert_eq!(
        (login.status, login.body.as_str()),
        (200, "b2"),
        "{}",
        login.head
    );
    let h1_cookie = format!(
        "SID={}; srv={}",
        login.set_cookie("SID").expect("SID"),
        login.set_cookie("srv").expect("affinity cookie")
    );
    let (status, headers, body) = h2_get(port, "/login", &[]);
    assert_eq!((status, body.as_str()), (200, "b2"));
    let set: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n == "set-cookie")
        .filter_map(|(_, v)| v.split(';').next().map(str::to_string))
        .collect();
    assert_eq!(set.len(), 2, "{headers:?}");
    let h2_cookie = set.join("; ");
    assert!(with_cookie(&url("/session"), &h1_cookie)
        .body
        .starts_with("b2 b2-"));
    assert!(h2_with_cookie(port, "/session", &h2_cookie)
        .1
        .starts_with("b2 b2-"));

    // b3 added to DNS: new users reach it; the time from the change to its first request.
    let changed = Instant::now();
    dns.set_hosts(&hosts_file(&[
        ("127.0.0.2", "app.test"),
        ("127.0.0.3", "app.test"),
    ]));
    let mut first_b3 = None;
    while changed.elapsed() < Duration::from_secs(15) {
        let r = fetch(&url("/whoami"), &[]);
        assert_eq!(r.status, 200, "{}{}", r.head, r.body);
        if r.body == "b3" {
            first_b3 = Some(changed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let first_b3 = first_b3.unwrap_or_else(|| panic!("b3 never got a request:\n{}", t.log_text()));
    println!(
        "dns change → first request on the new backend: {} ms (resolve_min_ms = 200, TTL 0)",
        first_b3.as_millis()
    );
    assert!(t.wait_log(&format!("server {b3}: joined (dns)")));
    // Balanced over both now.
    let seen: std::collections::HashSet<String> =
        (0..8).map(|_| fetch(&url("/whoami"), &[]).body).collect();
    assert_eq!(seen.len(), 2, "{seen:?}");

    // b2 removed from DNS: drained. Its pinned users stay on it, new users go to b3.
    dns.set_hosts(&hosts_file(&[("127.0.0.3", "app.test")]));
    assert!(
        t.wait_log(&format!(
            "server {b2}: left (dns), draining for {drain_ms} ms"
        )),
        "{}",
        t.log_text()
    );
    let left = Instant::now();
    let mut checks = 0;
    while left.elapsed() < Duration::from_millis(drain_ms / 2) {
        let r = with_cookie(&url("/session"), &h1_cookie);
        assert!(
            r.body.starts_with("b2 b2-"),
            "HTTP/1.1 user moved while draining: {}",
            r.body
        );
        let (s, body) = h2_with_cookie(port, "/session", &h2_cookie);
        assert!(
            s == 200 && body.starts_with("b2 b2-"),
            "HTTP/2 user moved: {body}"
        );
        for _ in 0..3 {
            assert_eq!(
                fetch(&url("/whoami"), &[]).body,
                "b3",
                "a new user went to b2"
            );
        }
        let (_, _, body) = h2_get(port, "/whoami", &[]);
        assert_eq!(body, "b3", "a new HTTP/2 user went to b2");
        checks += 1;
    }
    assert!(checks >= 2, "too few checks in the drain window: {checks}");
    // After the drain time b2 is dropped; its users are re-balanced (to b3, no session).
    assert!(
        t.wait_log_within(
            &format!("server {b2}: drain time over, dropped"),
            Duration::from_millis(drain_ms + 3000)
        ),
        "{}",
        t.log_text()
    );
    let r = with_cookie(&url("/session"), &h1_cookie);
    assert_eq!(
        (r.status, r.body.as_str()),
        (401, "b3 no session"),
        "{}",
        r.head
    );
    let (s, body) = h2_with_cookie(port, "/session", &h2_cookie);
    assert_eq!((s, body.as_str()), (401, "b3 no session"));

    // The resolver dies: the last set (b3) stays and keeps serving.
    dns.stop();
    assert!(
        t.wait_log_within("lookup failed", Duration::from_secs(10)),
        "{}",
        t.log_text()
    );
    assert!(
        t.wait_log("keeping the last 1 server(s)"),
        "{}",
        t.log_text()
    );
    let dead = Instant::now();
    while dead.elapsed() < Duration::from_secs(3) {
        let r = fetch(&url("/whoami"), &[]);
        assert_eq!((r.status, r.body.as_str()), (200, "b3"), "{}", r.head);
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        !t.log_text().contains(&format!("server {b3}: left")),
        "{}",
        t.log_text()
    );
}

#[test]
fn srv_records_give_ports_and_weights_and_a_removed_record_drains() {
    let dir = TempDir::new("dns-srv");
    // Each app on its own port: the ports come from the SRV records.
    let p2 = free_port_on_all(&HOSTS);
    let p3 = free_port_on_all(&HOSTS);
    let _b2 = app_on("127.0.0.2", p2, "b2");
    let _b3 = app_on("127.0.0.3", p3, "b3");
    let hosts = hosts_file(&[("127.0.0.2", "b2.test"), ("127.0.0.3", "b3.test")]);
    let srv2 = format!("_app._tcp.test,b2.test,{p2},0,1");
    let srv3 = format!("_app._tcp.test,b3.test,{p3},0,3");
    let mut dns = Dnsmasq::start(&dir, &hosts, &[&srv2, &srv3]);
    let port = free_port();
    let upstream = format!(
        "servers = [{{ srv = \"_app._tcp.test\" }}]\n\
         resolver = [\"127.0.0.1:{}\"]\nresolve_min_ms = 200\ndrain_timeout_ms = 60000",
        dns.port
    );
    let t = tether(&dir, &tether_config(port, &upstream), &[port]);
    let b2 = format!("127.0.0.2:{p2}");
    let b3 = format!("127.0.0.3:{p3}");
    for id in [&b2, &b3] {
        assert!(
            t.wait_log(&format!("server {id}: joined (dns)")),
            "{}",
            t.log_text()
        );
    }
    // Smooth weighted round robin: weights 1 and 3 give exactly 10 and 30 of 40.
    let mut counts = std::collections::HashMap::new();
    for i in 0..40 {
        let body = if i % 2 == 0 {
            fetch(&format!("http://127.0.0.1:{port}/whoami"), &[]).body
        } else {
            h2_get(port, "/whoami", &[]).2
        };
        *counts.entry(body).or_insert(0) += 1;
    }
    assert_eq!(counts.get("b2"), Some(&10), "{counts:?}");
    assert_eq!(counts.get("b3"), Some(&30), "{counts:?}");

    // The b2 record goes (dnsmasq restarted without it): b2 drains, new sessions go to b3.
    dns.restart_with_srv(&[&srv3]);
    assert!(
        t.wait_log_within(
            &format!("server {b2}: left (dns), draining for 60000 ms"),
            Duration::from_secs(10)
        ),
        "{}",
        t.log_text()
    );
    for _ in 0..6 {
        assert_eq!(
            fetch(&format!("http://127.0.0.1:{port}/whoami"), &[]).body,
            "b3"
        );
        assert_eq!(h2_get(port, "/whoami", &[]).2, "b3");
    }
}
