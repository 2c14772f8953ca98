//! `LogWriter` against real files, a real FIFO nobody reads, and a real stderr: lines
//! arrive whole and in order from several threads; a logrotate-style rename + `reopen`
//! splits the lines exactly at the call and loses none; a stuck target never slows
//! `write_line` (100k lines in well under 50 ms) and its drops are counted; a bad path is
//! an error; lines to stderr reach the process's stderr.

mod support;

use std::collections::HashMap;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{numbered, Fifo, TempDir};
use tether_logwriter::{LogWriter, Stats, Target};

fn read(path: &std::path::Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

#[test]
fn handles_are_send_sync_clone() {
    fn shared<T: Send + Sync + Clone + 'static>() {}
    shared::<LogWriter>();
}

#[test]
fn lines_arrive_in_order() {
    let dir = TempDir::new("order");
    let path = dir.path("access.log");
    let w = LogWriter::open(Target::File(path.clone()), 1 << 20).expect("open");
    for i in 0..20_000 {
        // Half with their newline, half without: both end as one line.
        match i % 2 {
            0 => w.write_line(format!("line {i}").as_bytes()),
            _ => w.write_line(format!("line {i}\n").as_bytes()),
        }
    }
    assert!(w.shutdown(Duration::from_secs(10)), "flushed in time");
    let text = read(&path);
    assert_eq!(text, numbered(0..20_000));
    let st = w.stats();
    assert_eq!(
        st,
        Stats {
            written: 20_000,
            dropped: 0,
            bytes: text.len() as u64
        }
    );
    w.write_line(b"after shutdown");
    assert_eq!(w.stats().dropped, 1, "a line after shutdown is counted");
    assert_eq!(read(&path), text, "and not written");
}

#[test]
fn threads_keep_their_own_order_and_lines_stay_whole() {
    let dir = TempDir::new("threads");
    let path = dir.path("access.log");
    let w = LogWriter::open(Target::File(path.clone()), 4 << 20).expect("open");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let w = w.clone();
            std::thread::spawn(move || {
                for i in 0..5_000 {
                    w.write_line(format!("t{t} {i}").as_bytes());
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("writer thread");
    }
    drop(w); // the last handle flushes
    let text = read(&path);
    let mut next: HashMap<&str, usize> = HashMap::new();
    for line in text.lines() {
        let (t, i) = line.split_once(' ').expect("a whole line");
        let i: usize = i.parse().expect("a whole number");
        let n = next.entry(t).or_insert(0);
        assert_eq!(i, *n, "{t} out of order");
        *n += 1;
    }
    assert_eq!(next.values().sum::<usize>(), 20_000);
}

#[test]
fn reopen_after_rename_writes_to_the_new_file_and_loses_nothing() {
    let dir = TempDir::new("rotate");
    let path = dir.path("access.log");
    let rotated = dir.path("access.log.1");
    let w = LogWriter::open(Target::File(path.clone()), 1 << 20).expect("open");
    for i in 0..3_000 {
        w.write_line(format!("line {i}").as_bytes());
        if i == 1_499 {
            // What logrotate does: rename, then signal (SIGUSR1 → reopen).
            std::fs::rename(&path, &rotated).expect("rename");
            w.reopen();
        }
    }
    assert!(w.shutdown(Duration::from_secs(10)));
    assert_eq!(
        read(&rotated),
        numbered(0..1_500),
        "lines before reopen() stay in the renamed file"
    );
    assert_eq!(
        read(&path),
        numbered(1_500..3_000),
        "lines after reopen() go to the new file"
    );
    assert_eq!(w.stats().written, 3_000);
    assert_eq!(w.stats().dropped, 0);
}

#[test]
fn reopen_that_fails_keeps_the_old_file() {
    let dir = TempDir::new("reopen-fails");
    let sub = dir.path("logs");
    std::fs::create_dir(&sub).expect("mkdir");
    let path = sub.join("error.log");
    let w = LogWriter::open(Target::File(path.clone()), 1 << 16).expect("open");
    w.write_line(b"one");
    let moved = dir.path("moved");
    std::fs::rename(&sub, &moved).expect("move the directory away");
    w.reopen(); // logs/ is gone: the path cannot be opened
    w.write_line(b"two");
    assert!(w.shutdown(Duration::from_secs(5)));
    assert_eq!(read(&moved.join("error.log")), "one\ntwo\n");
    assert!(!path.exists());
}

#[test]
fn bad_path_is_an_error_that_names_it() {
    let err = LogWriter::open(
        Target::File("/nonexistent-dir/tether/access.log".into()),
        1024,
    )
    .expect_err("cannot open");
    assert!(err.contains("/nonexistent-dir/tether/access.log"), "{err}");
}

#[test]
fn a_fifo_nobody_reads_never_slows_write_line_and_drops_are_counted() {
    let dir = TempDir::new("fifo");
    let mut fifo = Fifo::new(dir.path("stuck"));
    let w = LogWriter::open(Target::File(fifo.path.clone()), 64 * 1024).expect("open");
    let line = [b'x'; 99];
    let began = Instant::now();
    for _ in 0..100_000 {
        w.write_line(&line);
    }
    let spent = began.elapsed();
    assert!(
        spent < Duration::from_millis(50),
        "100k lines took {spent:?}"
    );
    // Once more, call by call, with the queue full for sure now.
    let mut slowest = Duration::ZERO;
    for _ in 0..1_000 {
        let t = Instant::now();
        w.write_line(&line);
        slowest = slowest.max(t.elapsed());
    }
    assert!(
        slowest < Duration::from_millis(10),
        "one call took {slowest:?}"
    );
    // The pipe holds 4 KiB, the queue 64 KiB, the writer one batch: most lines dropped.
    let st = w.stats();
    assert!(st.dropped > 95_000, "{st:?}");
    let t = Instant::now();
    assert!(
        !w.shutdown(Duration::from_millis(200)),
        "the target is stuck: shutdown cannot flush"
    );
    assert!(
        t.elapsed() < Duration::from_secs(1),
        "shutdown's wait is bounded"
    );
    // Someone reads at last: the writer thread writes what it held, then closes.
    let got = fifo
        .drain_to_eof(Duration::from_secs(10))
        .expect("the writer finishes once the pipe drains");
    let st = w.stats();
    assert_eq!(got.len() as u64, st.bytes);
    assert_eq!(got.len() % 100, 0, "whole lines only");
    assert_eq!(st.written + st.dropped, 101_000, "{st:?}");
}

#[test]
fn stderr_target_reaches_the_process_stderr() {
    if std::env::var_os("TETHER_LOGWRITER_CHILD").is_some() {
        let w = LogWriter::open(Target::Stderr, 1 << 16).expect("stderr");
        w.reopen(); // nothing to reopen: harmless
        for i in 0..100 {
            w.write_line(format!("stderr line {i}").as_bytes());
        }
        assert!(w.shutdown(Duration::from_secs(5)));
        assert_eq!(w.stats().written, 100);
        return;
    }
    let exe = std::env::current_exe().expect("the test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            "stderr_target_reaches_the_process_stderr",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TETHER_LOGWRITER_CHILD", "1")
        .output()
        .expect("run the child");
    assert!(out.status.success(), "child: {out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("stderr line "))
        .collect();
    let want: Vec<String> = (0..100).map(|i| format!("stderr line {i}")).collect();
    assert_eq!(lines, want, "stderr: {err}");
    assert!(
        !String::from_utf8_lossy(&out.stdout).contains("stderr line"),
        "not on stdout"
    );
}
