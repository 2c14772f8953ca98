//! The Webots farm behind a TLS front door, end to end: tether terminates HTTPS with a
//! certificate from a CA made at test time, its broker (`ssl = true`) polls the simulation
//! server through that same front door (`https://localhost:<front>/<port>/load`, verified
//! against `ca`) and answers `/session` with a `wss://` URL, which a Python `websockets`
//! client then opens through the front door to the server's plain `ws://` port, as Apache
//! did in front of the Webots session server.

mod common;
mod tls_support;

use std::time::Duration;

use common::*;
use tls_support::{Ca, Key};

/// A simulation server on `port`: `GET /load` answers `load`, and any WebSocket echoes
/// each message prefixed with "echo:" (python `websockets`).
fn sim_with_websocket(port: u16, load: &str) -> Proc {
    let script = r#"
import asyncio, sys
from websockets.asyncio.server import serve
from websockets.http11 import Response
from websockets.datastructures import Headers

LOAD = sys.argv[2].encode()

def http(connection, request):
    if request.path == "/load":
        return Response(200, "OK", Headers({"Content-Length": str(len(LOAD))}), LOAD)
    if "upgrade" not in request.headers.get("Connection", "").lower():
        return Response(404, "Not Found", Headers({"Content-Length": "0"}), b"")
    return None

async def echo(ws):
    async for msg in ws:
        await ws.send(("echo:" + msg) if isinstance(msg, str) else b"echo:" + msg)

async def main():
    async with serve(echo, "127.0.0.1", int(sys.argv[1]), process_request=http, max_size=None):
        await asyncio.Future()

asyncio.run(main())
"#;
    python_script(script, &[&port.to_string(), load], port)
}

#[test]
fn broker_hands_out_wss_urls_that_open_through_the_tls_front_door() {
    let dir = TempDir::new("broker-wss");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("front", &["localhost"], Key::P256, 30);
    let (front, sim) = (free_port(), free_port());
    let _sim = sim_with_websocket(sim, "17");
    let config = format!(
        r#"
[[broker]]
name = "farm"
servers = ["localhost:{front}/{sim}"]
ssl = true
ca = "{ca}"
poll_interval_ms = 200
timeout_ms = 2000

[[server]]
listen = ["127.0.0.1:{front}"]
tls = {{ certificates = [{{ cert = "{cert}", key = "{key}" }}] }}
tunnel_timeout_ms = 60000

[[server.route]]
path = "/"
broker = "farm"
port_rewrite = {{ host = "127.0.0.1", min = {sim}, max = {sim} }}
"#,
        ca = ca.cert.display(),
        cert = cert.display(),
        key = key.display()
    );
    let t = tether(&dir, &config, &[front]);
    let resolve = format!("localhost:{front}:127.0.0.1");
    let https = |path: &str| {
        let out = curl(&[
            "-s",
            "--cacert",
            ca.cert.to_str().unwrap(),
            "--resolve",
            &resolve,
            &format!("https://localhost:{front}{path}"),
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // The simulation server's own /load, through the front door (HTTPS to plain HTTP).
    assert_eq!(https(&format!("/{sim}/load")), "17");
    // The broker polled it over https:// through the same door and hands out wss://.
    let url = format!("wss://localhost:{front}/{sim}");
    assert!(
        eventually(Duration::from_secs(10), || https("/session") == url),
        "/session: {:?}\n{}",
        https("/session"),
        t.log_text()
    );
    assert_eq!(https("/load"), "17.0");
    // The client opens what it was given: wss:// to tether, ws:// to the server.
    let got = ws_client(&format!("{url}/client"), 20, Some(&ca.cert));
    assert_eq!(got, "ok 20", "{}", t.log_text());
}
