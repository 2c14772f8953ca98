//! Basic auth per route from an htpasswd file (bcrypt, SHA-512-crypt, argon2id), over
//! HTTP/1.1 (curl) and HTTP/2 (python `h2`): the right password passes and the backend does
//! not see `Authorization` (unless the route forwards it); a wrong one gets `401` with
//! `WWW-Authenticate`; an `$apr1$` entry fails `tether check` at the `htpasswd` value.

mod common;

use std::process::Command;

use common::*;

fn sh(cmd: &mut Command) {
    let out = cmd.output().expect("run a helper");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An htpasswd file with alice (bcrypt), bob (SHA-512-crypt) and carol (argon2id).
fn users(dir: &TempDir) -> std::path::PathBuf {
    let file = dir.path().join("users.htpasswd");
    let f = file.to_str().unwrap();
    sh(Command::new("htpasswd").args(["-B", "-C", "5", "-b", "-c", f, "alice", "wonder"]));
    sh(Command::new("htpasswd").args(["-5", "-b", f, "bob", "builder"]));
    let argon = Command::new("python3")
        .args([
            "-c",
            "import argon2; print(argon2.PasswordHasher(time_cost=1, memory_cost=1024).hash('cheshire'))",
        ])
        .output()
        .expect("python3 argon2-cffi");
    assert!(argon.status.success(), "argon2-cffi missing");
    let hash = String::from_utf8_lossy(&argon.stdout).trim().to_string();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let mut text = std::fs::read_to_string(&file).unwrap();
    text.push_str(&format!("carol:{hash}\n"));
    std::fs::write(&file, text).unwrap();
    file
}

fn config(port: u16, up: u16, users: &std::path::Path) -> String {
    format!(
        r#"
[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/private"
proxy = "app"
basic_auth = {{ realm = "staff only", htpasswd = "{u}" }}

[[server.route]]
path = "/forward"
proxy = "app"
basic_auth = {{ realm = "fwd", htpasswd = "{u}", forward_authorization = true }}

[[server.route]]
path = "/"
proxy = "app"
"#,
        u = users.display()
    )
}

/// curl over HTTP/1.1: (status, head, body).
fn curl_h1(url: &str, user: Option<&str>) -> (u16, String, String) {
    let mut args = vec!["-i", url];
    if let Some(u) = user {
        args.push("-u");
        args.push(u);
    }
    let out = curl(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// python h2 over h2c: (status, headers, body).
fn h2_get(port: u16, path: &str, auth: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let script = repo().join("tests/support_h2_get.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(port.to_string()).arg(path);
    if let Some(a) = auth {
        cmd.arg(format!("authorization={a}"));
    }
    let out = cmd.output().expect("python3 support_h2_get.py");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "h2 client output: {e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let status = v["status"].as_u64().unwrap_or(0) as u16;
    let headers = v["headers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or("").to_string(),
                        p[1].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    (
        status,
        headers,
        v["body"].as_str().unwrap_or("").to_string(),
    )
}

fn basic(user: &str, pass: &str) -> String {
    const ABC: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = format!("{user}:{pass}").into_bytes();
    let mut token = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                token.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                token.push('=');
            }
        }
    }
    format!("Basic {token}")
}

#[test]
fn right_passwords_pass_wrong_ones_get_401_over_http1_and_http2() {
    let dir = TempDir::new("basic-auth");
    let file = users(&dir);
    let (port, up) = (free_port(), free_port());
    let _u = python_echo_head(up);
    let t = tether(&dir, &config(port, up, &file), &[port]);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");

    // HTTP/1.1: each scheme's right password passes; the backend sees no Authorization.
    for user in ["alice:wonder", "bob:builder", "carol:cheshire"] {
        let (status, _, body) = curl_h1(&url("/private/x"), Some(user));
        assert_eq!(status, 200, "{user}: {body}");
        assert!(body.starts_with("GET /private/x"), "{body}");
        assert!(
            !body.to_ascii_lowercase().contains("authorization"),
            "{user}: the backend saw {body}"
        );
    }
    // Twice more (the cache of recent successes answers): still 200.
    let (status, _, _) = curl_h1(&url("/private/again"), Some("alice:wonder"));
    assert_eq!(status, 200);
    // Wrong password, unknown user, no credentials: 401 with the challenge.
    for user in [Some("alice:wrong"), Some("mallory:wonder"), None] {
        let (status, head, body) = curl_h1(&url("/private/x"), user);
        assert_eq!(status, 401, "{user:?}: {head}{body}");
        let challenge = header(&head, "www-authenticate").unwrap_or_default();
        assert!(
            challenge.starts_with("Basic realm=\"staff only\""),
            "{user:?}: {head}"
        );
        assert!(
            !body.contains("GET /private"),
            "reached the backend: {body}"
        );
    }
    // A route that forwards the header.
    let (status, _, body) = curl_h1(&url("/forward/y"), Some("bob:builder"));
    assert_eq!(status, 200);
    assert!(
        body.to_ascii_lowercase().contains("authorization: basic"),
        "{body}"
    );
    // Unprotected routes are untouched.
    let (status, _, _) = curl_h1(&url("/open"), None);
    assert_eq!(status, 200);

    // HTTP/2, the same gate.
    let (status, _, body) = h2_get(port, "/private/h2", Some(&basic("carol", "cheshire")));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("GET /private/h2"), "{body}");
    assert!(
        !body.to_ascii_lowercase().contains("authorization"),
        "{body}"
    );
    let (status, headers, _) = h2_get(port, "/private/h2", Some(&basic("carol", "queen")));
    assert_eq!(status, 401);
    assert!(
        headers
            .iter()
            .any(|(n, v)| n == "www-authenticate" && v.starts_with("Basic realm=\"staff only\"")),
        "{headers:?}"
    );
    let (status, _, _) = h2_get(port, "/private/h2", None);
    assert_eq!(status, 401);
    drop(t);
}

#[test]
fn apr1_entries_fail_the_check_at_the_htpasswd_value() {
    let dir = TempDir::new("basic-auth-check");
    let file = dir.path().join("old.htpasswd");
    let f = file.to_str().unwrap();
    sh(Command::new("htpasswd").args(["-B", "-b", "-c", f, "good", "pw"]));
    sh(Command::new("htpasswd").args(["-m", "-b", f, "old", "pw"]));
    let config = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:9\"]\n\n[[server]]\nlisten = [\"127.0.0.1:{}\"]\n\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\nbasic_auth = {{ realm = \"r\", htpasswd = \"{f}\" }}\n",
        free_port()
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let out = Command::new(TETHER)
        .args(["check", cfg.to_str().unwrap()])
        .output()
        .expect("tether check");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    // path:line:col of the `htpasswd` value (line 11, after `htpasswd = `).
    let col = "basic_auth = { realm = \"r\", htpasswd = ".len() + 1;
    let at = format!("{}:11:{col}: ", cfg.display());
    assert!(err.starts_with(&at), "want {at}: {err}");
    assert!(
        err.contains(&format!("{f}:2:")),
        "the file's own line: {err}"
    );
    assert!(err.contains("$apr1$"), "{err}");
    assert!(err.contains("htpasswd -B"), "{err}");
}
