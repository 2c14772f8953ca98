//! Drops are reported through `log` once per interval from the reporter thread, even while
//! the writer thread is stuck in `write(2)` on a FIFO nobody reads; nothing is reported
//! for a target that keeps up. (Its own test binary: the capturing logger is global.)

mod support;

use std::sync::Mutex;
use std::time::Duration;

use support::{eventually, Fifo, TempDir};
use tether_logwriter::{LogWriter, Target};

struct Capture(Mutex<Vec<(log::Level, String, String)>>);

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let thread = std::thread::current().name().unwrap_or("").to_string();
        if let Ok(mut lines) = self.0.lock() {
            lines.push((record.level(), thread, record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

static LOGGER: Capture = Capture(Mutex::new(Vec::new()));

fn warnings_about(target: &str) -> Vec<(String, String)> {
    LOGGER
        .0
        .lock()
        .map(|l| {
            l.iter()
                .filter(|(level, _, text)| *level == log::Level::Warn && text.contains(target))
                .map(|(_, thread, text)| (thread.clone(), text.clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// (lines dropped in the interval, total since start) of one report.
fn numbers(text: &str) -> (u64, u64) {
    let n = text
        .split(": ")
        .nth(1)
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {text:?}"));
    let total = text
        .rsplit('(')
        .next()
        .and_then(|t| t.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no total in {text:?}"));
    (n, total)
}

/// The total of the last report about `target`.
fn last_total(target: &str) -> Option<u64> {
    warnings_about(target).last().map(|(_, t)| numbers(t).1)
}

#[test]
fn drops_are_reported_each_interval_while_the_target_is_stuck() {
    log::set_logger(&LOGGER).expect("first logger");
    log::set_max_level(log::LevelFilter::Info);
    let dir = TempDir::new("report");

    // A target that keeps up: no warning.
    let fine = dir.path("fine.log");
    let ok = LogWriter::open_reporting(
        Target::File(fine.clone()),
        1 << 20,
        Duration::from_millis(50),
    )
    .expect("open");
    for i in 0..1_000 {
        ok.write_line(format!("{i}").as_bytes());
    }

    let mut fifo = Fifo::new(dir.path("stuck"));
    let w = LogWriter::open_reporting(
        Target::File(fifo.path.clone()),
        16 * 1024,
        Duration::from_millis(100),
    )
    .expect("open");
    let name = fifo.path.display().to_string();
    for _ in 0..10_000 {
        w.write_line(&[b'y'; 63]);
    }
    let first = w.stats().dropped;
    assert!(first > 5_000, "{:?}", w.stats());
    assert!(
        eventually(Duration::from_secs(5), || last_total(&name) == Some(first)),
        "the drops were not reported: {:?}",
        warnings_about(&name)
    );

    // More drops, later intervals: reports of the new drops only.
    // 640 KB more than the pipe (4 KiB), the queue and a batch (16 KiB each) can hold.
    for _ in 0..10_000 {
        w.write_line(&[b'z'; 63]);
    }
    let second = w.stats().dropped;
    assert!(second > first + 9_000, "{:?}", w.stats());
    assert!(
        eventually(Duration::from_secs(5), || last_total(&name) == Some(second)),
        "the new drops were not reported: {:?}",
        warnings_about(&name)
    );
    let reports = warnings_about(&name);
    assert!(reports.len() >= 2, "{reports:?}");
    let mut sum = 0;
    for (thread, text) in &reports {
        assert_eq!(
            thread, "log-report",
            "reported from the reporter thread: {text}"
        );
        let (n, _) = numbers(text);
        assert!(text.contains("dropped in the last 100ms"), "{text}");
        sum += n;
    }
    assert_eq!(sum, second, "each drop reported once: {reports:?}");

    // Stuck: shutdown cannot flush in time; once someone reads, the writer ends.
    assert!(!w.shutdown(Duration::from_millis(10)));
    assert!(fifo.drain_to_eof(Duration::from_secs(10)).is_some());
    drop(w);
    assert!(ok.shutdown(Duration::from_secs(5)));
    assert!(warnings_about(&fine.display().to_string()).is_empty());
    assert_eq!(ok.stats().dropped, 0);
}
