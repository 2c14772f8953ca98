//! Without mail settings every transition is a log line (a capturing `log` logger; this
//! file is its own test binary so the logger is ours alone).

mod support;

use std::sync::Mutex;

use support::SimServer;
use tether_broker::{Broker, BrokerConfig};
use tether_mail::Mailer;

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if record.target().starts_with("tether_broker") {
            if let Ok(mut lines) = self.0.lock() {
                lines.push(format!("{} {}", record.level(), record.args()));
            }
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn transitions_go_to_the_log_without_mail_settings() {
    log::set_logger(&LOGGER).expect("first logger");
    log::set_max_level(log::LevelFilter::Info);
    let sim = SimServer::start_with(&["--mode", "garbage"]);
    let mut c = BrokerConfig::new(&[&sim.entry()]);
    c.timeout_ms = 700;
    let b = Broker::new(c, Mailer::log_only());
    b.poll_once();
    sim.set("mode=numeric&load=99");
    b.poll_once();
    sim.set("load=10");
    b.poll_once();
    let lines = LOGGER.0.lock().map(|l| l.clone()).unwrap_or_default();
    let has = |level: &str, text: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(level) && l.contains(text))
    };
    assert!(has("INFO", "no mail settings"), "{lines:?}");
    assert!(has("WARN", "simulation server may be down"), "{lines:?}");
    assert!(has("WARN", "not a number"), "{lines:?}");
    assert!(
        has("INFO", "is up and running again (load = 99%)"),
        "{lines:?}"
    );
    // Unavailable from the start (nobody polled yet), available once a server answers
    // below the max load.
    assert!(!has("INFO", "unavailable (0)"), "{lines:?}");
    assert!(has("INFO", "simulation servers available (1)"), "{lines:?}");
}
