//! The mailer against a real SMTP server (aiosmtpd, `tests/support_smtp.py`): a mail
//! arrives with its subject and body; a server that is down at first gets the mail after a
//! retry; `send` returns at once even when the server hangs; a password demands STARTTLS
//! (never a login in clear); `stop` abandons what is left.

mod support;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use support::{body, eventually, free_port, subject, SmtpSink, TempDir};
use tether_mail::{MailSettings, Mailer, RetryPolicy};

fn settings(port: u16) -> MailSettings {
    let mut s = MailSettings::new(
        "127.0.0.1",
        port,
        "session@tether.test",
        &["Administrator <admin@tether.test>"],
    );
    s.sender_name = Some("Simulation Server".into());
    s
}

#[test]
fn a_mail_arrives_with_its_subject_and_body() {
    let dir = TempDir::new("mail-arrives");
    let sink = SmtpSink::start(0, dir.0.join("mails.jsonl"));
    let mailer = Mailer::new(&settings(sink.port)).expect("valid settings");
    let text = "Hello,\n\nlocalhost:2000 simulation server may be down.\nCheck it at http://localhost:1999/monitor";
    assert!(mailer.send("Simulation server not responding", text));
    assert!(mailer.flush(Duration::from_secs(15)), "mail still pending");
    let got = sink.wait_for(1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(subject(&got[0]), "Simulation server not responding");
    assert_eq!(body(&got[0]).trim_end(), text);
    assert_eq!(got[0]["from"], "session@tether.test");
    assert_eq!(got[0]["to"][0], "admin@tether.test");
    let data = got[0]["data"].as_str().unwrap_or("");
    assert!(
        data.contains("From: \"Simulation Server\" <session@tether.test>"),
        "{data}"
    );
    assert!(data.contains("Content-Type: text/plain"), "{data}");
    let stats = mailer.stats();
    assert_eq!(
        (stats.sent, stats.failed_attempts, stats.given_up),
        (1, 0, 0)
    );
}

#[test]
fn a_server_down_at_first_gets_the_mail_after_a_retry() {
    let dir = TempDir::new("mail-retry");
    let port = free_port();
    let mailer = Mailer::new(&settings(port)).expect("valid settings");
    let start = Instant::now();
    assert!(mailer.send("Simulation server working again", "Hello,\n\nback.\n"));
    assert!(start.elapsed() < Duration::from_millis(100), "send blocked");
    // The first attempt meets a closed port (connection refused)...
    assert!(
        eventually(Duration::from_secs(5), || mailer.stats().failed_attempts
            >= 1),
        "no failed attempt seen: {:?}",
        mailer.stats()
    );
    // ...then the server comes up, and a retry (1 s, 2 s, ... later) delivers.
    let sink = SmtpSink::start(port, dir.0.join("mails.jsonl"));
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1, "mail never arrived: {:?}", mailer.stats());
    assert_eq!(subject(&got[0]), "Simulation server working again");
    assert!(mailer.flush(Duration::from_secs(5)));
    let stats = mailer.stats();
    assert_eq!(stats.sent, 1, "{stats:?}");
    assert!(stats.failed_attempts >= 1, "{stats:?}");
    assert_eq!(stats.given_up, 0, "{stats:?}");
}

#[test]
fn send_never_blocks_even_when_the_server_hangs() {
    // A server that accepts connections and never says a word.
    let silent = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = silent.local_addr().expect("addr").port();
    let mut s = settings(port);
    s.timeout_ms = 30_000;
    let mailer = Mailer::with_policy(&s, RetryPolicy::default(), 8).expect("valid settings");
    let start = Instant::now();
    let accepted: usize = (0..200)
        .map(|i| mailer.send(&format!("mail {i}"), "body") as usize)
        .sum();
    let spent = start.elapsed();
    assert!(
        spent < Duration::from_millis(200),
        "200 sends took {spent:?}"
    );
    // The queue holds 8 (+1 in the thread's hands at most); the rest are dropped, logged.
    assert!((8..=9).contains(&accepted), "accepted {accepted}");
    assert_eq!(mailer.stats().dropped, 200 - accepted as u64);
    mailer.stop();
    drop(silent);
    assert!(
        mailer.flush(Duration::from_secs(35)),
        "stop did not drain the queue"
    );
    assert_eq!(mailer.stats().sent, 0);
}

#[test]
fn a_password_requires_starttls_and_gives_up_without_it() {
    let dir = TempDir::new("mail-starttls");
    let sink = SmtpSink::start(0, dir.0.join("mails.jsonl"));
    let mut s = settings(sink.port);
    s.password = Some("secret".into());
    let quick = RetryPolicy {
        attempts: 2,
        first_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(50),
    };
    let mailer = Mailer::with_policy(&s, quick, 4).expect("valid settings");
    assert!(mailer.send("Simulation server reached maximum load", "body"));
    assert!(mailer.flush(Duration::from_secs(15)));
    let stats = mailer.stats();
    assert_eq!((stats.sent, stats.given_up), (0, 1), "{stats:?}");
    assert!(stats.failed_attempts >= 1, "{stats:?}");
    assert!(sink.messages().is_empty(), "a mail went out without TLS");
}

#[test]
fn stop_abandons_the_mail_being_retried() {
    let mailer = Mailer::new(&settings(free_port())).expect("valid settings");
    assert!(mailer.send("Simulation server available again", "body"));
    assert!(eventually(Duration::from_secs(5), || mailer
        .stats()
        .failed_attempts
        >= 1));
    let start = Instant::now();
    mailer.stop();
    assert!(mailer.flush(Duration::from_secs(5)));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "stop waited out the backoff"
    );
    assert_eq!(mailer.stats().given_up, 1);
}

#[test]
fn bad_addresses_are_refused_up_front() {
    let mut s = settings(25);
    s.sender = "not an address".into();
    let e = Mailer::new(&s).expect_err("refused");
    assert!(e.to_string().contains("sender"), "{e}");
}
