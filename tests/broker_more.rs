//! The broker beyond Webots, end to end through the real `tether` binary: a fleet of
//! `examples/fake_simulation_server.py` servers (up, down, overloaded, slow past the
//! timeout, slow within it, garbage, HTTP 500) with the right choice and `/monitor`'s N/A;
//! a real SMTP server (aiosmtpd) receiving exactly the four Webots mails over a scripted
//! sequence of loads; a python `websockets` client seeing `1` → `0` → `1`; a load that
//! changes by itself (`--wave`); `/session?url=` choosing among the servers that allow a
//! repository; the `/session` token (401 without, 200 with); weights.

mod common;
mod sim_support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use sim_support::Sim;

const NO_SERVER: &str = "Error: no simulation server available at the moment.";

/// tether with one `[[broker]]` named "sim" (`broker_keys` are its TOML lines) mounted at
/// `/` of a listener on `port`.
fn tether_broker(dir: &TempDir, port: u16, broker_keys: &str) -> Proc {
    let cfg = format!(
        "[[broker]]\nname = \"sim\"\npoll_interval_ms = 200\n{broker_keys}\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n\
         [[server.route]]\npath = \"/\"\nbroker = \"sim\"\n"
    );
    tether(dir, &cfg, &[port])
}

/// `servers = [...]` from entries.
fn servers_line(entries: &[String]) -> String {
    let quoted: Vec<String> = entries.iter().map(|e| format!("\"{e}\"")).collect();
    format!("servers = [{}]", quoted.join(", "))
}

/// `curl -i ARGS` → (status, head, body).
fn fetch(args: &[&str]) -> (u16, String, String) {
    let out = curl(&[&["-s", "-i"], args].concat());
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

#[test]
fn a_mixed_fleet_gets_the_right_choice_and_monitor_shows_na() {
    let dir = TempDir::new("broker-fleet");
    let hang = Sim::start(&["--mode", "hang"]); // slow: hangs past the timeout
    let garbage = Sim::start(&["--mode", "garbage"]);
    let error = Sim::start(&["--mode", "error"]);
    let overloaded = Sim::start(&["--load", "97"]);
    let up50 = Sim::start(&["--load", "50"]);
    let slow_ok = Sim::start(&["--load", "10", "--delay-ms", "150"]); // slow, within it
    let up30 = Sim::start(&["--load", "30"]);
    // Nobody listens there. Picked after the servers above took their (kernel-chosen)
    // ports: picked before, the kernel could give one of them the same port.
    let down = format!("127.0.0.1:{}", free_port());
    let entries = vec![
        down.clone(),
        hang.entry(),
        garbage.entry(),
        error.entry(),
        overloaded.entry(),
        up50.entry(),
        slow_ok.entry(),
        up30.entry(),
    ];
    let port = free_port();
    let keys = format!("{}\ntimeout_ms = 600", servers_line(&entries));
    let _t = tether_broker(&dir, port, &keys);
    let base = format!("http://127.0.0.1:{port}");

    // A slow answer within the timeout still counts: the lowest load wins.
    wait_body(
        &format!("{base}/session"),
        &format!("ws://{}", slow_ok.entry()),
    );
    assert_eq!(body_of(&format!("{base}/")), "1");
    // The mean of the servers that answer: (97 + 50 + 10 + 30) / 4.
    wait_body(&format!("{base}/load"), "46.75");
    // The hanging server is "not polled yet" until its first request times out.
    let mut page = String::new();
    let polled = eventually(Duration::from_secs(5), || {
        page = body_of(&format!("{base}/monitor"));
        !page.contains("not polled yet")
    });
    assert!(polled, "{page}");
    for e in [&down, &hang.entry(), &garbage.entry(), &error.entry()] {
        assert!(
            page.contains(&format!(
                "<a href='http://{e}/monitor'>{e}</a></td><td class='down'>N/A</td>"
            )),
            "{e} not N/A:\n{page}"
        );
    }
    let o = overloaded.entry();
    assert!(
        page.contains(&format!("{o}</a></td><td class='high'>97.0%</td>")),
        "{page}"
    );
    for (e, l) in [
        (up50.entry(), "50.0%"),
        (slow_ok.entry(), "10.0%"),
        (up30.entry(), "30.0%"),
    ] {
        assert!(
            page.contains(&format!("{e}</a></td><td>{l}</td>")),
            "{e}:\n{page}"
        );
    }
    assert!(page.contains("Managing 8 simulation servers"), "{page}");

    // The slow one slows past the timeout: down, the next lowest wins.
    slow_ok.set("mode=hang");
    wait_body(
        &format!("{base}/session"),
        &format!("ws://{}", up30.entry()),
    );
    up30.set("load=99");
    wait_body(
        &format!("{base}/session"),
        &format!("ws://{}", up50.entry()),
    );
    // Everyone loaded or down: Webots' sentence, and the feed's 0.
    up50.set("load=95");
    wait_body(&format!("{base}/session"), NO_SERVER);
    assert_eq!(body_of(&format!("{base}/")), "0");
    // Garbage becomes a number again: chosen.
    garbage.set("mode=numeric&load=60");
    wait_body(
        &format!("{base}/session"),
        &format!("ws://{}", garbage.entry()),
    );
}

/// A real SMTP server (aiosmtpd) appending what it receives to `<dir>/mails.jsonl`.
fn smtp(dir: &Path) -> (Proc, u16, PathBuf) {
    let out = dir.join("mails.jsonl");
    let args = ["--out".as_ref(), out.as_os_str()];
    let (proc, port) = python_listening("tests/support_smtp.py", &args);
    (proc, port, out)
}

/// The mails received so far: (subject, body with LF line ends).
fn mails(path: &Path) -> Vec<(String, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|m| {
            let data = m["data"].as_str().unwrap_or("").replace("\r\n", "\n");
            let (head, body) = data.split_once("\n\n").unwrap_or((&data, ""));
            let subject = head
                .lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .unwrap_or("")
                .trim()
                .to_string();
            (subject, body.trim_end().to_string())
        })
        .collect()
}

#[test]
fn a_scripted_sequence_of_loads_mails_exactly_the_four_subjects() {
    let dir = TempDir::new("broker-mails-more");
    let (_smtp, smtp_port, mail_file) = smtp(dir.path());
    // Each poll reads the next item; the last one stays.
    let script = "20,20,97,97,20,20,error,error,20";
    let moving = Sim::start(&["--script", script]);
    let steady = Sim::start(&["--load", "10"]);
    let port = free_port();
    let keys = format!(
        "{}\ntimeout_ms = 1000\nadministrator = \"admin@tether.test\"\n\
         public_url = \"http://sessions.tether.test\"\n\n\
         [broker.mail]\nserver = \"127.0.0.1\"\nport = {smtp_port}\nsender = \"farm@tether.test\"",
        servers_line(&[moving.entry(), steady.entry()])
    );
    let _t = tether_broker(&dir, port, &keys);
    let want = [
        "Simulation server reached maximum load",
        "Simulation server available again",
        "Simulation server not responding",
        "Simulation server working again",
    ];
    assert!(
        eventually(Duration::from_secs(30), || mails(&mail_file).len() >= 4),
        "mails: {:?}",
        mails(&mail_file)
    );
    // Past the script's end and a few quiet rounds more: nothing else arrives.
    let items = script.split(',').count() as u64;
    assert!(eventually(Duration::from_secs(15), || moving.polls() >= items + 5));
    std::thread::sleep(Duration::from_millis(500)); // a mail queued now would be sent by then
    let got = mails(&mail_file);
    let subjects: Vec<&str> = got.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(subjects, want, "{got:?}");
    let entry = moving.entry();
    let bodies: Vec<&str> = got.iter().map(|(_, b)| b.as_str()).collect();
    assert!(
        bodies[0].contains(&format!(
            "{entry} simulation server has reached maximum load (97%)"
        )),
        "{}",
        bodies[0]
    );
    assert!(
        bodies[1].contains(&format!(
            "{entry} simulation server is available again (load = 20%)"
        )),
        "{}",
        bodies[1]
    );
    assert!(
        bodies[2].contains(&format!("{entry} simulation server may be down")),
        "{}",
        bodies[2]
    );
    assert!(bodies[2].contains("HTTP status 500"), "{}", bodies[2]);
    assert!(
        bodies[3].contains(&format!(
            "{entry} simulation server is up and running again (load = 20%)"
        )),
        "{}",
        bodies[3]
    );
    for b in &bodies {
        assert!(b.starts_with("Hello,\n\n"), "{b}");
        assert!(
            b.ends_with("Check it at http://sessions.tether.test/monitor"),
            "{b}"
        );
        assert!(
            !b.contains(&steady.entry()),
            "the steady server is never mailed about: {b}"
        );
    }
}

#[test]
fn the_websocket_feed_goes_1_then_0_then_1() {
    let dir = TempDir::new("broker-feed-101");
    let a = Sim::start(&["--load", "10"]);
    let b = Sim::start(&["--load", "20"]);
    let port = free_port();
    let _t = tether_broker(&dir, port, &servers_line(&[a.entry(), b.entry()]));
    wait_body(
        &format!("http://127.0.0.1:{port}/session"),
        &format!("ws://{}", a.entry()),
    );
    let script = r#"
import asyncio, sys, websockets
async def main():
    async with websockets.connect(sys.argv[1]) as ws:
        for _ in range(3):
            print(await asyncio.wait_for(ws.recv(), 20), flush=True)
asyncio.run(main())
"#;
    let mut client = Command::new("timeout")
        .args([
            "40",
            "python3",
            "-c",
            script,
            &format!("ws://127.0.0.1:{port}/"),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 websockets client");
    let mut lines = BufReader::new(client.stdout.take().expect("stdout")).lines();
    let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
    assert_eq!(next(), "1");
    a.set("load=97");
    b.set("load=96");
    assert_eq!(next(), "0");
    b.set("load=40");
    assert_eq!(next(), "1");
    let status = client.wait().expect("client exits");
    assert!(status.success(), "client: {status}");
    assert_eq!(
        body_of(&format!("http://127.0.0.1:{port}/session")),
        format!("ws://{}", b.entry())
    );
}

#[test]
fn a_wave_server_changes_its_load_by_itself() {
    let dir = TempDir::new("broker-wave");
    let w = Sim::start(&["--wave", "10:90:2"]);
    let port = free_port();
    let _t = tether_broker(&dir, port, &servers_line(&[w.entry()]));
    let mut seen = std::collections::BTreeSet::new();
    let ok = eventually(Duration::from_secs(10), || {
        let l = body_of(&format!("http://127.0.0.1:{port}/load"));
        if let Ok(v) = l.parse::<f64>() {
            assert!((10.0..=90.0).contains(&v), "{v} outside the wave");
            seen.insert(l);
        }
        seen.len() >= 3
    });
    assert!(ok, "the load did not move: {seen:?}");
}

#[test]
fn session_url_picks_among_servers_that_allow_the_repository() {
    let dir = TempDir::new("broker-repos");
    let cyber = Sim::start(&["--load", "50"]);
    let acme = Sim::start(&["--load", "10"]);
    let any = Sim::start(&["--load", "70"]);
    let port = free_port();
    let keys = format!(
        "servers = [\n  {{ entry = \"{}\", allowed_repositories = [\"https://github.com/cyberbotics/\"] }},\n  \
         {{ entry = \"{}\", allowed_repositories = [\"https://github.com/acme/\", \"https://gitlab.com/acme/\"] }},\n  \
         \"{}\",\n]",
        cyber.entry(),
        acme.entry(),
        any.entry()
    );
    let _t = tether_broker(&dir, port, &keys);
    let session = format!("http://127.0.0.1:{port}/session");
    let ask = |repo: &str| {
        let out = curl(&[
            "-s",
            "-G",
            "--data-urlencode",
            &format!("url={repo}"),
            &session,
        ]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    // Without url=: every server, the lowest load.
    wait_body(&session, &format!("ws://{}", acme.entry()));
    let webots = "https://github.com/cyberbotics/webots/blob/master/projects/robots/w.wbt";
    assert_eq!(ask(webots), format!("ws://{}", cyber.entry()));
    assert_eq!(
        ask("https://gitlab.com/acme/robots/w.wbt"),
        format!("ws://{}", acme.entry())
    );
    assert_eq!(
        ask("https://github.com/someone/w.wbt"),
        format!("ws://{}", any.entry())
    );
    // Prefixes end at a `/`; dot segments match no list.
    assert_eq!(
        ask("https://github.com/cyberbotics-evil/w.wbt"),
        format!("ws://{}", any.entry())
    );
    assert_eq!(
        ask("https://github.com/cyberbotics/../x/w.wbt"),
        format!("ws://{}", any.entry())
    );
    // The server without a list is loaded: a repository nobody else allows has no server.
    any.set("load=99");
    let other = "https://github.com/someone/w.wbt";
    assert!(
        eventually(Duration::from_secs(10), || ask(other) == NO_SERVER),
        "{}",
        ask(other)
    );
    assert_eq!(ask(webots), format!("ws://{}", cyber.entry()));
    // The one allowed server is loaded too: the same sentence, though acme's server is free.
    cyber.set("load=95");
    assert!(
        eventually(Duration::from_secs(10), || ask(webots) == NO_SERVER),
        "{}",
        ask(webots)
    );
    assert_eq!(body_of(&session), format!("ws://{}", acme.entry()));
}

#[test]
fn the_session_token_is_required_only_on_session() {
    let dir = TempDir::new("broker-token");
    let token = "s3cret-token-for-the-tests-0123";
    let token_file = dir.write("session.token", format!("{token}\n").as_bytes());
    let sim = Sim::start(&["--load", "5"]);
    let port = free_port();
    let keys = format!(
        "{}\ntoken_file = \"{}\"",
        servers_line(&[sim.entry()]),
        token_file.display()
    );
    let _t = tether_broker(&dir, port, &keys);
    let session = format!("http://127.0.0.1:{port}/session");
    let want = format!("ws://{}", sim.entry());
    let bearer = format!("Authorization: Bearer {token}");
    assert!(eventually(Duration::from_secs(10), || {
        fetch(&["-H", &bearer, &session]).2 == want
    }));
    // Without it: 401, with the CORS headers so a page from elsewhere can read it.
    let (status, head, body) = fetch(&[&session]);
    assert_eq!(status, 401, "{head}");
    assert_eq!(body, "Error: this session server needs a valid token.");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(
        header(&head, "access-control-allow-headers"),
        Some("x-requested-with, authorization")
    );
    assert_eq!(
        header(&head, "www-authenticate"),
        Some("Bearer realm=\"session\"")
    );
    // A wrong one: 401 too; a wrong header is not rescued by a right query.
    let (status, head, _) = fetch(&[
        "-H",
        "Authorization: Bearer wrong-token-0123456789",
        &session,
    ]);
    assert_eq!(status, 401);
    assert!(header(&head, "www-authenticate").is_some_and(|v| v.contains("invalid_token")));
    let with_query = format!("{session}?token={token}");
    assert_eq!(
        fetch(&["-H", "Authorization: Bearer nope", &with_query]).0,
        401
    );
    // With it: 200, by header or by query.
    let (status, head, body) = fetch(&["-H", &bearer, &session]);
    assert_eq!((status, body.as_str()), (200, want.as_str()), "{head}");
    assert_eq!(header(&head, "access-control-allow-origin"), Some("*"));
    assert_eq!(fetch(&[&with_query]).2, want);
    // The preflight, the feed, /load and /monitor stay open.
    let (status, head, _) = fetch(&["-X", "OPTIONS", &session]);
    assert_eq!(status, 204);
    assert_eq!(
        header(&head, "access-control-allow-headers"),
        Some("x-requested-with, authorization")
    );
    for (path, body) in [("/", "1"), ("/load", "5.0")] {
        assert_eq!(fetch(&[&format!("http://127.0.0.1:{port}{path}")]).2, body);
    }
    assert_eq!(fetch(&[&format!("http://127.0.0.1:{port}/monitor")]).0, 200);

    // A token too short is a config error that names the key.
    let bad = dir.write(
        "bad.toml",
        b"[[broker]]\nservers = [\"127.0.0.1:1\"]\ntoken = \"short\"\n",
    );
    let out = Command::new(TETHER)
        .arg("check")
        .arg(&bad)
        .output()
        .expect("tether check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("`token`"), "{err}");
}

#[test]
fn weights_divide_the_load() {
    let dir = TempDir::new("broker-weights");
    let small = Sim::start(&["--load", "40"]);
    let big = Sim::start(&["--load", "60"]);
    let port = free_port();
    let keys = format!(
        "servers = [\"{}\", {{ entry = \"{}\", weight = 2 }}]",
        small.entry(),
        big.entry()
    );
    let _t = tether_broker(&dir, port, &keys);
    let session = format!("http://127.0.0.1:{port}/session");
    // 60 / 2 = 30 < 40.
    wait_body(&session, &format!("ws://{}", big.entry()));
    // 90 / 2 = 45 > 40.
    big.set("load=90");
    wait_body(&session, &format!("ws://{}", small.entry()));
    // 45 < 50.
    small.set("load=50");
    wait_body(&session, &format!("ws://{}", big.entry()));
    // 45 = 45: a tie, the first listed wins.
    small.set("load=45");
    wait_body(&session, &format!("ws://{}", small.entry()));
    small.set("load=50");
    wait_body(&session, &format!("ws://{}", big.entry()));
    // The weight never lets a server past max_load: 96 / 2 = 48 < 50, but 96 >= 95.
    big.set("load=96");
    wait_body(&session, &format!("ws://{}", small.entry()));
    // /load is the plain mean, weights aside.
    wait_body(&format!("http://127.0.0.1:{port}/load"), "73.0");
    let page = body_of(&format!("http://127.0.0.1:{port}/monitor"));
    assert!(
        page.contains("<small class='weight'>weight 2</small>"),
        "{page}"
    );
}
