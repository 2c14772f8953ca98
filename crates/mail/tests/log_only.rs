//! Without SMTP settings the mailer writes subject and body to the log (checked with a
//! capturing `log` logger; this file is its own test binary so the logger is ours alone).

use std::sync::Mutex;

use tether_mail::Mailer;

struct Capture(Mutex<Vec<String>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        if let Ok(mut lines) = self.0.lock() {
            lines.push(format!("{} {}", record.level(), record.args()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

#[test]
fn log_only_writes_subject_and_body_to_the_log() {
    log::set_logger(&LOGGER).expect("first logger");
    log::set_max_level(log::LevelFilter::Info);
    let mailer = Mailer::log_only();
    assert!(mailer.is_log_only());
    assert!(mailer.send(
        "Simulation server not responding",
        "Hello,\n\nhost:2000 is down"
    ));
    let lines = LOGGER.0.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].starts_with("INFO "), "{lines:?}");
    assert!(
        lines[0].contains("Simulation server not responding"),
        "{lines:?}"
    );
    assert!(lines[0].contains("host:2000 is down"), "{lines:?}");
    assert_eq!(mailer.stats(), Default::default());
}
