//! The simulation-server broker end to end (the Webots session server's drop-in): real
//! `examples/fake_sim_server.py` servers, tether with a `[[broker]]` and a `port_rewrite`
//! route (the farm's front door), Webots' own `session.json`, a WebSocket feed client
//! (python `websockets`), a real SMTP server (aiosmtpd), and headless Chromium on /monitor.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

/// A fake simulation server on `port` with `load`.
fn sim(port: u16, load: &str) -> Proc {
    let script = repo().join("examples/fake_sim_server.py");
    let port_s = port.to_string();
    let args = [
        script.as_os_str(),
        "--port".as_ref(),
        port_s.as_ref(),
        "--load".as_ref(),
        load.as_ref(),
    ];
    python(&args, port)
}

fn set_load(port: u16, load: &str) {
    let out = curl(&[
        "-s",
        "-X",
        "POST",
        &format!("http://127.0.0.1:{port}/set?load={load}"),
    ]);
    assert!(out.status.success());
}

/// The farm: a broker over two servers and the port rewriting on one listener.
fn farm(dir: &TempDir, port: u16, s1: u16, s2: u16, range: (u16, u16)) -> Proc {
    farm_with(dir, port, s1, s2, range, "")
}

/// `farm` with more keys of the `[[server]]` (`extra`).
fn farm_with(dir: &TempDir, port: u16, s1: u16, s2: u16, range: (u16, u16), extra: &str) -> Proc {
    let cfg = format!(
        r#"[[broker]]
name = "sim"
servers = ["localhost:{s1}", "localhost:{s2}"]
poll_interval_ms = 200
timeout_ms = 1000

[[server]]
listen = ["127.0.0.1:{port}"]
{extra}

[[server.route]]
path = "/"
broker = "sim"
port_rewrite = {{ host = "127.0.0.1", min = {}, max = {} }}
"#,
        range.0, range.1
    );
    tether(dir, &cfg, &[port])
}

#[test]
fn session_load_monitor_and_cors_like_webots() {
    let dir = TempDir::new("broker-http");
    let (s1, s2, port) = (free_port(), free_port(), free_port());
    let _a = sim(s1, "40");
    let _b = sim(s2, "12.5");
    let _t = farm(&dir, port, s1, s2, (1, 1));
    let base = format!("http://127.0.0.1:{port}");
    // The first poll decides; bounded wait for it.
    let chosen = format!("ws://localhost:{s2}");
    assert!(eventually(Duration::from_secs(5), || get(&format!(
        "{base}/session"
    ))
    .1 == chosen
        .as_bytes()));
    let head = curl(&[
        "-s",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("{base}/session"),
    ]);
    let head = String::from_utf8_lossy(&head.stdout).into_owned();
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&head, "access-control-allow-headers"),
        Some("x-requested-with")
    );
    assert_eq!(
        header(&head, "access-control-allow-methods"),
        Some("POST, GET, OPTIONS")
    );
    let pre = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-X",
        "OPTIONS",
        &format!("{base}/session"),
    ]);
    assert!(String::from_utf8_lossy(&pre.stdout).starts_with('2'));
    assert_eq!(get(&format!("{base}/load")).1, b"26.25");
    assert_eq!(get(&format!("{base}/")).1, b"1");
    // Both at or above the maximum load: the exact Webots sentence.
    set_load(s1, "95");
    set_load(s2, "99");
    assert!(eventually(Duration::from_secs(5), || get(&format!(
        "{base}/session"
    ))
    .1
        == b"Error: no simulation server available at the moment."));
    assert_eq!(get(&format!("{base}/")).1, b"0");
    // The monitor lists both servers, highlighted at max load.
    let (code, page) = get(&format!("{base}/monitor"));
    let page = String::from_utf8_lossy(&page).into_owned();
    assert_eq!(code, 200);
    assert!(page.contains(&format!("localhost:{s1}")) && page.contains(&format!("localhost:{s2}")));
    assert!(page.contains("<table"), "{page}");
}

/// `curl --http2-prior-knowledge` → (HTTP version, status, response head and body).
fn h2c(args: &[&str]) -> (String, u16, String) {
    let mut all = vec![
        "-s",
        "--http2-prior-knowledge",
        "-i",
        "-w",
        "\n%{http_version} %{http_code}",
    ];
    all.extend_from_slice(args);
    let out = String::from_utf8_lossy(&curl(&all).stdout).into_owned();
    let (text, tail) = out.rsplit_once('\n').unwrap_or((&out, ""));
    let (version, code) = tail.split_once(' ').unwrap_or(("", "0"));
    (
        version.to_string(),
        code.parse().unwrap_or(0),
        text.to_string(),
    )
}

#[test]
fn broker_pages_and_port_rewrite_answer_over_http2() {
    let dir = TempDir::new("broker-h2");
    let (s1, s2, port) = (free_port(), free_port(), free_port());
    let _a = sim(s1, "40");
    let _b = sim(s2, "12.5");
    let _t = farm_with(&dir, port, s1, s2, (s1, s1), "http2 = true");
    let base = format!("http://127.0.0.1:{port}");
    let chosen = format!("ws://localhost:{s2}");
    assert!(eventually(Duration::from_secs(5), || h2c(&[&format!(
        "{base}/session"
    )])
    .2
    .ends_with(&chosen)));
    let (version, code, text) = h2c(&[&format!("{base}/session")]);
    assert_eq!((version.as_str(), code), ("2", 200), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("access-control-allow-origin: *"),
        "{text}"
    );
    let (version, code, _) = h2c(&["-X", "OPTIONS", &format!("{base}/session")]);
    assert_eq!((version.as_str(), code), ("2", 204));
    let (_, code, text) = h2c(&[&format!("{base}/load")]);
    assert_eq!(code, 200);
    assert!(text.ends_with("\r\n\r\n26.25"), "{text}");
    let (_, code, text) = h2c(&[&format!("{base}/monitor")]);
    assert_eq!(code, 200);
    assert!(
        text.contains(&format!("localhost:{s1}")) && text.contains("<table"),
        "{text}"
    );
    let (_, code, _) = h2c(&["-X", "POST", &format!("{base}/load")]);
    assert_eq!(code, 405);
    // `/<port>/...` to the one port in range, over HTTP/2 to tether and HTTP/1.1 behind it.
    let (version, code, text) = h2c(&[&format!("{base}/{s1}/load")]);
    assert_eq!((version.as_str(), code), ("2", 200), "{text}");
    assert!(text.ends_with("\r\n\r\n40"), "{text}");
    let (_, code, _) = h2c(&[&format!("{base}/{s2}/load")]);
    assert_eq!(code, 404);
}

#[test]
fn feed_and_port_rewrite_websockets_over_http2() {
    // RFC 8441: the broker's feed and a WebSocket under `port_rewrite`, each by an extended
    // CONNECT on an h2c connection.
    let dir = TempDir::new("broker-h2-ws");
    let (s1, s2, port, ws_port) = (free_port(), free_port(), free_port(), free_port());
    let _a = sim(s1, "40");
    let _b = sim(s2, "12.5");
    let _ws = ws_echo_server(ws_port);
    let _t = farm_with(&dir, port, s1, s2, (ws_port, ws_port), "http2 = true");
    let base = format!("http://127.0.0.1:{port}");
    assert!(eventually(Duration::from_secs(5), || get(&format!(
        "{base}/"
    ))
    .1 == b"1"));
    feed_goes_from_1_to_0(h2_ws_child("feed", port, "/"), s1, s2);
    // A WebSocket to the port in range, through `/<port>/`.
    let got = h2_ws_client("echo", port, &format!("/{ws_port}/"), 5);
    assert_eq!(got, "ok 5");
}

#[test]
fn websocket_feed_sends_availability_changes() {
    let dir = TempDir::new("broker-ws");
    let (s1, s2, port) = (free_port(), free_port(), free_port());
    let _a = sim(s1, "10");
    let _b = sim(s2, "20");
    let _t = farm(&dir, port, s1, s2, (1, 1));
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        print("first", await asyncio.wait_for(ws.recv(), 10), flush=True)
        await ws.send("hello from the client")
        print("next", await asyncio.wait_for(ws.recv(), 10), flush=True)
asyncio.run(main())
"#;
    let client = Command::new("timeout")
        .args([
            "20",
            "python3",
            "-c",
            script,
            &format!("ws://127.0.0.1:{port}/"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 websockets client");
    feed_goes_from_1_to_0(client, s1, s2);
}

/// A feed client (printing `first X`, then `next Y`) sees `1`, then `0` once both servers
/// `s1` and `s2` are loaded over the maximum.
fn feed_goes_from_1_to_0(mut client: std::process::Child, s1: u16, s2: u16) {
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let first = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(first, "first 1");
    set_load(s1, "97");
    set_load(s2, "98");
    let next = lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next, "next 0");
    let _ = client.wait();
}

#[test]
fn port_rewrite_forwards_http_and_websocket_only_inside_the_range() {
    let dir = TempDir::new("broker-ports");
    let (s1, s2, port) = (free_port(), free_port(), free_port());
    let _a = sim(s1, "33");
    let _b = sim(s2, "44");
    let ws_port = free_port();
    let _ws = {
        let child = Command::new("python3")
            .arg(repo().join("tests/support_ws.py"))
            .args(["server", &ws_port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("ws server");
        let p = Proc { child, log: None };
        wait_port(ws_port);
        p
    };
    let lo = s1.min(ws_port).min(s2);
    let hi = s1.max(ws_port).max(s2);
    // s2 is left out of the range when it is an end of it; otherwise use a range of s1 only.
    let (min, max) = if s2 == lo || s2 == hi {
        let (a, b) = if s2 == lo { (lo + 1, hi) } else { (lo, hi - 1) };
        (a, b)
    } else {
        (s1.min(ws_port), s1.max(ws_port))
    };
    let _t = farm(&dir, port, s1, s2, (min, max));
    let base = format!("http://127.0.0.1:{port}");
    // HTTP through /<port>/...: the simulation server's own /load.
    assert_eq!(get(&format!("{base}/{s1}/load")), (200, b"33".to_vec()));
    // A port outside the range: 404, nothing forwarded.
    if !(min..=max).contains(&s2) {
        assert_eq!(get(&format!("{base}/{s2}/load")).0, 404);
    }
    assert_eq!(get(&format!("{base}/1/load")).0, 404);
    assert_eq!(get(&format!("{base}/65000/x")).0, 404);
    // WebSocket through /<port>/: the echo server answers.
    let out = Command::new("timeout")
        .args(["30", "python3"])
        .arg(repo().join("tests/support_ws.py"))
        .args(["client", &format!("ws://127.0.0.1:{port}/{ws_port}/"), "3"])
        .output()
        .expect("ws client");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("ok 3"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A real SMTP server writing what it receives to `out`.
fn smtp(dir: &TempDir) -> (Proc, u16, std::path::PathBuf) {
    let port = free_port();
    let out = dir.path().join("mails.jsonl");
    let child = Command::new("python3")
        .arg(repo().join("tests/support_smtp.py"))
        .args(["--port", &port.to_string(), "--out"])
        .arg(&out)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 support_smtp.py (aiosmtpd)");
    let p = Proc { child, log: None };
    wait_port(port);
    (p, port, out)
}

#[test]
fn webots_session_json_runs_as_is_logs_to_its_dir_and_mails_the_administrator() {
    let dir = TempDir::new("broker-json");
    let (s1, port) = (free_port(), free_port());
    let down = free_port();
    let _a = sim(s1, "5");
    let (_smtp, smtp_port, mails) = smtp(&dir);
    let log_dir = dir.path().join("log");
    let json = format!(
        r#"{{
  "port": {port},
  "server": "localhost",
  "simulationServers": ["localhost:{s1}", "localhost:{down}"],
  "administrator": "admin@example.org",
  "mailServer": "127.0.0.1",
  "mailServerPort": {smtp_port},
  "mailSender": "farm@example.org",
  "logDir": "{}"
}}"#,
        log_dir.display()
    );
    let path = dir.write("session.json", json.as_bytes());
    let child = Command::new(env!("CARGO_BIN_EXE_tether"))
        .arg(&path)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tether");
    let _t = Proc { child, log: None };
    wait_port(port);
    let base = format!("http://127.0.0.1:{port}");
    let want = format!("ws://localhost:{s1}");
    assert!(eventually(Duration::from_secs(5), || get(&format!(
        "{base}/session"
    ))
    .1 == want.as_bytes()));
    // The log is Webots': <logDir>/session/output.log.
    let log = log_dir.join("session/output.log");
    assert!(eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log).is_ok_and(|t| t.contains("running"))
    }));
    // The server that is down at start-up is mailed about, with Webots' subject.
    assert!(
        eventually(Duration::from_secs(15), || std::fs::read_to_string(&mails)
            .is_ok_and(|m| m.contains("Simulation server not responding")
                && m.contains(&format!("localhost:{down}")))),
        "no mail; log:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn monitor_renders_in_headless_chromium() {
    let dir = TempDir::new("broker-chromium");
    let Some(chromium) = Chromium::find(dir.path()) else {
        return;
    };
    let (s1, s2, port) = (free_port(), free_port(), free_port());
    let _a = sim(s1, "20");
    let _b = sim(s2, "97");
    let _t = farm(&dir, port, s1, s2, (1, 1));
    let url = format!("http://127.0.0.1:{port}/monitor");
    assert!(eventually(Duration::from_secs(5), || {
        String::from_utf8_lossy(&get(&url).1).contains("97")
    }));
    let dom = chromium.dump_dom(&url);
    assert!(dom.contains("<table"), "{dom}");
    assert!(dom.contains(&format!("localhost:{s1}")) && dom.contains(&format!("localhost:{s2}")));
    chromium.screenshot(&url, &dir.path().join("monitor.png"));
}
