//! nginx's `-s`, end to end with the real binary: `tether reload`, `reopen`, `quit` and
//! `stop` find the master through its pid file (written once the listeners are bound,
//! removed on exit) and signal it; a missing or stale pid file is a clear error; `tether -t`
//! checks; completions and the man page come from the clap definitions.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn config(port: u16, pid: &std::path::Path) -> String {
    format!(
        "pid_file = \"{}\"\n\n[[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n[[server.route]]\npath = \"/\"\nredirect = \"https://example.org/\"\n",
        pid.display()
    )
}

/// `tether ARGS` run to its end: (success, stdout + stderr).
fn tether_cmd(dir: &TempDir, args: &[&str]) -> (bool, String) {
    let out = Command::new(TETHER)
        .args(args)
        .current_dir(dir.path())
        .output()
        .expect("run tether");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn reload_reopen_quit_through_the_pid_file() {
    let dir = TempDir::new("cli-signals");
    let port = free_port();
    let pid = dir.path().join("tether.pid");
    let cfg = dir.write("tether.toml", config(port, &pid).as_bytes());
    let cfg = cfg.to_str().expect("utf-8");
    let t = tether(&dir, &config(port, &pid), &[port]);
    assert!(
        eventually(Duration::from_secs(5), || std::fs::read_to_string(&pid)
            .is_ok_and(|p| p.trim() == t.child_pid().to_string())),
        "the pid file names the master"
    );

    let (ok, out) = tether_cmd(&dir, &["reload", cfg]);
    assert!(ok, "{out}");
    assert!(out.contains("SIGHUP"), "{out}");
    assert!(
        t.wait_log("SIGHUP"),
        "the master reloads:\n{}",
        t.log_text()
    );

    let (ok, out) = tether_cmd(&dir, &["reopen", cfg]);
    assert!(ok, "{out}");
    assert!(t.wait_log("SIGUSR1"), "{}", t.log_text());
    let (code, _) = get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!(code, 302, "still serving after reload and reopen");

    let (ok, out) = tether_cmd(&dir, &["quit", cfg]);
    assert!(ok, "{out}");
    let master = t.child_pid();
    assert!(
        eventually(Duration::from_secs(15), || !pid_alive(master)),
        "quit stops the master:\n{}",
        t.log_text()
    );
    assert!(!pid.exists(), "the pid file is removed on exit");

    // Nothing runs now: a clear error, not a signal to a stranger.
    let (ok, out) = tether_cmd(&dir, &["reload", cfg]);
    assert!(!ok && out.contains("no pid file"), "{out}");
    // A stale file (a pid that is gone).
    std::fs::write(&pid, format!("{master}\n")).expect("write");
    let (ok, out) = tether_cmd(&dir, &["reload", cfg]);
    assert!(!ok && out.contains("stale"), "{out}");
}

#[test]
fn stop_ends_the_master_at_once() {
    let dir = TempDir::new("cli-stop");
    let port = free_port();
    let pid = dir.path().join("tether.pid");
    let cfg = dir.write("tether.toml", config(port, &pid).as_bytes());
    let t = tether(&dir, &config(port, &pid), &[port]);
    assert!(eventually(Duration::from_secs(5), || pid.exists()));
    let (ok, out) = tether_cmd(&dir, &["stop", cfg.to_str().expect("utf-8")]);
    assert!(ok, "{out}");
    let master = t.child_pid();
    assert!(
        eventually(Duration::from_secs(5), || !pid_alive(master)),
        "stop ends the master at once:\n{}",
        t.log_text()
    );
    assert!(t.log_text().contains("SIGQUIT"), "{}", t.log_text());
}

#[test]
fn dash_t_completions_and_man_page() {
    let dir = TempDir::new("cli-t");
    let pid = dir.path().join("p.pid");
    let cfg = dir.write("tether.toml", config(free_port(), &pid).as_bytes());
    let (ok, out) = tether_cmd(&dir, &["-t", cfg.to_str().expect("utf-8")]);
    assert!(ok && out.contains("ok"), "{out}");
    let bad = dir.write("bad.toml", b"[server]\nlisten = [\"127.0.0.1:1\"]\n");
    let (ok, out) = tether_cmd(&dir, &["-t", bad.to_str().expect("utf-8")]);
    assert!(!ok && out.contains("[[server]]"), "a shape hint: {out}");
    let (ok, out) = tether_cmd(&dir, &["completions", "bash"]);
    assert!(
        ok && out.contains("reload") && out.contains("complete"),
        "{out}"
    );
    let (ok, out) = tether_cmd(&dir, &["man"]);
    assert!(ok && out.contains(".TH") && out.contains("reopen"), "{out}");
    let (ok, out) = tether_cmd(&dir, &["--help"]);
    assert!(ok && out.contains("session.json"), "{out}");
}

#[test]
fn a_session_json_typo_is_reported_against_webots_keys() {
    // docs/broker.md: a typo in Webots' session.json names the unknown key and Webots' key
    // list, not eXpServer's (`port` is a Webots key, not an eXpServer one).
    let dir = TempDir::new("cli-session-json");
    let f = dir.write(
        "session.json",
        br#"{"port":1999,"simulationServer":["localhost:2000"]}"#,
    );
    let (ok, out) = tether_cmd(&dir, &["check", f.to_str().expect("utf-8")]);
    assert!(!ok, "{out}");
    assert!(out.contains("unknown field `simulationServer`"), "{out}");
    assert!(out.contains("did you mean `simulationServers`"), "{out}");
    assert!(!out.contains("server_name"), "not eXpServer's list: {out}");
}
