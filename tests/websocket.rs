//! WebSocket through tether: a Python `websockets` client, tether's `http` listener, a
//! Python `websockets` echo server. After the upstream's `101` the session is a tunnel.

mod common;

use std::process::{Command, Stdio};

use common::*;

#[test]
fn websocket_echo_through_the_proxy() {
    let dir = TempDir::new("ws");
    let (up, port) = (free_port(), free_port());
    let server = Command::new("python3")
        .arg(repo().join("tests/support_ws.py"))
        .args(["server", &up.to_string()])
        .stdin(Stdio::null())
        .spawn()
        .expect("python3 websockets server (pip install websockets)");
    let _server = Proc {
        child: server,
        log: None,
    };
    wait_port(up);
    let cfg = format!("[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:{up}\"\n");
    let t = tether(&dir, &cfg, &[port]);
    let got = ws_client(&format!("ws://127.0.0.1:{port}/chat"), 50, None);
    assert_eq!(got, "ok 50", "{}", t.log_text());
}
