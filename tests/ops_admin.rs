//! The admin listener with the real binary and real HTTP requests: `/healthz` without a key;
//! every `/admin/` call refused (`401`, a log line) without the key or with a wrong one;
//! status, drain (pool hook), restart and shutdown with it; the same API on a worker run
//! alone (`--no-supervise`), where reload and restart need the supervisor.

mod common;
mod ops_support;

use std::time::Duration;

use common::*;
use ops_support::*;

/// A config with a pool `app` (one server) on `port`, the admin listener on `admin`.
fn config(port: u16, admin: u16, up: u16, key_file: &std::path::Path) -> String {
    format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{up}\"]\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n\
         [admin]\nlisten = \"127.0.0.1:{admin}\"\nkey_file = \"{}\"\n",
        key_file.display()
    )
}

#[test]
fn admin_api_needs_the_key() {
    let dir = TempDir::new("ops-admin");
    let up = free_port();
    let _upstream = python_upstream(up);
    let (port, aport) = (free_port(), free_port());
    let key_file = dir.path().join("admin.key");
    let cfg = dir.write("tether.toml", config(port, aport, up, &key_file).as_bytes());
    let mut t = start(&dir, &[cfg.to_str().unwrap()], 1);
    let master = t.child_pid();
    let key = read_key(&key_file);
    assert_eq!(key.len(), 64);

    let (code, _, body) = http(aport, "GET", "/healthz", "").expect("healthz");
    assert_eq!((code, body.as_str()), (200, "ok\n"));

    // No key, a wrong key, another scheme: 401 with a challenge, and a log line each.
    for (path, auth) in [
        ("/admin/status", String::new()),
        (
            "/admin/reload",
            "Authorization: Bearer nope\r\n".to_string(),
        ),
        ("/admin/shutdown", format!("Authorization: Basic {key}\r\n")),
        (
            "/admin/restart",
            format!("Authorization: Bearer {key}x\r\n"),
        ),
    ] {
        let method = if path == "/admin/status" {
            "GET"
        } else {
            "POST"
        };
        let (code, head, _) = http(aport, method, path, &auth).expect("admin request");
        assert_eq!(code, 401, "{method} {path} with {auth:?}");
        assert_eq!(
            header(&head, "www-authenticate"),
            Some("Bearer realm=\"tether admin\"")
        );
    }
    wait_log(&t, "refused", 4, Duration::from_secs(5));
    let log = t.log_text();
    assert!(log.contains("GET /admin/status from 127.0.0.1:"), "{log}");
    assert!(log.contains("refused: no key"), "{log}");
    assert!(log.contains("refused: wrong key"), "{log}");
    assert!(!log.contains(&key), "the key is in the log");
    assert_eq!(running_pids(&log).len(), 1, "a refused call did something");

    // With the key.
    let (code, body) = admin(aport, "GET", "/admin/status", &key);
    assert_eq!(code, 200, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(v["mode"], "supervised");
    assert_eq!(v["master"]["pid"], master);
    assert_eq!(v["workers"][0]["pid"], t.pid());
    assert_eq!(v["pools"][0]["name"], "app");
    assert_eq!(
        v["pools"][0]["servers"][0]["server"],
        format!("127.0.0.1:{up}")
    );
    assert_eq!(v["metrics"]["pid"], t.pid());

    let drain = |p: &str| admin(aport, "POST", &format!("/admin/drain/{p}"), &key).0;
    assert_eq!(drain("nopool/127.0.0.1:1"), 404);
    assert_eq!(drain("app/127.0.0.1:1"), 404);
    assert_eq!(drain(&format!("app/127.0.0.1:{up}")), 200);
    let (_, body) = admin(aport, "GET", "/admin/status", &key);
    let v: serde_json::Value = serde_json::from_str(&body).expect("status is JSON");
    assert_eq!(v["pools"][0]["servers"][0]["draining"], true, "{body}");
    assert_eq!(admin(aport, "GET", "/admin/reload", &key).0, 405);
    assert_eq!(admin(aport, "POST", "/admin/nothing", &key).0, 404);

    // Restart: a new worker serves, the old one drains away.
    let old = t.pid();
    assert_eq!(admin(aport, "POST", "/admin/restart", &key).0, 202);
    wait_running(&mut t, 2);
    assert!(eventually(Duration::from_secs(10), || !pid_alive(old)));
    let (code, _, body) = http(port, "GET", "/whoami", "").expect("proxied");
    assert_eq!(code, 200, "{body}");

    // Shutdown: the master stops with 0 and leaves nothing.
    assert_eq!(admin(aport, "POST", "/admin/shutdown", &key).0, 202);
    let status = wait_exit(&mut t.child, Duration::from_secs(15)).expect("master exits");
    assert_eq!(status.code(), Some(0), "{}", t.log_text());
    assert_all_gone(master, &t.log_text());
}

#[test]
fn lone_worker_admin_and_shutdown() {
    let dir = TempDir::new("ops-alone");
    let up = free_port();
    let _upstream = python_upstream(up);
    let (port, aport) = (free_port(), free_port());
    let key_file = dir.path().join("admin.key");
    std::fs::write(&key_file, "a-key-chosen-by-the-operator\n").expect("key file");
    let cfg = dir.write("tether.toml", config(port, aport, up, &key_file).as_bytes());
    let mut t = start(&dir, &["--no-supervise", cfg.to_str().unwrap()], 1);
    assert_eq!(t.pid(), t.child_pid(), "no master");
    let key = "a-key-chosen-by-the-operator";
    assert!(t
        .log_text()
        .contains(&format!("admin key: read from {}", key_file.display())));

    assert_eq!(http(aport, "GET", "/healthz", "").expect("healthz").0, 200);
    assert_eq!(admin(aport, "POST", "/admin/reload", "wrong").0, 401);
    let (code, body) = admin(aport, "GET", "/admin/status", key);
    assert_eq!(code, 200);
    assert!(body.contains("\"mode\":\"alone\""), "{body}");
    assert_eq!(admin(aport, "POST", "/admin/reload", key).0, 501);
    assert_eq!(admin(aport, "POST", "/admin/restart", key).0, 501);

    // SIGHUP does not reload a lone worker, and does not stop it either.
    signal(t.child_pid(), libc::SIGHUP);
    wait_log(
        &t,
        "reloading needs the supervisor",
        1,
        Duration::from_secs(5),
    );
    let (code, head, body) = http(port, "GET", "/whoami", "").expect("proxied");
    assert_eq!(code, 200, "{head}\n{body}\n{}", t.log_text());

    assert_eq!(admin(aport, "POST", "/admin/shutdown", key).0, 202);
    let status = wait_exit(&mut t.child, Duration::from_secs(15)).expect("exits");
    assert_eq!(status.code(), Some(0), "{}", t.log_text());
    assert_all_gone(t.child_pid(), &t.log_text());
}
