//! More session affinity end to end, through the real tether binary with stateful python
//! apps (`tests/support_app.py`, `tests/support_hold_app.py`) and a real `redis-server`:
//! least connections with a request held open, the session id in a query parameter,
//! stickiness across a tether restart (sealed cookie and tag: same keys, same server, no
//! store), a draining server that keeps its pinned sessions, a sample of tampered, forged
//! and expired cookies (none accepted; the 10,000-token version is
//! `crates/balance/tests/forgery.rs`), and Redis killed and restarted during a request loop
//! that sees only 200s.

mod affinity_support;
mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use affinity_support::*;
use common::*;

/// Several GETs of `url` in one curl run (curl keeps one keep-alive connection), request i
/// sending header `headers[i]`; the replies in order.
fn fetch_many(url: &str, headers: &[String]) -> Vec<Reply> {
    const END: &str = "\n<<END>>\n";
    let mut args: Vec<&str> = Vec::new();
    for (i, h) in headers.iter().enumerate() {
        if i > 0 {
            args.push("--next");
        }
        args.extend(["-s", "-i", "--max-time", "20", "-w", END, "-H", h, url]);
    }
    let out = curl(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let replies: Vec<Reply> = text
        .split(END)
        .filter(|t| !t.is_empty())
        .map(parse_reply)
        .collect();
    assert_eq!(replies.len(), headers.len(), "curl output:\n{text}");
    replies
}

/// `tests/support_hold_app.py` named `name` on a free port.
fn hold_app(name: &str) -> (Proc, u16) {
    let port = free_port();
    let child = std::process::Command::new("python3")
        .arg(repo().join("tests/support_hold_app.py"))
        .args([&port.to_string(), name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn python3");
    let p = Proc { child, log: None };
    wait_port(port);
    (p, port)
}

/// `/hold` requests waiting on each server (asked directly).
fn inflight(ports: &[u16]) -> Vec<usize> {
    ports
        .iter()
        .map(|p| {
            let (_, body) = get(&format!("http://127.0.0.1:{p}/inflight"));
            String::from_utf8_lossy(&body).trim().parse().unwrap_or(0)
        })
        .collect()
}

#[test]
fn least_connections_sends_new_requests_away_from_busy_servers() {
    let dir = TempDir::new("aff-lc");
    let names = ["a", "b", "c"];
    let (procs, ports): (Vec<Proc>, Vec<u16>) = names.iter().map(|n| hold_app(n)).unzip();
    let port = free_port();
    let _t = tether(
        &dir,
        &config(port, &ports, "balance = \"least_connections\"", ""),
        &[port],
    );
    let base = format!("http://127.0.0.1:{port}");
    let whoami = || fetch(&format!("{base}/whoami"), &[]).body;

    // Idle pool: ties take turns, every server gets requests.
    let idle: HashSet<String> = (0..6).map(|_| whoami()).collect();
    assert_eq!(idle.len(), 3, "{idle:?}");

    // Hold one request open: it occupies one server (one active connection there).
    let hold = |base: String| std::thread::spawn(move || fetch(&format!("{base}/hold"), &[]));
    let first = hold(base.clone());
    assert!(
        eventually(Duration::from_secs(10), || inflight(&ports)
            .iter()
            .sum::<usize>()
            == 1),
        "the held request never reached a server"
    );
    let counts = inflight(&ports);
    let busy = counts
        .iter()
        .position(|&n| n == 1)
        .expect("one busy server");
    let seen: HashSet<String> = (0..6).map(|_| whoami()).collect();
    let others: HashSet<String> = names
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != busy)
        .map(|(_, n)| n.to_string())
        .collect();
    assert_eq!(seen, others, "server {} is busy", names[busy]);

    // A second held request goes to an idle server; then only the last idle one is used.
    let second = hold(base.clone());
    assert!(
        eventually(Duration::from_secs(10), || inflight(&ports)
            .iter()
            .sum::<usize>()
            == 2),
        "the second held request never reached a server"
    );
    let counts = inflight(&ports);
    assert_eq!(counts[busy], 1, "both held on one server: {counts:?}");
    let free = counts
        .iter()
        .position(|&n| n == 0)
        .expect("one idle server");
    for _ in 0..5 {
        assert_eq!(whoami(), names[free], "{counts:?}");
    }

    // Release them: both answer 200 from where they were held; the pool spreads again.
    for p in &ports {
        get(&format!("http://127.0.0.1:{p}/release"));
    }
    let (r1, r2) = (
        first.join().expect("first hold"),
        second.join().expect("second hold"),
    );
    assert_eq!((r1.status, r1.body.as_str()), (200, names[busy]));
    assert_eq!(r2.status, 200);
    let after: HashSet<String> = (0..6).map(|_| whoami()).collect();
    assert_eq!(after.len(), 3, "{after:?}");
    drop(procs);
}

#[test]
fn session_id_in_a_query_parameter_routes_and_is_stripped() {
    let dir = TempDir::new("aff-query");
    let (_procs, ports) = apps(&["a", "b", "c"]);
    let port = free_port();
    let extra = format!(
        "balance = \"session_id\"\nsession_query = \"sid\"\n\
         session_response_header = \"X-Session-Id\"\nkeys = [\"{KEY}\"]"
    );
    let _t = tether(&dir, &config(port, &ports, &extra, ""), &[port]);
    let base = format!("http://127.0.0.1:{port}");

    // Three new sessions (round robin: one per server), handed out tagged.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let login = fetch(&format!("{base}/login-header"), &[]);
        let tagged = header(&login.head, "x-session-id")
            .expect("tagged session id")
            .to_string();
        let (_, original) = tagged.split_once('.').expect("<tag>.<original>");
        assert!(
            original.starts_with(&format!("{}-", login.body)),
            "{tagged}"
        );
        sessions.push((tagged.clone(), original.to_string(), login.body));
    }
    let homes: HashSet<&String> = sessions.iter().map(|s| &s.2).collect();
    assert_eq!(homes.len(), 3);

    for (tagged, original, home) in &sessions {
        // Every request with ?sid=<tagged> goes home; the app sees its own id.
        for _ in 0..3 {
            let r = fetch(&format!("{base}/session?sid={tagged}"), &[]);
            assert_eq!(
                (r.status, r.body.clone()),
                (200, format!("{home} {original}"))
            );
        }
        let echo = fetch(&format!("{base}/echo?x=1&sid={tagged}&y=2"), &[]);
        assert!(
            echo.body
                .contains(&format!("target=/echo?x=1&sid={original}&y=2\n")),
            "{}",
            echo.body
        );
        // A tampered tag is not a tag: balanced, and forwarded exactly as sent.
        let mut bad = tagged.clone().into_bytes();
        bad[10] = if bad[10] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("ascii");
        let echo = fetch(&format!("{base}/echo?sid={bad}"), &[]);
        assert!(
            echo.body.contains(&format!("target=/echo?sid={bad}\n")),
            "{}",
            echo.body
        );
    }
    // Untagged values are balanced over the servers.
    let seen: HashSet<String> = (0..6)
        .map(|_| fetch(&format!("{base}/whoami?sid=plain"), &[]).body)
        .collect();
    assert!(seen.len() >= 2, "{seen:?}");
}

/// Log in on every server of a fresh tether: (affinity cookie or tagged id, app SID, home).
fn three_sessions(base: &str, kind: &str) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for _ in 0..3 {
        let r = fetch(&format!("{base}/login"), &[]);
        assert_eq!(r.status, 200, "{}", r.head);
        let sid = r.set_cookie("SID").expect("app session cookie");
        let affinity = match kind {
            "cookie" => r.set_cookie("srv").expect("affinity cookie"),
            _ => sid.clone(),
        };
        out.push((affinity, sid, r.body));
    }
    let homes: HashSet<&String> = out.iter().map(|s| &s.2).collect();
    assert_eq!(homes.len(), 3, "round robin over three servers: {homes:?}");
    out
}

#[test]
fn sealed_cookies_and_session_tags_survive_a_tether_restart() {
    let (_procs, ports) = apps(&["a", "b", "c"]);
    for kind in ["cookie", "session_id"] {
        let dir = TempDir::new("aff-restart");
        let port = free_port();
        let extra = match kind {
            "cookie" => format!("balance = \"cookie\"\ncookie_name = \"srv\"\nkeys = [\"{KEY}\"]"),
            _ => format!("balance = \"session_id\"\nsession_cookie = \"SID\"\nkeys = [\"{KEY}\"]"),
        };
        let cfg = config(port, &ports, &extra, "");
        let base = format!("http://127.0.0.1:{port}");
        let first = tether(&dir, &cfg, &[port]);
        let sessions = three_sessions(&base, kind);
        drop(first);
        // A new process: empty memory, round robin starting over at "a". Only the keys are
        // the same; sessions on b and c must still find their server.
        let _second = tether(&dir, &cfg, &[port]);
        for (affinity, sid, home) in &sessions {
            let cookie = match kind {
                "cookie" => format!("srv={affinity}; SID={sid}"),
                _ => format!("SID={sid}"),
            };
            for _ in 0..3 {
                let r = with_cookie(&format!("{base}/session"), &cookie);
                let original = sid.split_once('.').map_or(sid.as_str(), |(_, o)| o);
                assert_eq!(
                    (r.status, r.body.clone()),
                    (200, format!("{home} {original}")),
                    "{kind}: session of {home} lost after the restart"
                );
                assert!(
                    r.set_cookie("srv").is_none(),
                    "{kind}: re-issued: {}",
                    r.head
                );
                assert!(
                    r.set_cookie("SID").is_none(),
                    "{kind}: re-tagged: {}",
                    r.head
                );
            }
        }
    }
}

#[test]
fn a_draining_server_keeps_its_pinned_sessions_but_gets_no_new_ones() {
    let (_procs, ports) = apps(&["a", "b"]);
    let port = free_port();
    let dir = TempDir::new("aff-drain");
    let cfg = |drain_a: bool| {
        format!(
            "[[upstream]]\nname = \"app\"\nservers = [\n\
             {{ id = \"a\", addr = \"127.0.0.1:{}\", drain = {drain_a} }},\n\
             {{ id = \"b\", addr = \"127.0.0.1:{}\" }},\n]\n\
             balance = \"cookie\"\ncookie_name = \"srv\"\nkeys = [\"{KEY}\"]\n\n\
             [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n\
             [[server.route]]\npath = \"/\"\nproxy = \"app\"\n",
            ports[0], ports[1]
        )
    };
    let base = format!("http://127.0.0.1:{port}");
    let first = tether(&dir, &cfg(false), &[port]);
    let mut pinned = HashMap::new();
    for _ in 0..2 {
        let r = fetch(&format!("{base}/login"), &[]);
        let cookies = format!(
            "srv={}; SID={}",
            r.set_cookie("srv").expect("affinity cookie"),
            r.set_cookie("SID").expect("app session")
        );
        pinned.insert(r.body, cookies);
    }
    assert_eq!(pinned.len(), 2, "one session on each server");
    drop(first);

    // The same pool with a draining: its sessions stay, new ones all go to b.
    let _second = tether(&dir, &cfg(true), &[port]);
    for (home, cookies) in &pinned {
        for _ in 0..3 {
            let r = with_cookie(&format!("{base}/session"), cookies);
            assert_eq!(r.status, 200, "{home}: {}", r.body);
            assert!(r.body.starts_with(&format!("{home} ")), "{}", r.body);
            assert!(r.set_cookie("srv").is_none(), "{}", r.head);
        }
    }
    for _ in 0..6 {
        let r = fetch(&format!("{base}/login"), &[]);
        assert_eq!(r.body, "b", "a new session on the draining server");
        assert!(r.set_cookie("srv").is_some());
    }
}

#[test]
fn tampered_forged_and_expired_cookies_are_not_accepted() {
    let dir = TempDir::new("aff-forged");
    let (_procs, ports) = apps(&["a", "b"]);
    let port = free_port();
    let extra = format!(
        "balance = \"cookie\"\ncookie_name = \"srv\"\ncookie_ttl_s = 2\nkeys = [\"{KEY}\"]"
    );
    let _t = tether(&dir, &config(port, &ports, &extra, ""), &[port]);
    let url = format!("http://127.0.0.1:{port}/whoami");
    let header_for = |c: &str| format!("Cookie: srv={c}");

    // Genuine cookies are accepted: no new cookie, same server.
    let genuine: Vec<(String, String)> = (0..20)
        .map(|_| {
            let r = fetch(&url, &[]);
            assert!(r.head.contains("Max-Age=2"), "{}", r.head);
            (r.set_cookie("srv").expect("cookie"), r.body)
        })
        .collect();
    let headers: Vec<String> = genuine.iter().map(|(c, _)| header_for(c)).collect();
    for (r, (_, home)) in fetch_many(&url, &headers).iter().zip(&genuine) {
        assert_eq!(&r.body, home);
        assert!(
            r.set_cookie("srv").is_none(),
            "a genuine cookie was refused"
        );
    }

    // Tampered (one character changed, truncated, extended) and forged (random) cookies:
    // each is answered with a fresh cookie, i.e. it was not accepted.
    const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let noise = noise(4096, 7);
    let mut bad = Vec::new();
    for (i, (c, _)) in genuine.iter().enumerate() {
        for k in 0..5 {
            let mut b = c.clone().into_bytes();
            let at = (i * 7 + k * 13) % b.len();
            let mut with = B64[noise[i * 5 + k] as usize % 64];
            if with == b[at] {
                with = if with == b'A' { b'B' } else { b'A' };
            }
            b[at] = with;
            bad.push(String::from_utf8(b).expect("ascii"));
        }
        bad.push(c[..c.len() - 1 - i % 8].to_string());
        bad.push(format!("{c}{}", &c[..1 + i % 4]));
        let forged: String = noise[200 + i * 72..200 + (i + 1) * 72]
            .iter()
            .map(|&n| B64[n as usize % 64] as char)
            .collect();
        bad.push(forged);
    }
    assert_eq!(bad.len(), 160);
    let headers: Vec<String> = bad.iter().map(|c| header_for(c)).collect();
    for (r, sent) in fetch_many(&url, &headers).iter().zip(&bad) {
        assert_eq!(r.status, 200);
        let fresh = r.set_cookie("srv");
        assert!(
            fresh.as_ref().is_some_and(|f| f != sent),
            "cookie accepted: {sent}"
        );
    }

    // Expired: the same genuine cookies once their 2 s are over.
    std::thread::sleep(Duration::from_millis(2100));
    let headers: Vec<String> = genuine.iter().map(|(c, _)| header_for(c)).collect();
    let expired_refused = eventually(Duration::from_secs(5), || {
        fetch_many(&url, &headers)
            .iter()
            .all(|r| r.set_cookie("srv").is_some())
    });
    assert!(expired_refused, "an expired cookie was accepted");
}

#[test]
fn redis_killed_and_restarted_during_a_request_loop_fails_no_request() {
    let Some(mut redis) = Redis::start_new() else {
        return;
    };
    let (_procs, ports) = apps(&["a", "b"]);
    let (p1, p2) = (free_port(), free_port());
    let extra = "balance = \"learn\"\nsession_cookie = \"SID\"";
    let top = format!("store = \"{}\"", redis.url());
    let (d1, d2) = (TempDir::new("aff-rr-1"), TempDir::new("aff-rr-2"));
    let t1 = tether(&d1, &config(p1, &ports, extra, &top), &[p1]);
    let t2 = tether(&d2, &config(p2, &ports, extra, &top), &[p2]);

    // Four sessions learned through instance 1, known to instance 2 through Redis.
    let mut sessions = Vec::new();
    for _ in 0..4 {
        let r = fetch(&format!("http://127.0.0.1:{p1}/login"), &[]);
        sessions.push((r.set_cookie("SID").expect("SID"), r.body));
    }
    for (sid, home) in &sessions {
        let known = eventually(Duration::from_secs(5), || {
            with_cookie(
                &format!("http://127.0.0.1:{p2}/session"),
                &format!("SID={sid}"),
            )
            .body
                == format!("{home} {sid}")
        });
        assert!(known, "instance 2 does not know {sid}");
    }

    // The loop: sessions alternately through both instances, and every 8th turn a new
    // session used at once on the instance that learned it. Every answer must be a 200 from
    // the session's own server.
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicUsize::new(0));
    let looper = {
        let (stop, done, sessions) = (stop.clone(), done.clone(), sessions.clone());
        std::thread::spawn(move || {
            let mut failures = Vec::new();
            for i in 0..5000usize {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let port = [p1, p2][i % 2];
                let (sid, home) = if i % 8 == 7 {
                    let r = fetch(&format!("http://127.0.0.1:{port}/login"), &[]);
                    if r.status != 200 {
                        failures.push(format!("login {i}: {} {}", r.status, r.body));
                        continue;
                    }
                    (r.set_cookie("SID").unwrap_or_default(), r.body)
                } else {
                    sessions[i % sessions.len()].clone()
                };
                let r = with_cookie(
                    &format!("http://127.0.0.1:{port}/session"),
                    &format!("SID={sid}"),
                );
                if (r.status, r.body.clone()) != (200, format!("{home} {sid}")) {
                    failures.push(format!("request {i} via {port}: {} {}", r.status, r.body));
                }
                done.fetch_add(1, Ordering::SeqCst);
            }
            failures
        })
    };
    let progress = |n: usize| {
        let target = done.load(Ordering::SeqCst) + n;
        assert!(
            eventually(Duration::from_secs(30), || done.load(Ordering::SeqCst)
                >= target),
            "the request loop stalled"
        );
    };
    progress(20);
    redis.stop();
    let both_warned = eventually(Duration::from_secs(10), || {
        [&t1, &t2]
            .iter()
            .all(|t| t.log_text().contains("redis unreachable"))
    });
    assert!(both_warned, "log:\n{}", t1.log_text());
    progress(30);
    redis.start();
    let both_back = eventually(Duration::from_secs(15), || {
        [&t1, &t2]
            .iter()
            .all(|t| t.log_text().contains("redis back"))
    });
    assert!(both_back, "log:\n{}", t1.log_text());
    progress(30);
    stop.store(true, Ordering::SeqCst);
    let failures = looper.join().expect("loop thread");
    assert!(
        failures.is_empty(),
        "{} failed of {}:\n{}",
        failures.len(),
        done.load(Ordering::SeqCst),
        failures.join("\n")
    );
}
