//! Servers changed at run time through the admin API, with the real binary (two event-loop
//! threads), stateful apps (`tests/support_app.py`), curl and an HTTP/2 client:
//! `POST /admin/servers/<pool>?addr=..&weight=..` adds a server that takes its share of new
//! users on every thread, `PUT ..?weight=` re-weights it, `DELETE` drains it (its pinned users
//! stay until the drain time, new users go elsewhere) and then drops it; every change is
//! logged and shown in `/admin/status`; a reload goes back to the config file.

mod affinity_support;
mod common;
mod ops_support;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use affinity_support::{fetch, with_cookie, KEY};
use common::*;
use ops_support::{admin, read_key, start, wait_running};
use serde_json::Value;

fn config(port: u16, aport: u16, a: u16, key_file: &std::path::Path) -> String {
    format!(
        "workers = 2\n\
         [[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{a}\"]\n\
         balance = \"cookie\"\ncookie_name = \"srv\"\nkeys = [\"{KEY}\"]\n\
         drain_timeout_ms = 4000\n\
         [upstream.health]\npath = \"/health\"\ninterval_ms = 200\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n\
         [[server.route]]\npath = \"/status\"\nstatus_page = \"html\"\n\
         [admin]\nlisten = \"127.0.0.1:{aport}\"\nkey_file = \"{}\"\n",
        key_file.display()
    )
}

/// Who answers `n` new users (no cookie), alternating HTTP/1.1 and HTTP/2.
fn spread(port: u16, n: usize) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for i in 0..n {
        let body = if i % 2 == 0 {
            fetch(&format!("http://127.0.0.1:{port}/whoami"), &[]).body
        } else {
            h2_get(port, "/whoami", &[]).2
        };
        *counts.entry(body).or_insert(0) += 1;
    }
    counts
}

fn servers(aport: u16, key: &str) -> Vec<Value> {
    let (code, body) = admin(aport, "GET", "/admin/status", key);
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).expect("status json");
    v["pools"][0]["servers"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn find<'a>(list: &'a [Value], id: &str) -> Option<&'a Value> {
    list.iter().find(|s| s["id"] == id)
}

#[test]
fn servers_added_reweighted_and_removed_at_run_time() {
    let dir = TempDir::new("admin-servers");
    let (pa, pb, pc) = (free_port(), free_port(), free_port());
    let _a = python_app(pa, "a");
    let _b = python_app(pb, "b");
    let _c = python_app(pc, "c");
    let (port, aport) = (free_port(), free_port());
    let key_file = dir.path().join("admin.key");
    let cfg = dir.write("tether.toml", config(port, aport, pa, &key_file).as_bytes());
    let mut t = start(&dir, &[cfg.to_str().expect("utf-8")], 1);
    wait_port(port);
    let key = read_key(&key_file);
    let b = format!("127.0.0.1:{pb}");

    // Refusals: a name (nothing is resolved on the loop), an unknown pool, a bad weight.
    let bad = admin(aport, "POST", "/admin/servers/app?addr=localhost:80", &key);
    assert_eq!(bad.0, 400, "{}", bad.1);
    assert!(bad.1.contains("not an IP address"), "{}", bad.1);
    assert_eq!(
        admin(aport, "POST", &format!("/admin/servers/web?addr={b}"), &key).0,
        404
    );
    let zero = admin(
        aport,
        "POST",
        &format!("/admin/servers/app?addr={b}&weight=0"),
        &key,
    );
    assert_eq!(zero.0, 400, "{}", zero.1);
    assert_eq!(spread(port, 4).get("a"), Some(&4));

    // b added with weight 3: on both threads, new users go 1:3 (smooth weighted round robin
    // over the shared pool: exactly 10 and 30 of 40).
    let (code, body) = admin(
        aport,
        "POST",
        &format!("/admin/servers/app?addr={b}&weight=3"),
        &key,
    );
    assert_eq!(code, 201, "{body}");
    assert!(t.wait_log(&format!("pool app server {b}: joined (admin)")));
    assert!(
        t.wait_log("admin: POST /admin/servers/app from 127.0.0.1:"),
        "{}",
        t.log_text()
    );
    assert!(
        t.wait_log(&format!(
            "201 server \"{b}\" ({b}, weight 3) of pool \"app\": added"
        )),
        "{}",
        t.log_text()
    );
    let dup = admin(aport, "POST", &format!("/admin/servers/app?addr={b}"), &key);
    assert_eq!(dup.0, 409, "{}", dup.1);
    let list = servers(aport, &key);
    let sb = find(&list, &b).expect("b in the status");
    assert_eq!(
        (sb["origin"].as_str(), sb["weight"].as_u64()),
        (Some("admin"), Some(3))
    );
    assert_eq!(
        find(&list, &format!("127.0.0.1:{pa}")).expect("a")["origin"],
        "config"
    );
    let counts = spread(port, 40);
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&10), Some(&30)),
        "{counts:?}"
    );

    // Weight 1: 1:1.
    let (code, body) = admin(
        aport,
        "PUT",
        &format!("/admin/servers/app/{b}?weight=1"),
        &key,
    );
    assert_eq!(code, 200, "{body}");
    assert!(
        t.wait_log(&format!("pool app server {b}: weight 3 → 1")),
        "{}",
        t.log_text()
    );
    let counts = spread(port, 20);
    assert_eq!(
        (counts.get("a"), counts.get("b")),
        (Some(&10), Some(&10)),
        "{counts:?}"
    );

    // Two users pinned to b, over HTTP/1.1 and HTTP/2.
    let url = format!("http://127.0.0.1:{port}/login");
    let h1 = (0..10)
        .map(|_| fetch(&url, &[]))
        .find(|r| r.body == "b")
        .expect("a login on b");
    let h1_cookie = format!(
        "SID={}; srv={}",
        h1.set_cookie("SID").expect("SID"),
        h1.set_cookie("srv").expect("srv")
    );
    let h2_cookie = (0..10)
        .map(|_| h2_get(port, "/login", &[]))
        .find(|(_, _, body)| body == "b")
        .map(|(_, headers, _)| {
            let set: Vec<String> = headers
                .iter()
                .filter(|(n, _)| n == "set-cookie")
                .filter_map(|(_, v)| v.split(';').next().map(str::to_string))
                .collect();
            set.join("; ")
        })
        .expect("an HTTP/2 login on b");
    let session = format!("http://127.0.0.1:{port}/session");
    let h2_session = |cookie: &str| {
        let c = format!("cookie={cookie}");
        let (s, _, body) = h2_get(port, "/session", &[&c]);
        (s, body)
    };

    // b removed: drained for 4 s (pinned users stay, new users go to a), then dropped.
    let (code, body) = admin(aport, "DELETE", &format!("/admin/servers/app/{b}"), &key);
    assert_eq!(code, 202, "{body}");
    let removed = Instant::now();
    assert!(t.wait_log(&format!(
        "pool app server {b}: left (admin), draining for 4000 ms"
    )));
    let leaving = find(&servers(aport, &key), &b).expect("b still listed")["leaving_in_ms"]
        .as_u64()
        .expect("leaving_in_ms");
    assert!((1..=4000).contains(&leaving), "{leaving}");
    // The status page shows it too.
    let page = fetch(&format!("http://127.0.0.1:{port}/status"), &[]).body;
    assert!(
        page.contains(&format!("{b} <small>admin</small>")),
        "{page}"
    );
    assert!(page.contains("leaving (admin),"), "{page}");
    let mut checks = 0;
    while removed.elapsed() < Duration::from_millis(2000) {
        let r = with_cookie(&session, &h1_cookie);
        assert!(
            r.body.starts_with("b b-"),
            "HTTP/1.1 user moved while draining: {}",
            r.body
        );
        let (s, body) = h2_session(&h2_cookie);
        assert!(
            s == 200 && body.starts_with("b b-"),
            "HTTP/2 user moved: {body}"
        );
        assert_eq!(spread(port, 4).get("a"), Some(&4), "a new user went to b");
        checks += 1;
    }
    assert!(checks >= 2, "{checks}");
    assert!(eventually(Duration::from_secs(5), || {
        with_cookie(&session, &h1_cookie).body == "a no session"
    }));
    assert!(removed.elapsed() >= Duration::from_millis(4000));
    assert_eq!(h2_session(&h2_cookie), (401, "a no session".to_string()));
    assert!(find(&servers(aport, &key), &b).is_none());
    assert!(t.wait_log(&format!("pool app server {b}: drain time over, dropped")));

    // c added, then a reload: the config file is the truth again (c is gone).
    let c = format!("127.0.0.1:{pc}");
    assert_eq!(
        admin(aport, "POST", &format!("/admin/servers/app?addr={c}"), &key).0,
        201
    );
    assert!(find(&servers(aport, &key), &c).is_some());
    assert_eq!(admin(aport, "POST", "/admin/reload", &key).0, 202);
    wait_running(&mut t, 2);
    assert!(eventually(Duration::from_secs(10), || {
        let list = servers(aport, &key);
        list.len() == 1 && find(&list, &c).is_none()
    }));
    assert_eq!(spread(port, 6).get("a"), Some(&6));
}
