//! A listener on an address another process already listens on is refused, as nginx and
//! HAProxy refuse it, instead of joining that listener through `SO_REUSEPORT` and taking
//! half its connections: at start (supervised and `--no-supervise`) and on reload (the
//! reload is refused and the old config keeps serving). tether's own workers still share
//! their addresses.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Run `tether ARGS` that must exit by itself; its status and stderr.
fn run_to_exit(dir: &TempDir, args: &[&str]) -> (bool, String) {
    let mut child = Command::new(TETHER)
        .args(args)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tether");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return (status.success(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tether {args:?} kept running on an address in use");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn plain(port: u16) -> String {
    format!(
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n[[server.route]]\npath = \"/\"\nredirect = \"https://example.org/\"\n"
    )
}

#[test]
fn a_second_tether_on_a_port_in_use_is_refused() {
    let (port, other) = (free_port(), free_port());
    let (d1, d2) = (TempDir::new("port-a"), TempDir::new("port-b"));
    let first = tether(&d1, &plain(port), &[port]);
    let cfg = d2.write("tether.toml", plain(port).as_bytes());
    let cfg = cfg.to_str().expect("utf-8");
    for args in [vec![cfg], vec!["--no-supervise", cfg]] {
        let (ok, err) = run_to_exit(&d2, &args);
        assert!(!ok, "{args:?} must fail");
        assert!(
            err.contains(&format!("127.0.0.1:{port}")) && err.contains("address already in use"),
            "{args:?}: {err}"
        );
    }
    // The first keeps every connection: 20 of 20 answered by it (before: about half).
    for _ in 0..20 {
        let (code, _) = get(&format!("http://127.0.0.1:{port}/"));
        assert_eq!(code, 302, "the first tether answers");
    }
    // A stranger that is not tether: the same refusal.
    let stranger = python_script(
        "import socket,sys,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1)\ns.bind(('127.0.0.1',int(sys.argv[1])))\ns.listen()\ntime.sleep(60)",
        &[&other.to_string()],
        other,
    );
    let (ok, err) = run_to_exit(
        &d2,
        &[d2.write("b.toml", plain(other).as_bytes())
            .to_str()
            .expect("utf-8")],
    );
    assert!(!ok && err.contains("address already in use"), "{err}");
    drop(stranger);
    drop(first);
}

#[test]
fn a_reload_onto_a_port_in_use_is_refused_and_the_old_config_serves() {
    let (port, taken) = (free_port(), free_port());
    let dir = TempDir::new("port-reload");
    let t = tether(&dir, &plain(port), &[port]);
    let _stranger = python_script(
        "import socket,sys,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEPORT,1)\ns.bind(('127.0.0.1',int(sys.argv[1])))\ns.listen()\ntime.sleep(60)",
        &[&taken.to_string()],
        taken,
    );
    let both = format!("{}\n{}", plain(port), plain(taken));
    dir.write("tether.toml", both.as_bytes());
    // SAFETY: kill(2) on the master this test started.
    unsafe { libc::kill(t.child_pid() as i32, libc::SIGHUP) };
    assert!(
        eventually(Duration::from_secs(10), || t
            .log_text()
            .contains("address already in use")),
        "the reload names the refusal:\n{}",
        t.log_text()
    );
    assert!(
        t.log_text().contains(&format!("127.0.0.1:{taken}")),
        "{}",
        t.log_text()
    );
    let (code, _) = get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(code, 302, "the old config keeps serving");
}
