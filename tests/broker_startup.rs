//! The broker's first seconds and its numbers, end to end through the real `tether` binary
//! with `examples/fake_simulation_server.py` servers (issue 12):
//! - right after start `/session` (and `/` while none is known available) waits for the
//!   first polling round — an answer or a timeout from every server — as Webots polls once
//!   before it listens; it never hands out a server that has not answered (one hangs past
//!   the timeout) or answered garbage; `/load` counts only servers that answered. The request goes out on the very connection that first found the port
//!   accepting (within 100 ms of it).
//! - `/load` and `/monitor` print loads as Webots does (Python's `str(float)`):
//!   `45.666666666666664`, `30.0`, `-1`, and `50.0%` on `/monitor`.

mod common;
mod sim_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use sim_support::Sim;

const NO_SERVER: &str = "Error: no simulation server available at the moment.";

fn config(port: u16, entries: &[String], keys: &str) -> String {
    let quoted: Vec<String> = entries.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "[[broker]]\nname = \"sim\"\nservers = [{}]\n{keys}\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n\
         [[server.route]]\npath = \"/\"\nbroker = \"sim\"\n",
        quoted.join(", ")
    )
}

/// `GET target` on an open connection; the body (the broker's answers are short and the
/// connection closes after them).
fn ask_on(mut s: TcpStream, target: &str) -> String {
    let req = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    s.write_all(req.as_bytes()).expect("send the request");
    let mut text = Vec::new();
    let _ = s.read_to_end(&mut text);
    let text = String::from_utf8_lossy(&text).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    assert!(head.starts_with("HTTP/1.1 200"), "{target}: {text:?}");
    body.to_string()
}

/// Start tether on `cfg` and return it with the first connection that the port accepted
/// and when; the connection is made every 2 ms (bounded), so the caller's request goes
/// out within a few milliseconds of the port accepting.
fn start_and_connect(dir: &TempDir, cfg: &str, port: u16) -> (Proc, TcpStream, Instant) {
    let path = dir.write("tether.toml", cfg.as_bytes());
    let log = dir.path().join("tether.log");
    let child = Command::new(TETHER)
        .arg(&path)
        .current_dir(dir.path())
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("spawn tether");
    let proc = Proc {
        child,
        log: Some(log),
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(s) = TcpStream::connect(addr(port)) {
            return (proc, s, Instant::now());
        }
        assert!(
            Instant::now() < deadline,
            "tether never listened on {port}:\n{}",
            proc.log_text()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn session_at_start_never_names_a_server_that_has_not_answered_a_number() {
    let dir = TempDir::new("broker-start");
    let garbage = Sim::start(&["--mode", "garbage"]);
    let hang = Sim::start(&["--mode", "hang"]);
    let good = Sim::start(&["--load", "50"]);
    let port = free_port();
    // The hanging server holds the first round for the whole timeout: before the fix every
    // server read load 0 for those 3 s and the first listed (garbage) was handed out.
    let cfg = config(
        port,
        &[garbage.entry(), hang.entry(), good.entry()],
        "timeout_ms = 3000\npoll_interval_ms = 60000",
    );
    let (_t, conn, accepted) = start_and_connect(&dir, &cfg, port);
    let load = ask_on(TcpStream::connect(addr(port)).expect("connect"), "/load");
    // Held until the first round has an answer (or a timeout) from every server, as Webots
    // polls once before it listens: the good server, never "no server" and never garbage.
    let session = ask_on(conn, "/session");
    let held = accepted.elapsed();
    assert!(
        held < Duration::from_millis(4500),
        "the first round ends with the hanging server's timeout: {held:?}"
    );
    let good_url = format!("ws://{}", good.entry());
    assert_eq!(
        session,
        good_url,
        "/session at start (garbage is {}, hanging is {})",
        garbage.entry(),
        hang.entry()
    );
    assert!(load == "50.0" || load == "-1", "/load at start: {load:?}");
    // And once the good one answered, it is chosen, while the hanging one still hangs.
    let base = format!("http://127.0.0.1:{port}");
    wait_body(&format!("{base}/session"), &good_url);
    wait_body(&format!("{base}/load"), "50.0");
}

#[test]
fn nothing_is_available_until_a_server_answers_a_number() {
    let dir = TempDir::new("broker-start-none");
    let garbage = Sim::start(&["--mode", "garbage"]);
    let hang = Sim::start(&["--mode", "hang"]);
    let port = free_port();
    let cfg = config(
        port,
        &[garbage.entry(), hang.entry()],
        "timeout_ms = 3000\npoll_interval_ms = 60000",
    );
    let (_t, conn, accepted) = start_and_connect(&dir, &cfg, port);
    let load = ask_on(TcpStream::connect(addr(port)).expect("connect"), "/load");
    // `/session` and `/` wait for the first round's end (the hanging server's timeout).
    let session = ask_on(conn, "/session");
    let feed = ask_on(TcpStream::connect(addr(port)).expect("connect"), "/");
    let held = accepted.elapsed();
    assert!(
        held >= Duration::from_millis(2500) && held < Duration::from_millis(4500),
        "held for the first round: {held:?}"
    );
    assert_eq!(session, NO_SERVER);
    assert_eq!(load, "-1");
    assert_eq!(feed, "0");
}

#[test]
fn load_and_monitor_print_loads_as_python_does() {
    let dir = TempDir::new("broker-load-text");
    let a = Sim::start(&["--load", "12"]);
    let b = Sim::start(&["--load", "50"]);
    let c = Sim::start(&["--load", "75"]);
    let port = free_port();
    let cfg = config(
        port,
        &[a.entry(), b.entry(), c.entry()],
        "timeout_ms = 1000\npoll_interval_ms = 100",
    );
    let _t = tether(&dir, &cfg, &[port]);
    let base = format!("http://127.0.0.1:{port}");
    // 137 / 3, as Python prints it.
    wait_body(&format!("{base}/load"), "45.666666666666664");
    let page = body_of(&format!("{base}/monitor"));
    for (s, text) in [(&a, "12.0%"), (&b, "50.0%"), (&c, "75.0%")] {
        let e = s.entry();
        assert!(
            page.contains(&format!("{e}</a></td><td>{text}</td>")),
            "{e} {text}:\n{page}"
        );
    }
    // (10 + 50) / 2 with the third down: a whole number keeps its ".0".
    a.set("load=10");
    c.set("mode=garbage");
    wait_body(&format!("{base}/load"), "30.0");
    a.set("load=12.5");
    wait_body(&format!("{base}/load"), "31.25");
    assert!(body_of(&format!("{base}/monitor")).contains("12.5%</td>"));
    // Nobody answers a number: -1, as Webots writes it.
    a.set("mode=error");
    b.set("mode=garbage");
    wait_body(&format!("{base}/load"), "-1");
}

/// A feed client of `port`'s `/` over HTTP/1.1 (python `websockets`) printing `first X`.
fn ws_feed_child(port: u16) -> std::process::Child {
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        print("first", await asyncio.wait_for(ws.recv(), 15), flush=True)
asyncio.run(main())
"#;
    Command::new("timeout")
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
        .expect("python3 websockets client")
}

/// The first line a feed child printed.
fn first_line(mut child: std::process::Child) -> String {
    use std::io::BufRead;
    let out = child.stdout.take().expect("stdout");
    let line = std::io::BufReader::new(out)
        .lines()
        .next()
        .and_then(Result::ok)
        .unwrap_or_default();
    let _ = child.kill();
    let _ = child.wait();
    line
}

#[test]
fn a_feed_opened_during_the_first_round_starts_with_its_result() {
    // Webots' session server polls once before it listens, so its feed's first frame is the
    // first round's result. tether listens at once: a feed that connects while the first
    // round is under way must be held, not told `0` and then `1`.
    let dir = TempDir::new("broker-start-feed");
    let slow = Sim::start(&["--load", "20", "--delay-ms", "1500"]);
    let port = free_port();
    let cfg = config(
        port,
        &[slow.entry()],
        "timeout_ms = 5000\npoll_interval_ms = 60000",
    )
    .replace("listen = [", "http2 = true\nlisten = [");
    let (_t, conn, accepted) = start_and_connect(&dir, &cfg, port);
    drop(conn);
    let h1 = ws_feed_child(port);
    let h2 = h2_ws_child("feed", port, "/");
    // `/session` over HTTP/2 (h2c, prior knowledge) waits for the round too.
    let session = std::thread::spawn(move || {
        curl(&[
            "-s",
            "--http2-prior-knowledge",
            &format!("http://127.0.0.1:{port}/session"),
        ])
    });
    assert_eq!(first_line(h1), "first 1", "HTTP/1.1 feed");
    assert_eq!(first_line(h2), "first 1", "HTTP/2 feed");
    let session = session.join().expect("curl thread");
    assert_eq!(
        String::from_utf8_lossy(&session.stdout),
        format!("ws://{}", slow.entry()),
        "/session over HTTP/2 after the round"
    );
    assert!(
        accepted.elapsed() >= Duration::from_millis(1000),
        "the first frame waited for the slow server's answer"
    );
}
