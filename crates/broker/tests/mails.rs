//! Transition mails, received by a real SMTP server (aiosmtpd): a server down at start-up
//! (loads start at 0, as in Webots) → "not responding"; back → "working again"; crossing
//! the max load → "reached maximum load"; back under it → "available again". Exactly those
//! four subjects, in order, nothing for a round without change; bodies name the server and
//! its load and end with the link to /monitor. A session.json with mail keys mails too.

mod support;

use std::time::Duration;

use support::{body, subject, SimServer, SmtpSink, TempDir};
use tether_broker::{parse_session_json, Broker, BrokerConfig};
use tether_mail::MailSettings;

#[test]
fn each_transition_mails_its_subject() {
    let dir = TempDir::new("broker-mails");
    let sink = SmtpSink::start(dir.0.join("mails.jsonl"));
    let sim = SimServer::start_with(&["--mode", "error"]);
    let entry = sim.entry();
    let mut c = BrokerConfig::new(&[&entry]);
    c.timeout_ms = 700;
    c.public_url = Some("http://localhost:1999".into());
    c.administrator = Some("admin@tether.test".into());
    c.mail = Some(MailSettings::new(
        "127.0.0.1",
        sink.port,
        "session@tether.test",
        &[],
    ));
    assert!(c.validate().is_ok());
    let b = Broker::new(c.clone(), c.mailer().expect("mailer"));

    b.poll_once(); // 0 → down
    sim.set("mode=numeric&load=10");
    b.poll_once(); // down → 10
    b.poll_once(); // 10 → 10: quiet
    sim.set("load=97");
    b.poll_once(); // 10 → 97
    b.poll_once(); // quiet
    sim.set("load=20");
    b.poll_once(); // 97 → 20

    let got = sink.wait_for(4, Duration::from_secs(20));
    let subjects: Vec<String> = got.iter().map(subject).collect();
    assert_eq!(
        subjects,
        [
            "Simulation server not responding",
            "Simulation server working again",
            "Simulation server reached maximum load",
            "Simulation server available again",
        ]
    );
    let bodies: Vec<String> = got.iter().map(|m| body(m).trim_end().to_string()).collect();
    for b in &bodies {
        assert!(b.starts_with("Hello,\n\n"), "{b}");
        assert!(b.contains(&entry), "{b}");
        assert!(
            b.ends_with("Check it at http://localhost:1999/monitor"),
            "{b}"
        );
    }
    assert!(
        bodies[0].contains("HTTP status 500") && bodies[0].contains("N/A"),
        "{}",
        bodies[0]
    );
    assert!(bodies[1].contains("(load = 10%)"), "{}", bodies[1]);
    assert!(
        bodies[2].contains("has reached maximum load (97%)"),
        "{}",
        bodies[2]
    );
    assert!(
        bodies[3].contains("is available again (load = 20%)"),
        "{}",
        bodies[3]
    );
    assert_eq!(got[0]["to"][0], "admin@tether.test");

    // Nothing more trickles in.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(sink.messages().len(), 4);
}

#[test]
fn session_json_with_mail_keys_mails_the_administrator() {
    let dir = TempDir::new("broker-json-mail");
    let sink = SmtpSink::start(dir.0.join("mails.jsonl"));
    let text = format!(
        "{{\n  \"port\": 1999,\n  \"server\": \"sessions.test\",\n  \"administrator\": \"webmaster@tether.test\",\n  \
         \"mailServer\": \"127.0.0.1\",\n  \"mailServerPort\": {},\n  \"mailSender\": \"noreply@tether.test\",\n  \
         \"simulationServers\": [\"127.0.0.1:{}\"]\n}}\n",
        sink.port,
        support::free_port()
    );
    let json = parse_session_json(&text, "session.json").expect("valid");
    let mut c = json.broker_config();
    c.timeout_ms = 700;
    let b = Broker::new(c.clone(), c.mailer().expect("mailer"));
    b.poll_once(); // refused → down
    let got = sink.wait_for(1, Duration::from_secs(20));
    assert_eq!(got.len(), 1);
    assert_eq!(subject(&got[0]), "Simulation server not responding");
    assert!(body(&got[0])
        .trim_end()
        .ends_with("Check it at http://sessions.test:1999/monitor"));
    let data = got[0]["data"].as_str().unwrap_or("");
    assert!(
        data.contains("To: Administrator <webmaster@tether.test>"),
        "{data}"
    );
    assert!(
        data.contains("From: \"Simulation Server\" <noreply@tether.test>"),
        "{data}"
    );
}
