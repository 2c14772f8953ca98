//! WebSocket through tether: a Python `websockets` client, tether's `http` listener, a
//! Python `websockets` echo server. After the upstream's `101` the session is a tunnel.

mod common;

use common::*;

#[test]
fn websocket_echo_through_the_proxy() {
    let dir = TempDir::new("ws");
    let (up, port) = (free_port(), free_port());
    let _server = ws_echo_server(up);
    let cfg = format!("[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\n");
    let t = tether(&dir, &cfg, &[port]);
    let got = ws_client(&format!("ws://127.0.0.1:{port}/chat"), 50, None);
    assert_eq!(got, "ok 50", "{}", t.log_text());
}

#[test]
fn websocket_over_http2_extended_connect_to_an_http11_server() {
    // RFC 8441: the client's CONNECT with `:protocol websocket` on an h2c connection is the
    // HTTP/1.1 upgrade to the server, its 101 the client's 200, then DATA both ways.
    let dir = TempDir::new("ws-h2");
    let (up, port) = (free_port(), free_port());
    let _server = ws_echo_server(up);
    let cfg = format!("access_log = \"access.log\"\n{}", h2_listener(port, up));
    let t = tether(&dir, &cfg, &[port]);
    let got = h2_ws_client("echo", port, "/chat", 20);
    assert_eq!(got, "ok 20", "{}", t.log_text());
    // The stream is logged when it ends: a CONNECT over HTTP/2 answered 200.
    let log = dir.path().join("access.log");
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            std::fs::read_to_string(&log).is_ok_and(|l| l.contains("\"GET /chat HTTP/2.0\" 200"))
        }),
        "{:?}",
        std::fs::read_to_string(&log)
    );
    // HTTP/1.1 WebSockets on the same port still work.
    assert_eq!(
        ws_client(&format!("ws://127.0.0.1:{port}/chat"), 5, None),
        "ok 5"
    );
}

#[test]
fn websocket_over_http2_to_a_server_that_does_not_upgrade() {
    // An HTTP server that ignores the upgrade: its 404 is passed on, and its 200 (which
    // over HTTP/2 would say the WebSocket is open) becomes 502.
    let dir = TempDir::new("ws-h2-no-upgrade");
    let (up, port) = (free_port(), free_port());
    let _up = python_upstream(up);
    let t = tether(&dir, &h2_listener(port, up), &[port]);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/whoami")).0, 200);
    assert_eq!(
        h2_ws_client("status", port, "/no-such-page", 0),
        "status 404"
    );
    assert_eq!(h2_ws_client("status", port, "/whoami", 0), "status 502");
    // A WebSocket asked of tether's own answers (files here) is not served: 501, not a 200
    // that would say it is open.
    let files = free_port();
    let www = dir.path().join("www");
    std::fs::create_dir_all(&www).expect("www");
    std::fs::write(www.join("a.txt"), b"a file\n").expect("file");
    let cfg = format!(
        "[[listener]]\nlisten = \"127.0.0.1:{files}\"\nprotocol = \"http\"\nhttp2 = true\nroot = \"{}\"\n",
        www.display()
    );
    let dir2 = TempDir::new("ws-h2-files");
    let _t2 = tether(&dir2, &cfg, &[files]);
    assert_eq!(
        get(&format!("http://127.0.0.1:{files}/a.txt")).1,
        b"a file\n"
    );
    assert_eq!(h2_ws_client("status", files, "/a.txt", 0), "status 501");
    assert!(
        t.wait_log("answered a WebSocket upgrade with 200: 502"),
        "{}",
        t.log_text()
    );
}

/// An http listener on `port` with HTTP/2 (h2c) proxying everything to `up`.
fn h2_listener(port: u16, up: u16) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nhttp2 = true\nupstream = \"127.0.0.1:{up}\"\n"
    )
}
