//! Session affinity end to end, with stateful python apps (`tests/support_app.py`) behind
//! tether: the sealed cookie, the tagged session id, sessions learned from the backend's
//! Set-Cookie, client-address hashing, weights and drain, failover (re-pin or 503), and
//! two tether instances that agree because they share keys.

mod affinity_support;
mod common;

use std::collections::HashMap;
use std::time::Duration;

use affinity_support::*;
use common::*;

const OLD_KEY: &str = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100";

#[test]
fn sealed_cookie_pins_hides_the_server_resists_tampering_and_repins_on_failure() {
    let dir = TempDir::new("aff-cookie");
    let (mut procs, ports) = apps(&["a", "b", "c"]);
    let port = free_port();
    let extra = format!("balance = \"cookie\"\ncookie_name = \"srv\"\nkeys = [\"{KEY}\"]");
    let _t = tether(&dir, &config(port, &ports, &extra, ""), &[port]);
    let url = format!("http://127.0.0.1:{port}/whoami");

    // Without a cookie: balanced, and a sealed cookie is set.
    let first = fetch(&url, &[]);
    assert_eq!(first.status, 200, "{}", first.head);
    let cookie = first.set_cookie("srv").expect("affinity cookie set");
    assert!(first.head.contains("HttpOnly") && first.head.contains("SameSite=Lax"));
    for p in &ports {
        assert!(
            !cookie.contains(&p.to_string()),
            "the cookie reveals a port: {cookie}"
        );
    }
    assert!(!cookie.contains("127.0.0.1"), "{cookie}");
    let home = first.body.clone();
    // With it: always the same server, and no new cookie.
    for _ in 0..8 {
        let r = with_cookie(&url, &format!("srv={cookie}"));
        assert_eq!(r.body, home);
        assert!(r.set_cookie("srv").is_none(), "{}", r.head);
    }
    // Without it, requests spread over the servers.
    let seen: std::collections::HashSet<String> = (0..6).map(|_| fetch(&url, &[]).body).collect();
    assert!(seen.len() >= 2, "not balanced: {seen:?}");
    // A tampered cookie is ignored: balanced normally, a fresh cookie issued.
    let mut forged = cookie.clone().into_bytes();
    let i = forged.len() / 2;
    forged[i] = if forged[i] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");
    let r = with_cookie(&url, &format!("srv={forged}"));
    assert_eq!(r.status, 200);
    assert!(r.set_cookie("srv").is_some_and(|c| c != forged));

    // The pinned server dies: the session moves (re-pin) and sticks to its new server.
    let idx = ["a", "b", "c"]
        .iter()
        .position(|n| *n == home)
        .expect("known name");
    drop(procs.remove(idx));
    let moved = with_cookie(&url, &format!("srv={cookie}"));
    assert_eq!(moved.status, 200, "{}{}", moved.head, moved.body);
    assert_ne!(moved.body, home);
    let new_cookie = moved.set_cookie("srv").expect("re-pinned cookie");
    for _ in 0..4 {
        assert_eq!(
            with_cookie(&url, &format!("srv={new_cookie}")).body,
            moved.body
        );
    }
}

#[test]
fn strict_cookie_and_strict_failover_answer_503() {
    let dir = TempDir::new("aff-strict");
    let (mut procs, ports) = apps(&["a", "b"]);
    let port = free_port();
    let extra =
        format!("balance = \"cookie\"\nkeys = [\"{KEY}\"]\nstrict = true\nfailover = \"strict\"");
    let _t = tether(&dir, &config(port, &ports, &extra, ""), &[port]);
    let url = format!("http://127.0.0.1:{port}/whoami");
    let first = fetch(&url, &[]);
    let cookie = first
        .set_cookie("tether_server")
        .expect("default cookie name");
    assert_eq!(
        with_cookie(&url, "tether_server=AAAAnotavalidcookie").status,
        503,
        "strict: a forged cookie is refused"
    );
    let idx = if first.body == "a" { 0 } else { 1 };
    drop(procs.remove(idx));
    let r = with_cookie(&url, &format!("tether_server={cookie}"));
    assert_eq!(r.status, 503, "strict failover: {}", r.body);
    assert!(r.body.contains("not available"), "{}", r.body);
    // A new session still gets the server that is up.
    assert_eq!(fetch(&url, &[]).status, 200);
}

#[test]
fn two_instances_with_shared_keys_agree_and_an_old_key_still_opens() {
    let dir = TempDir::new("aff-two");
    let (_procs, ports) = apps(&["a", "b", "c"]);
    let (p1, p2) = (free_port(), free_port());
    let one = format!("balance = \"cookie\"\nkeys = [\"{OLD_KEY}\"]");
    // The second instance seals with a new key and still opens the old one (rotation).
    let two = format!("balance = \"cookie\"\nkeys = [\"{KEY}\", \"{OLD_KEY}\"]");
    let d2 = TempDir::new("aff-two-b");
    let _t1 = tether(&dir, &config(p1, &ports, &one, ""), &[p1]);
    let _t2 = tether(&d2, &config(p2, &ports, &two, ""), &[p2]);
    for _ in 0..3 {
        let r = fetch(&format!("http://127.0.0.1:{p1}/login"), &[]);
        let c = r.set_cookie("tether_server").expect("cookie");
        let sid = r.set_cookie("SID").expect("app session");
        let cookies = format!("tether_server={c}; SID={sid}");
        let via_two = with_cookie(&format!("http://127.0.0.1:{p2}/session"), &cookies);
        assert_eq!(
            via_two.status, 200,
            "session lost across instances: {}",
            via_two.body
        );
        assert_eq!(via_two.body, format!("{} {sid}", r.body));
    }
}

#[test]
fn session_id_tag_routes_is_stripped_for_the_backend_and_unknown_servers_get_503() {
    let dir = TempDir::new("aff-sid");
    let (_procs, ports) = apps(&["a", "b", "c"]);
    let port = free_port();
    let extra = format!("balance = \"session_id\"\nsession_cookie = \"SID\"\nkeys = [\"{KEY}\"]");
    let _t = tether(&dir, &config(port, &ports, &extra, ""), &[port]);
    let base = format!("http://127.0.0.1:{port}");
    let login = fetch(&format!("{base}/login"), &[]);
    let tagged = login.set_cookie("SID").expect("session cookie");
    let (tag, original) = tagged.split_once('.').expect("<tag>.<original>");
    assert!(
        original.starts_with(&format!("{}-", login.body)),
        "{tagged}"
    );
    assert!(
        !tag.contains("127.0.0.1") && !tag.contains(&ports[0].to_string()),
        "{tag}"
    );
    // The tagged session goes home every time; the backend sees its own value.
    for _ in 0..6 {
        let r = with_cookie(&format!("{base}/session"), &format!("SID={tagged}"));
        assert_eq!(
            (r.status, r.body.clone()),
            (200, format!("{} {original}", login.body))
        );
    }
    let echo = with_cookie(&format!("{base}/echo"), &format!("a=1; SID={tagged}; b=2"));
    assert!(
        echo.body
            .contains(&format!("cookie=a=1; SID={original}; b=2")),
        "{}",
        echo.body
    );
    // An untagged value is balanced (round robin) and forwarded as it is.
    let seen: std::collections::HashSet<String> = (0..6)
        .map(|_| with_cookie(&format!("{base}/whoami"), "SID=plain").body)
        .collect();
    assert!(seen.len() >= 2, "{seen:?}");

    // A tag sealed for a server that is not in this pool: 503 with a clear body.
    let other_port = free_port();
    let d2 = TempDir::new("aff-sid-2");
    let (_z, zports) = apps(&["z"]);
    let zcfg = config(other_port, &zports, &extra, "").replace("id = \"a\"", "id = \"zz\"");
    let _t2 = tether(&d2, &zcfg, &[other_port]);
    let foreign = fetch(&format!("http://127.0.0.1:{other_port}/login"), &[])
        .set_cookie("SID")
        .expect("foreign tag");
    let r = with_cookie(&format!("{base}/whoami"), &format!("SID={foreign}"));
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(r.body.contains("not available"), "{}", r.body);
}

#[test]
fn session_id_in_a_header_and_repin_of_unknown_tags() {
    let dir = TempDir::new("aff-sid-hdr");
    let (_procs, ports) = apps(&["a", "b"]);
    let port = free_port();
    let extra = format!(
        "balance = \"session_id\"\nsession_header = \"X-Session-Id\"\nkeys = [\"{KEY}\"]\nunknown_tag = \"repin\""
    );
    let _t = tether(&dir, &config(port, &ports, &extra, ""), &[port]);
    let base = format!("http://127.0.0.1:{port}");
    let login = fetch(&format!("{base}/login-header"), &[]);
    let tagged = header(&login.head, "x-session-id")
        .expect("tagged header")
        .to_string();
    let original = tagged.split_once('.').expect("tag").1.to_string();
    let h = format!("X-Session-Id: {tagged}");
    for _ in 0..4 {
        let r = fetch(&format!("{base}/session"), &["-H", &h]);
        assert_eq!(r.body, format!("{} {original}", login.body));
    }
    // A tag naming no server of the pool is re-pinned (served), not refused.
    let r = fetch(
        &format!("{base}/whoami"),
        &["-H", "X-Session-Id: AAAA.nothing"],
    );
    assert_eq!(r.status, 200);
}

#[test]
fn learned_sessions_follow_the_backend_cookie_and_repin_when_the_server_dies() {
    let dir = TempDir::new("aff-learn");
    let (mut procs, ports) = apps(&["a", "b", "c"]);
    let port = free_port();
    let extra = "balance = \"learn\"\nsession_cookie = \"SID\"";
    let _t = tether(&dir, &config(port, &ports, extra, ""), &[port]);
    let base = format!("http://127.0.0.1:{port}");
    let mut homes = HashMap::new();
    for _ in 0..3 {
        let r = fetch(&format!("{base}/login"), &[]);
        let sid = r
            .set_cookie("SID")
            .expect("backend cookie passes untouched");
        assert!(sid.starts_with(&format!("{}-", r.body)), "{sid}");
        homes.insert(sid, r.body);
    }
    for (sid, home) in &homes {
        for _ in 0..3 {
            let r = with_cookie(&format!("{base}/session"), &format!("SID={sid}"));
            assert_eq!((r.status, r.body.clone()), (200, format!("{home} {sid}")));
        }
    }
    // Kill one home: its sessions are re-pinned to a live server (the app there does not
    // know them: 401 from a live server, not 502), the others stay.
    let (dead_sid, dead_home) = homes
        .iter()
        .next()
        .map(|(s, h)| (s.clone(), h.clone()))
        .expect("one");
    let idx = ["a", "b", "c"]
        .iter()
        .position(|n| *n == dead_home)
        .expect("name");
    drop(procs.remove(idx));
    let r = with_cookie(&format!("{base}/session"), &format!("SID={dead_sid}"));
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(!r.body.starts_with(&dead_home));
    let again = with_cookie(&format!("{base}/whoami"), &format!("SID={dead_sid}"));
    assert_eq!(
        again.body,
        r.body.split(' ').next().unwrap_or_default(),
        "re-pin sticks"
    );
}

#[test]
fn learned_sessions_are_shared_through_redis_between_instances() {
    let Some(redis) = Redis::start_new() else {
        return;
    };
    let dir = TempDir::new("aff-redis");
    let (_procs, ports) = apps(&["a", "b", "c"]);
    let (p1, p2) = (free_port(), free_port());
    let extra = "balance = \"learn\"\nsession_cookie = \"SID\"";
    let top = format!("store = \"redis://127.0.0.1:{}/0\"", redis.port);
    let _t1 = tether(&dir, &config(p1, &ports, extra, &top), &[p1]);
    let d2 = TempDir::new("aff-redis-2");
    // The second instance starts after the sessions exist: it must ask Redis.
    let mut logins = Vec::new();
    for _ in 0..3 {
        let r = fetch(&format!("http://127.0.0.1:{p1}/login"), &[]);
        logins.push((r.set_cookie("SID").expect("sid"), r.body));
    }
    let _t2 = tether(&d2, &config(p2, &ports, extra, &top), &[p2]);
    for (sid, home) in &logins {
        let ok = eventually(Duration::from_secs(5), || {
            with_cookie(
                &format!("http://127.0.0.1:{p2}/session"),
                &format!("SID={sid}"),
            )
            .body
                == format!("{home} {sid}")
        });
        assert!(ok, "instance 2 does not know session {sid} of {home}");
    }
}

#[test]
fn redis_down_does_not_fail_requests() {
    let dir = TempDir::new("aff-redis-down");
    let (_procs, ports) = apps(&["a", "b"]);
    let port = free_port();
    let dead = dead_port();
    let extra = "balance = \"learn\"\nsession_cookie = \"SID\"";
    let top = format!("store = \"redis://127.0.0.1:{dead}/0\"");
    let t = tether(&dir, &config(port, &ports, extra, &top), &[port]);
    let r = fetch(&format!("http://127.0.0.1:{port}/login"), &[]);
    let sid = r.set_cookie("SID").expect("sid");
    for _ in 0..5 {
        let s = with_cookie(
            &format!("http://127.0.0.1:{port}/session"),
            &format!("SID={sid}"),
        );
        assert_eq!(s.status, 200, "{}", s.body);
    }
    assert!(t.wait_log("redis unreachable"));
    assert_eq!(
        t.log_text().matches("redis unreachable").count(),
        1,
        "logged once per outage"
    );
}

#[test]
fn ip_hash_weights_drain_and_backup() {
    let dir = TempDir::new("aff-iphash");
    let (_procs, ports) = apps(&["a", "b", "c"]);
    let port = free_port();
    let _t = tether(
        &dir,
        &config(port, &ports, "balance = \"ip_hash\"", ""),
        &[port],
    );
    let url = format!("http://127.0.0.1:{port}/whoami");
    // Each client address keeps its server; several addresses use several servers.
    let mut used = std::collections::HashSet::new();
    for last in 2..10 {
        let ip = format!("127.0.0.{last}");
        let first = fetch(&url, &["--interface", &ip]).body;
        for _ in 0..3 {
            assert_eq!(fetch(&url, &["--interface", &ip]).body, first, "{ip} moved");
        }
        used.insert(first);
    }
    assert!(used.len() >= 2, "{used:?}");

    // Weights 2:1 (smooth round robin), a drained server and a backup get nothing.
    let d2 = TempDir::new("aff-weights");
    let (_more, extra_ports) = apps(&["d", "e"]);
    let p2 = free_port();
    let cfg = format!(
        r#"[[upstream]]
name = "app"
servers = [
  {{ id = "a", addr = "127.0.0.1:{}", weight = 2 }},
  {{ id = "b", addr = "127.0.0.1:{}" }},
  {{ id = "c", addr = "127.0.0.1:{}", drain = true }},
  {{ id = "d", addr = "127.0.0.1:{}", backup = true }},
]

[[server]]
listen = ["127.0.0.1:{p2}"]

[[server.route]]
path = "/"
proxy = "app"
"#,
        ports[0], ports[1], ports[2], extra_ports[0]
    );
    let _t2 = tether(&d2, &cfg, &[p2]);
    let mut counts: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        *counts
            .entry(fetch(&format!("http://127.0.0.1:{p2}/whoami"), &[]).body)
            .or_default() += 1;
    }
    assert_eq!(counts.get("a"), Some(&20), "{counts:?}");
    assert_eq!(counts.get("b"), Some(&10), "{counts:?}");
}

#[test]
fn health_checks_take_a_server_out_and_back() {
    let dir = TempDir::new("aff-health");
    let (_procs, ports) = apps(&["a", "b"]);
    let port = free_port();
    let extra = "[upstream.health]\npath = \"/health\"\ninterval_ms = 100\ntimeout_ms = 500\nrise = 1\nfall = 1";
    let t = tether(&dir, &config(port, &ports, extra, ""), &[port]);
    let url = format!("http://127.0.0.1:{port}/whoami");
    // b reports itself down (on its own port, not through tether).
    assert_eq!(
        get(&format!("http://127.0.0.1:{}/admin/down", ports[1])).0,
        200
    );
    let only_a = eventually(Duration::from_secs(5), || {
        (0..4).all(|_| fetch(&url, &[]).body == "a")
    });
    assert!(only_a, "b still gets requests; log:\n{}", t.log_text());
    assert_eq!(
        get(&format!("http://127.0.0.1:{}/admin/up", ports[1])).0,
        200
    );
    let b_back = eventually(Duration::from_secs(5), || {
        (0..4).any(|_| fetch(&url, &[]).body == "b")
    });
    assert!(b_back, "b did not come back");
}

#[test]
fn a_refused_connect_is_retried_on_another_server_and_the_server_is_ejected() {
    let dir = TempDir::new("aff-passive");
    let (_procs, ports) = apps(&["a"]);
    let dead = dead_port();
    let port = free_port();
    let cfg = config(
        port,
        &[ports[0], dead],
        "max_fails = 1\nfail_timeout_ms = 60000",
        "",
    );
    let t = tether(&dir, &cfg, &[port]);
    let url = format!("http://127.0.0.1:{port}/whoami");
    for _ in 0..6 {
        let r = fetch(&url, &[]);
        assert_eq!((r.status, r.body.as_str()), (200, "a"), "{}", r.head);
    }
    let log = t.log_text();
    assert!(log.contains(&format!("127.0.0.1:{dead}")), "{log}");
    // Ejected after the first failure: later requests do not try it again.
    let tries = log.matches(&format!("upstream 127.0.0.1:{dead}")).count();
    assert_eq!(tries, 1, "{log}");
}

#[test]
fn ip_hash_on_a_header_a_cookie_or_a_query_parameter() {
    // `hash_key`: the rendezvous hash over a part of the request instead of the client
    // address (all these clients share 127.0.0.1): each user's requests reach one server,
    // over HTTP/1.1 and HTTP/2, and users spread over the servers.
    let (_procs, ports) = apps(&["a", "b", "c"]);
    for (key, how) in [
        ("header:X-User", "header"),
        ("cookie:uid", "cookie"),
        ("query:user", "query"),
    ] {
        let dir = TempDir::new("aff-hash-key");
        let port = free_port();
        let extra = format!("balance = \"ip_hash\"\nhash_key = \"{key}\"");
        let config = config(port, &ports, &extra, "")
            .replace("\n\n[[server.route]]", "\nhttp2 = true\n\n[[server.route]]");
        let _t = tether(&dir, &config, &[port]);
        let mut homes = std::collections::HashSet::new();
        for user in 0..12 {
            let name = format!("user-{user}");
            let (url, header) = match how {
                "header" => (
                    format!("http://127.0.0.1:{port}/whoami"),
                    format!("X-User: {name}"),
                ),
                "cookie" => (
                    format!("http://127.0.0.1:{port}/whoami"),
                    format!("Cookie: a=1; uid={name}; z=2"),
                ),
                _ => (
                    format!("http://127.0.0.1:{port}/whoami?x=1&user={name}"),
                    "X-Other: 1".to_string(),
                ),
            };
            let served: std::collections::HashSet<String> = (0..6)
                .map(|i| {
                    let proto = if i % 2 == 0 {
                        "--http1.1"
                    } else {
                        "--http2-prior-knowledge"
                    };
                    let r = fetch(&url, &[proto, "-H", &header]);
                    assert_eq!(r.status, 200, "{key} {name}: {}", r.head);
                    r.body
                })
                .collect();
            assert_eq!(served.len(), 1, "{key} {name} moved: {served:?}");
            homes.extend(served);
        }
        assert!(homes.len() >= 2, "{key}: 12 users all on {homes:?}");
        // Without the key: balanced (least connections), still served.
        let r = fetch(&format!("http://127.0.0.1:{port}/whoami"), &[]);
        assert_eq!(r.status, 200, "{key} without it: {}", r.head);
    }
}

#[test]
fn a_bad_hash_key_is_a_check_error_with_its_position() {
    let dir = TempDir::new("aff-hash-key-bad");
    for (extra, want) in [
        (
            "balance = \"ip_hash\"\nhash_key = \"body:x\"",
            "hint: \"client_ip\"",
        ),
        ("hash_key = \"header:x\"", "needs `balance = \"ip_hash\"`"),
    ] {
        let config = config(free_port(), &[dead_port()], extra, "");
        let cfg = dir.write("tether.toml", config.as_bytes());
        let out = std::process::Command::new(TETHER)
            .args(["check", cfg.to_str().expect("utf-8 path")])
            .output()
            .expect("tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        // The position of the `hash_key` value (`hash_key = ` is 11 characters).
        let line = config
            .lines()
            .position(|l| l.starts_with("hash_key"))
            .expect("the line")
            + 1;
        let at = format!("{}:{line}:12: ", cfg.display());
        assert!(err.starts_with(&at), "want {at}: {err}");
        assert!(err.contains(want), "{err}");
    }
}
