//! Issue 11 (item 9): with `[upstream.health]`, a graceful stop used to wait the whole
//! `drain_timeout` because the health checker never ended. It ends on drain now.

mod common;
mod ops_support;

use std::time::{Duration, Instant};

use common::*;
use ops_support::*;

#[test]
fn sigterm_with_health_checks_does_not_wait_for_the_drain_timeout() {
    let dir = TempDir::new("drain-health");
    let (up, port) = (free_port(), free_port());
    let _py = python_upstream(up);
    let config = format!(
        "drain_timeout_ms = 8000\n[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{up}\"]\n[upstream.health]\npath = \"/whoami\"\ninterval_ms = 200\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let mut t = tether_args(
        dir.path(),
        &["--no-supervise", cfg.to_str().unwrap()],
        &[port],
    );
    let (status, _) = get(&format!("http://127.0.0.1:{port}/whoami"));
    assert_eq!(status, 200);
    let started = Instant::now();
    signal(t.child_pid(), libc::SIGTERM);
    assert!(
        eventually(Duration::from_secs(6), || !t.alive()),
        "still running after SIGTERM:\n{}",
        t.log_text()
    );
    assert!(started.elapsed() < Duration::from_secs(6));
}
