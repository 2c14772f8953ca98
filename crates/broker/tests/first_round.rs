//! The first polling round holds the feed's first frame and `/session` (issue "Running
//! tether day to day", item 14): the Webots session server polls once before it listens,
//! so its first feed frame is `1` when a server is up, never `0` then `1`. A real feed
//! client (tungstenite over TCP) talks to a small feed server written the way the proxy's
//! sessions use the broker (`check_upgrade`, `handshake_response`, `open_feed`, `update`
//! on each wake), against real fake simulation servers: one that answers its load slowly,
//! one that never answers (the round's timeout releases the held frame as `0`).

mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use support::SimServer;
use tether_broker::ws::check_upgrade;
use tether_broker::ws::handshake_response;
use tether_broker::{Broker, BrokerConfig, Request, NO_SERVER};
use tether_mail::Mailer;
use tungstenite::Message;

/// A feed server for one client, driven like the proxy's session: the upgrade, then
/// `open_feed`, then `update(feed_value())` on each wake. Stops when `done` is set.
struct FeedServer {
    port: u16,
    done: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FeedServer {
    fn start(broker: Arc<Broker>) -> FeedServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let done = Arc::new(AtomicBool::new(false));
        let d = Arc::clone(&done);
        let thread = std::thread::spawn(move || serve_one(listener, broker, d));
        FeedServer {
            port,
            done,
            thread: Some(thread),
        }
    }
}

impl Drop for FeedServer {
    fn drop(&mut self) {
        self.done.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve_one(listener: TcpListener, broker: Arc<Broker>, done: Arc<AtomicBool>) {
    let Ok((mut conn, peer)) = listener.accept() else {
        return;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    if !matches!(req.parse(&head), Ok(s) if s.is_complete()) {
        return;
    }
    let pairs: Vec<(&str, &[u8])> = req.headers.iter().map(|h| (h.name, h.value)).collect();
    let Ok(Some(key)) = check_upgrade(pairs) else {
        return;
    };
    if conn.write_all(handshake_response(&key).as_bytes()).is_err() {
        return;
    }
    let (tx, wakes) = mpsc::channel::<()>();
    let (mut socket, id) = broker.open_feed(
        &peer.to_string(),
        Box::new(move || {
            let _ = tx.send(());
        }),
    );
    loop {
        let out = socket.take_output();
        if !out.is_empty() && conn.write_all(&out).is_err() {
            break;
        }
        if done.load(Ordering::SeqCst) {
            break;
        }
        match wakes.recv_timeout(Duration::from_millis(50)) {
            Ok(()) => {
                socket.update(broker.feed_value());
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    broker.unsubscribe(id);
}

/// Connect a WebSocket client to the feed server; read its first message and when it came.
fn first_frame(port: u16) -> (String, Instant) {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect the feed");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let (mut ws, response) = tungstenite::client::client(format!("ws://127.0.0.1:{port}/"), stream)
        .map_err(|e| format!("{e}"))
        .expect("handshake");
    assert_eq!(response.status(), 101);
    match ws.read() {
        Ok(Message::Text(t)) => (t.as_str().to_string(), Instant::now()),
        other => panic!("expected the feed's first frame, got {other:?}"),
    }
}

/// Ask the broker to hold `target`; the receiver hears the wake.
fn hold(b: &Broker, target: &str) -> (bool, mpsc::Receiver<Instant>) {
    let (tx, rx) = mpsc::channel();
    let req = Request {
        method: "GET",
        target,
        authorization: None,
    };
    let held = b.hold(
        &req,
        Box::new(move || {
            let _ = tx.send(Instant::now());
        }),
    );
    (held, rx)
}

fn started(entries: &[String], timeout_ms: u64) -> Arc<Broker> {
    let refs: Vec<&str> = entries.iter().map(|s| s.as_str()).collect();
    let mut c = BrokerConfig::new(&refs);
    c.timeout_ms = timeout_ms;
    c.poll_interval_ms = 60_000;
    Broker::start(c, Mailer::log_only()).expect("poller starts")
}

fn body(b: &Broker, target: &str) -> String {
    b.reply("GET", target).map(|r| r.body).unwrap_or_default()
}

#[test]
fn slow_server_feed_gets_1_first_and_session_waits() {
    let sim = SimServer::start_with(&["--load", "10", "--delay-ms", "1500"]);
    let b = started(&[sim.entry()], 5_000);
    let began = Instant::now();
    // The round is under way: its request is out, its answer 1.5 s away.
    assert!(!b.first_round_done());
    assert_eq!(b.rounds(), 0);
    assert_eq!(b.feed_value(), None);
    let (held, session_woken) = hold(&b, "/session");
    assert!(held, "/session must wait for the first round");
    let (plain_held, plain_woken) = hold(&b, "/");
    assert!(plain_held, "the plain / must wait too");
    let (load_held, _) = hold(&b, "/load");
    assert!(!load_held, "/load answers now");

    let feed = FeedServer::start(Arc::clone(&b));
    let (first, at) = first_frame(feed.port);
    assert_eq!(first, "1", "the feed's first frame during the first round");
    assert!(
        at.duration_since(began) >= Duration::from_millis(1000),
        "the frame came before the slow server answered: {:?}",
        at.duration_since(began)
    );

    let woken = session_woken
        .recv_timeout(Duration::from_secs(10))
        .expect("/session is woken when the round settles");
    assert!(woken.duration_since(began) >= Duration::from_millis(1000));
    assert!(plain_woken.recv_timeout(Duration::from_secs(1)).is_ok());
    assert!(b.first_round_done());
    assert_eq!(body(&b, "/session"), format!("ws://{}", sim.entry()));
    assert_eq!(body(&b, "/"), "1");
    let (again, _) = hold(&b, "/session");
    assert!(!again, "after the first round nothing waits");
    drop(feed);
    b.stop();
}

#[test]
fn hanging_server_releases_the_held_frame_at_the_timeout() {
    let hung = SimServer::start_with(&["--mode", "hang"]);
    let b = started(&[hung.entry()], 800);
    let began = Instant::now();
    assert!(!b.first_round_done());
    let (held, session_woken) = hold(&b, "/session");
    assert!(held);

    let feed = FeedServer::start(Arc::clone(&b));
    let (first, at) = first_frame(feed.port);
    let spent = at.duration_since(began);
    assert_eq!(first, "0", "no server answered: 0, as today");
    assert!(
        spent >= Duration::from_millis(600),
        "0 was sent before the round's timeout: {spent:?}"
    );
    assert!(spent < Duration::from_secs(5), "held too long: {spent:?}");

    assert!(session_woken.recv_timeout(Duration::from_secs(5)).is_ok());
    assert_eq!(body(&b, "/session"), NO_SERVER);
    drop(feed);
    b.stop();
}

#[test]
fn an_available_server_sends_1_before_a_hanging_one_times_out() {
    let hung = SimServer::start_with(&["--mode", "hang"]);
    let slow = SimServer::start_with(&["--load", "20", "--delay-ms", "300"]);
    let b = started(&[hung.entry(), slow.entry()], 3_000);
    let began = Instant::now();
    let (held, session_woken) = hold(&b, "/session");
    assert!(held);

    let feed = FeedServer::start(Arc::clone(&b));
    let (first, at) = first_frame(feed.port);
    assert_eq!(first, "1");
    assert!(
        at.duration_since(began) < Duration::from_millis(2500),
        "1 is final once a server is available; it waited {:?}",
        at.duration_since(began)
    );
    // /session waits for every server (the hanging one might have had the lowest load).
    let woken = session_woken
        .recv_timeout(Duration::from_secs(10))
        .expect("woken at the timeout");
    assert!(woken.duration_since(began) >= Duration::from_millis(2500));
    assert_eq!(body(&b, "/session"), format!("ws://{}", slow.entry()));
    drop(feed);
    b.stop();
}

#[test]
fn stopping_releases_what_waits() {
    // No poller: nothing would ever settle the round but `stop`.
    let b = Broker::new(BrokerConfig::new(&["127.0.0.1:9"]), Mailer::log_only());
    let (held, woken) = hold(&b, "/session");
    assert!(held);
    assert_eq!(b.feed_value(), None);
    b.stop();
    assert!(woken.recv_timeout(Duration::from_secs(1)).is_ok());
    assert_eq!(b.feed_value(), Some(false));
    // A broker without servers has nothing to wait for.
    let none = Broker::new(BrokerConfig::new(&[]), Mailer::log_only());
    assert!(none.first_round_done());
}
