//! The poller against real fake simulation servers (`examples/fake_sim_server.py`) on
//! loopback: the lowest load is chosen, the first on a tie, a server at or above the max
//! load never; a refused port, a hanging server (short timeout), an HTTP error and a
//! non-numeric body are all down (N/A, never chosen); `/load`, `/monitor`; the poller
//! thread wakes subscribers when availability flips, and stops.

mod support;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{eventually, free_port, SimServer};
use tether_broker::{Broker, BrokerConfig, Load, NO_SERVER};
use tether_mail::Mailer;

/// A broker with no poller thread (rounds run by `poll_once`) and a short timeout.
fn broker(entries: &[String]) -> Arc<Broker> {
    let refs: Vec<&str> = entries.iter().map(|s| s.as_str()).collect();
    let mut c = BrokerConfig::new(&refs);
    c.timeout_ms = 700;
    Broker::new(c, Mailer::log_only())
}

#[test]
fn lowest_load_wins_first_on_a_tie_max_load_excluded() {
    let sims = [50.0, 20.0, 20.0, 95.0, 99.0].map(SimServer::start);
    let entries: Vec<String> = sims.iter().map(|s| s.entry()).collect();
    let b = broker(&entries);
    b.poll_once();
    assert_eq!(
        b.session_body(),
        format!("ws://{}", entries[1]),
        "tie → first"
    );
    assert!(b.available());
    assert_eq!(b.load_body(), "56.8"); // (50 + 20 + 20 + 95 + 99) / 5

    sims[1].set("load=95");
    b.poll_once();
    assert_eq!(
        b.session_body(),
        format!("ws://{}", entries[2]),
        "95 is not below 95"
    );

    sims[2].set("load=94.5");
    sims[0].set("load=94.4");
    b.poll_once();
    assert_eq!(b.session_body(), format!("ws://{}", entries[0]));

    sims[0].set("load=100");
    sims[2].set("load=96");
    b.poll_once();
    assert_eq!(b.session_body(), NO_SERVER);
    assert!(!b.available());
    assert_eq!(b.reply("GET", "/").map(|r| r.body), Some("0".into()));
}

#[test]
fn refused_port_is_na_and_never_chosen() {
    let up = SimServer::start(80.0);
    let entries = vec![format!("127.0.0.1:{}", free_port()), up.entry()];
    let b = broker(&entries);
    b.poll_once();
    let snap = b.snapshot();
    assert!(matches!(snap[0].load, Load::Down(_)), "{:?}", snap[0]);
    assert_eq!(snap[1].load, Load::Up(80.0));
    assert_eq!(b.session_body(), format!("ws://{}", entries[1]));
    assert_eq!(
        b.load_body(),
        "80.0",
        "the mean counts answering servers only"
    );
    let html = b.monitor_html();
    assert!(
        html.contains(&format!(
            "<a href='http://{0}/monitor'>{0}</a></td><td class='down'>N/A</td>",
            entries[0]
        )),
        "{html}"
    );
    assert!(
        html.contains(&format!(
            "<a href='http://{0}/monitor'>{0}</a></td><td>80.0%</td>",
            entries[1]
        )),
        "{html}"
    );
    assert!(html.contains("Managing 2 simulation servers"), "{html}");
}

#[test]
fn hanging_server_times_out_and_is_down() {
    let hung = SimServer::start_with(&["--mode", "hang"]);
    let up = SimServer::start(30.0);
    let b = broker(&[hung.entry(), up.entry()]);
    let start = Instant::now();
    b.poll_once();
    let spent = start.elapsed();
    assert!(
        spent >= Duration::from_millis(600),
        "did not wait for the timeout: {spent:?}"
    );
    assert!(
        spent < Duration::from_secs(3),
        "the timeout did not bound the poll: {spent:?}"
    );
    match &b.snapshot()[0].load {
        Load::Down(why) => assert!(why.contains("timed out"), "{why}"),
        other => panic!("a hanging server is down, got {other:?}"),
    }
    assert_eq!(b.session_body(), format!("ws://{}", up.entry()));
}

#[test]
fn non_numeric_body_and_http_error_are_down() {
    let garbage = SimServer::start_with(&["--mode", "garbage"]);
    let failing = SimServer::start_with(&["--mode", "error"]);
    let b = broker(&[garbage.entry(), failing.entry()]);
    b.poll_once();
    let snap = b.snapshot();
    match (&snap[0].load, &snap[1].load) {
        (Load::Down(a), Load::Down(b)) => {
            assert!(a.contains("not a number"), "{a}");
            assert!(b.contains("500"), "{b}");
        }
        other => panic!("both down expected: {other:?}"),
    }
    assert_eq!(b.session_body(), NO_SERVER);
    assert_eq!(b.load_body(), "-1");
    assert!(!b.available());
    assert_eq!(
        b.monitor_html()
            .matches("<td class='down'>N/A</td>")
            .count(),
        2
    );

    // A server that comes back is chosen again.
    garbage.set("mode=numeric&load=12");
    b.poll_once();
    assert_eq!(b.session_body(), format!("ws://{}", garbage.entry()));
    assert_eq!(b.load_body(), "12.0");
}

#[test]
fn poller_thread_wakes_subscribers_when_availability_flips() {
    let sim = SimServer::start(10.0);
    let mut c = BrokerConfig::new(&[&sim.entry()]);
    c.poll_interval_ms = 150;
    c.timeout_ms = 700;
    let b = Broker::start(c, Mailer::log_only()).expect("poller starts");
    assert!(b.wait_first_poll(Duration::from_secs(5)));
    assert!(b.available());
    let wakes = Arc::new(AtomicUsize::new(0));
    let w = Arc::clone(&wakes);
    let id = b.subscribe(Box::new(move || {
        w.fetch_add(1, Ordering::SeqCst);
    }));
    let g0 = b.generation();

    sim.set("load=99");
    assert!(
        eventually(Duration::from_secs(5), || !b.available()),
        "never went unavailable"
    );
    assert!(eventually(Duration::from_secs(1), || wakes
        .load(Ordering::SeqCst)
        == 1));
    assert_eq!(b.generation(), g0 + 1);

    sim.set("load=5");
    assert!(
        eventually(Duration::from_secs(5), || b.available()),
        "never came back"
    );
    assert!(eventually(Duration::from_secs(1), || wakes
        .load(Ordering::SeqCst)
        == 2));
    assert_eq!(b.generation(), g0 + 2);

    // Steady load: more rounds, no more wakes.
    let r = b.rounds();
    assert!(b.wait_rounds(r + 3, Duration::from_secs(5)));
    assert_eq!(wakes.load(Ordering::SeqCst), 2);

    b.unsubscribe(id);
    sim.set("load=99");
    assert!(eventually(Duration::from_secs(5), || !b.available()));
    assert_eq!(
        wakes.load(Ordering::SeqCst),
        2,
        "an unsubscribed waker was called"
    );

    let start = Instant::now();
    b.stop();
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "stop took {:?}",
        start.elapsed()
    );
    let r = b.rounds();
    std::thread::sleep(Duration::from_millis(400));
    assert_eq!(b.rounds(), r, "the poller still runs after stop");
}

#[test]
fn history_feeds_the_monitor_sparkline() {
    let sim = SimServer::start(40.0);
    let b = broker(&[sim.entry()]);
    for load in ["10", "60", "90"] {
        sim.set(&format!("load={load}"));
        b.poll_once();
    }
    let snap = b.snapshot();
    let samples: Vec<Option<f64>> = snap[0].history.iter().copied().collect();
    assert_eq!(samples, vec![Some(10.0), Some(60.0), Some(90.0)]);
    let html = b.monitor_html();
    assert!(html.contains("<title>3 polls: 10 60 90</title>"), "{html}");
    assert!(html.contains("<polyline"), "{html}");
}
