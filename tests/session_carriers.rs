//! Several session id carriers at once (issue 24): an application that sets its id in a
//! cookie and receives it in the query string. `tests/support_app.py` apps (sessions in
//! memory: `/login` sets `SID`, `/session` finds it in the cookie, `X-Session-Id` or
//! `?sid=`) behind tether, with curl (HTTP/1.1) and Python's `h2` (h2c).

mod common;

use std::collections::HashSet;

use common::*;

const KEY: &str = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

fn run(carriers: &str) {
    let dir = TempDir::new("sid-carriers");
    let apps: Vec<(u16, &str)> = ["a", "b", "c"].iter().map(|n| (free_port(), *n)).collect();
    let _procs: Vec<Proc> = apps.iter().map(|(p, n)| python_app(*p, n)).collect();
    let servers: Vec<String> = apps
        .iter()
        .map(|(p, n)| format!("{{ id = \"{n}\", addr = \"127.0.0.1:{p}\" }}"))
        .collect();
    let port = free_port();
    let cfg = format!(
        "[[upstream]]\nname = \"app\"\nservers = [{}]\nbalance = \"session_id\"\n{carriers}\nkeys = [\"{KEY}\"]\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\n\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n",
        servers.join(", ")
    );
    let _t = tether(&dir, &cfg, &[port]);

    // Three logins (round robin: one per app), each cookie's value tagged.
    let mut sessions = Vec::new();
    for _ in 0..3 {
        let (status, head, body) = curl_get(port, "/login", &[]);
        assert_eq!(status, 200);
        let cookie = header(&head, "set-cookie").expect("Set-Cookie");
        let value = cookie
            .strip_prefix("SID=")
            .and_then(|v| v.split(';').next())
            .expect("SID=...");
        let (_, original) = value.split_once('.').expect("<tag>.<original>");
        assert!(original.starts_with(&format!("{body}-")), "{cookie}");
        sessions.push((value.to_string(), original.to_string(), body));
    }
    let homes: HashSet<&String> = sessions.iter().map(|s| &s.2).collect();
    assert_eq!(homes.len(), 3);

    // The id comes back in the query string only: every request goes home, over both
    // protocols, and the app sees its own id.
    for (tagged, original, home) in &sessions {
        let path = format!("/session?sid={tagged}");
        for _ in 0..10 {
            let (status, _, body) = curl_get(port, &path, &[]);
            assert_eq!((status, body), (200, format!("{home} {original}")));
        }
        for _ in 0..3 {
            let (status, _, body) = h2_get(port, &path, &[]);
            assert_eq!((status, body), (200, format!("{home} {original}")));
        }
        // A tampered tag is not honoured: forwarded as sent, balanced.
        let mut bad = tagged.clone().into_bytes();
        bad[12] = if bad[12] == b'A' { b'B' } else { b'A' };
        let bad = String::from_utf8(bad).expect("ascii");
        let (status, _, body) = curl_get(port, &format!("/echo?sid={bad}"), &[]);
        assert_eq!(status, 200);
        assert!(
            body.contains(&format!("target=/echo?sid={bad}\n")),
            "{body}"
        );
    }
}

#[test]
fn id_set_in_a_cookie_and_read_from_the_query_lists() {
    run("session_read = [\"cookie:SID\", \"query:sid\"]\nsession_write = [\"set-cookie:SID\"]");
}

#[test]
fn id_set_in_a_cookie_and_read_from_the_query_single_keys_together() {
    // Refused before issue 24 ("give only one session id carrier").
    run("session_cookie = \"SID\"\nsession_query = \"sid\"");
}
