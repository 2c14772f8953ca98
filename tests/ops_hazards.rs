//! Running tether day to day, end to end with the real binary: the affinity cookie is
//! `Secure` over TLS (HTTP/1.1 and HTTP/2) and follows `cookie_secure` / `cookie_samesite`;
//! weak sealing keys are refused by `tether check` and `tether genkey` prints a strong one;
//! every admin and `/api` answer is plain JSON of named fields; a files root that does not
//! exist is warned by `tether check` and once at start; a drained server is undrained by
//! `DELETE /admin/drain/<pool>/<server>`, and every admin action is logged with the
//! caller's address and what changed.

mod affinity_support;
mod common;
mod ops_support;
mod tls_support;

use std::collections::HashSet;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use affinity_support::{apps, KEY};
use common::*;
use ops_support::{admin, http, start, wait_log};
use serde_json::Value;
use tls_support::{Ca, Key};

/// `tether ARGS` run to completion in `dir`.
fn tether_cmd(dir: &Path, args: &[&str]) -> Output {
    Command::new(TETHER)
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tether")
}

/// The whole `Set-Cookie` line for cookie `name` in a response head (any header case).
fn set_cookie_line<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        (k.eq_ignore_ascii_case("set-cookie") && v.starts_with(&format!("{name}="))).then_some(v)
    })
}

/// The attributes of a `Set-Cookie` value, lower-cased, without the `name=value` pair.
fn attributes(line: &str) -> HashSet<String> {
    line.split(';')
        .skip(1)
        .map(|a| a.trim().to_ascii_lowercase())
        .collect()
}

/// curl `-s -i ARGS URL`: the response head.
fn head_of(args: &[&str], url: &str) -> String {
    let mut all = vec!["-s", "-i", "-o", "-"];
    all.extend_from_slice(args);
    all.push(url);
    let out = curl(&all);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    text.split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn affinity_cookie_is_secure_over_tls_and_follows_the_pool_options() {
    let dir = TempDir::new("hz-cookie");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("site", &["localhost"], Key::P256, 30);
    let (_apps, ports) = apps(&["a", "b"]);
    let (plain, tls, strict, cross) = (free_port(), free_port(), free_port(), free_port());
    let servers = |ps: &[u16]| {
        ps.iter()
            .zip(["a", "b"])
            .map(|(p, n)| format!("{{ id = \"{n}\", addr = \"127.0.0.1:{p}\" }}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let config = format!(
        "[[upstream]]\nname = \"auto\"\nservers = [{s}]\nbalance = \"cookie\"\n\
         cookie_name = \"srv\"\nkeys = [\"{KEY}\"]\n\n\
         [[upstream]]\nname = \"cross\"\nservers = [{s}]\nbalance = \"cookie\"\n\
         cookie_name = \"srv\"\nkeys = [\"{KEY}\"]\ncookie_samesite = \"none\"\n\n\
         [[upstream]]\nname = \"lax_never\"\nservers = [{s}]\nbalance = \"cookie\"\n\
         cookie_name = \"srv\"\nkeys = [\"{KEY}\"]\ncookie_secure = \"never\"\n\
         cookie_samesite = \"strict\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{plain}\"]\nhttp2 = true\n\
         [[server.route]]\npath = \"/\"\nproxy = \"auto\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{cross}\"]\nhttp2 = true\n\
         [[server.route]]\npath = \"/\"\nproxy = \"cross\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{tls}\"]\nhttp2 = true\n\
         tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n\
         [[server.route]]\npath = \"/\"\nproxy = \"auto\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{strict}\"]\n\
         tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n\
         [[server.route]]\npath = \"/\"\nproxy = \"lax_never\"\n",
        cert.display(),
        key.display(),
        cert.display(),
        key.display(),
        s = servers(&ports),
    );
    let t = tether(&dir, &config, &[plain, tls, strict, cross]);
    let ca_path = dir.path().join("ca.pem");
    let ca_arg = ca_path.to_str().expect("utf-8 path");
    let resolve = |p: u16| format!("localhost:{p}:127.0.0.1");
    let https = |p: u16| format!("https://localhost:{p}/whoami");

    // Plain HTTP (1.1 and h2c): no Secure with "auto".
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let head = head_of(&[proto], &format!("http://127.0.0.1:{plain}/whoami"));
        let line = set_cookie_line(&head, "srv").unwrap_or_else(|| panic!("{proto}: {head}"));
        let a = attributes(line);
        assert!(
            a.contains("samesite=lax") && a.contains("httponly"),
            "{line}"
        );
        assert!(
            !a.contains("secure"),
            "{proto}: Secure over plain HTTP: {line}"
        );
    }
    // Over TLS (HTTP/1.1 and HTTP/2 by ALPN): Secure by default.
    for proto in ["--http1.1", "--http2"] {
        let r = resolve(tls);
        let head = head_of(&[proto, "--cacert", ca_arg, "--resolve", &r], &https(tls));
        let wanted = if proto == "--http2" {
            "HTTP/2 200"
        } else {
            "HTTP/1.1 200"
        };
        assert!(head.starts_with(wanted), "{proto}: {head}");
        let line = set_cookie_line(&head, "srv").unwrap_or_else(|| panic!("{proto}: {head}"));
        let a = attributes(line);
        assert!(
            a.contains("secure") && a.contains("samesite=lax"),
            "{proto}: {line}"
        );
    }
    // SameSite=None forces Secure even over plain HTTP.
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let head = head_of(&[proto], &format!("http://127.0.0.1:{cross}/whoami"));
        let line = set_cookie_line(&head, "srv").unwrap_or_else(|| panic!("{proto}: {head}"));
        let a = attributes(line);
        assert!(
            a.contains("samesite=none") && a.contains("secure"),
            "{line}"
        );
    }
    // cookie_secure = "never" over TLS: no Secure; SameSite as configured.
    let r = resolve(strict);
    let head = head_of(&["--cacert", ca_arg, "--resolve", &r], &https(strict));
    let line = set_cookie_line(&head, "srv").unwrap_or_else(|| panic!("{head}"));
    let a = attributes(line);
    assert!(
        a.contains("samesite=strict") && !a.contains("secure"),
        "{line}"
    );
    assert!(!t.log_text().contains("panicked"), "{}", t.log_text());

    // A contradiction is refused with its position.
    let bad = config.replace(
        "cookie_secure = \"never\"\ncookie_samesite = \"strict\"",
        "cookie_secure = \"never\"\ncookie_samesite = \"none\"",
    );
    assert_ne!(bad, config);
    let cfg = dir.write("bad.toml", bad.as_bytes());
    let out = tether_cmd(dir.path(), &["check", cfg.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    // At the value of `cookie_secure` (its opening quote: column 17).
    let line = 1 + bad
        .lines()
        .position(|l| l == "cookie_secure = \"never\"")
        .expect("the line");
    let wanted = format!("bad.toml:{line}:17: `cookie_samesite = \"none\"` needs Secure");
    assert!(err.contains(&wanted), "{wanted}: {err}");
}

#[test]
fn weak_sealing_keys_are_refused_and_genkey_prints_a_strong_one() {
    let dir = TempDir::new("hz-keys");
    let config = |keys: &str| {
        format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nbalance = \"cookie\"\n\
             keys = [{keys}]\n\n[[server]]\nlisten = [\"127.0.0.1:{}\"]\n\
             [[server.route]]\npath = \"/\"\nproxy = \"app\"\n",
            free_port()
        )
    };
    let check = |keys: &str| {
        let cfg = dir.write("tether.toml", config(keys).as_bytes());
        let out = tether_cmd(dir.path(), &["check", cfg.to_str().expect("utf-8")]);
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        (out.status.success(), err)
    };
    // Under 128 bits: a short word, a 19-character passphrase, 16 hex digits. The error
    // names the weak key's own position and what is accepted.
    for (keys, col) in [
        ("\"abc\"", 9),
        (&format!("\"{KEY}\", \"nineteen characters\"")[..], 77),
        ("\"0011223344556677\"", 9),
    ] {
        let (ok, err) = check(keys);
        assert!(!ok, "{keys} accepted");
        let n = if col == 9 { 1 } else { 2 };
        let wanted = format!("tether.toml:5:{col}: `keys`: sealing key #{n} is too weak");
        assert!(err.contains(&wanted), "{keys}: {err}");
        assert!(
            err.contains("tether genkey") && err.contains("20 characters"),
            "{err}"
        );
    }
    // Accepted: 32 bytes in hex or base64, a passphrase of 20 characters.
    for keys in [
        format!("\"{KEY}\""),
        "\"AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=\"".to_string(),
        "\"twenty characters!!!\"".to_string(),
    ] {
        let (ok, err) = check(&keys);
        assert!(ok, "{keys}: {err}");
    }
    // `tether genkey`: a fresh 32-byte hex key each time, accepted by `tether check`.
    let gen = || {
        let out = tether_cmd(dir.path(), &["genkey"]);
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let (a, b) = (gen(), gen());
    assert_ne!(a, b);
    for k in [&a, &b] {
        assert_eq!(k.len(), 64, "{k}");
        assert!(k.bytes().all(|c| c.is_ascii_hexdigit()), "{k}");
    }
    let (ok, err) = check(&format!("\"{a}\""));
    assert!(ok, "{err}");
}

/// Fail if any string inside `v` looks like Rust debug text.
fn assert_plain_json(what: &str, v: &Value) {
    match v {
        Value::String(s) => {
            for bad in ["{", "Mutex", "Some(", "None", "Arc("] {
                assert!(!s.contains(bad), "{what}: {bad:?} inside {s:?}");
            }
        }
        Value::Array(a) => a.iter().for_each(|x| assert_plain_json(what, x)),
        Value::Object(o) => o.values().for_each(|x| assert_plain_json(what, x)),
        _ => {}
    }
}

/// Parse `body` as a JSON object of plain fields.
fn json_object(what: &str, body: &str) -> Value {
    let v: Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"));
    assert!(v.is_object(), "{what}: not an object: {body}");
    assert_plain_json(what, &v);
    v
}

#[test]
fn admin_and_api_answers_are_json_undrain_works_and_actions_are_logged() {
    let dir = TempDir::new("hz-admin");
    let (_apps, ports) = apps(&["a", "b"]);
    let (port, aport, mport) = (free_port(), free_port(), free_port());
    let key = "an-operator-key-for-this-test";
    let key_file = dir.write("admin.key", format!("{key}\n").as_bytes());
    let config = format!(
        "[metrics]\nlisten = \"127.0.0.1:{mport}\"\n\n\
         [admin]\nlisten = \"127.0.0.1:{aport}\"\nkey_file = \"{}\"\n\n\
         [[upstream]]\nname = \"app\"\nservers = [{{ id = \"a\", addr = \"127.0.0.1:{}\" }}, \
         {{ id = \"b\", addr = \"127.0.0.1:{}\" }}]\n\n\
         [[upstream]]\nname = \"sticky\"\nservers = [\"127.0.0.1:{}\"]\nbalance = \"cookie\"\n\
         keys = [\"{KEY}\"]\n\n\
         [[upstream]]\nname = \"fewest\"\nservers = [\"127.0.0.1:{}\"]\n\
         balance = \"least_connections\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\
         [[server.route]]\npath = \"/\"\nproxy = \"app\"\n\
         [[server.route]]\npath = \"/s\"\nproxy = \"sticky\"\n\
         [[server.route]]\npath = \"/f\"\nproxy = \"fewest\"\n",
        key_file.display(),
        ports[0],
        ports[1],
        ports[0],
        ports[1],
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let t = start(&dir, &["--no-supervise", cfg.to_str().expect("utf-8")], 1);
    let whoami = || {
        http(port, "GET", "/whoami", "")
            .expect("proxied")
            .2
            .trim()
            .to_string()
    };

    // Status: plain JSON, the balance by its config word.
    let (code, body) = admin(aport, "GET", "/admin/status", key);
    assert_eq!(code, 200, "{body}");
    let v = json_object("status", &body);
    let balance: Vec<&str> = (v["pools"].as_array().into_iter().flatten())
        .filter_map(|p| p["balance"].as_str())
        .collect();
    assert_eq!(
        balance,
        ["round_robin", "cookie", "least_connections"],
        "{body}"
    );

    // Every other answer is a JSON object too: errors, refusals, actions.
    let server_a = "app/a".to_string();
    for (method, path, k, status) in [
        ("GET", "/admin/status", "wrong", 401),
        ("POST", "/admin/nothing", key, 404),
        ("GET", "/admin/reload", key, 405),
        ("POST", "/admin/drain/nopool/127.0.0.1:1", key, 404),
        ("DELETE", "/admin/drain/app/127.0.0.1:1", key, 404),
        ("GET", &format!("/admin/drain/{server_a}")[..], key, 405),
        ("POST", "/admin/reload", key, 501),
    ] {
        let (code, body) = admin(aport, method, path, k);
        assert_eq!(code, status, "{method} {path}: {body}");
        let v = json_object(&format!("{method} {path}"), &body);
        assert_eq!(v["status"], status, "{body}");
        assert!(
            v["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    }
    // eXpServer's /api on the metrics listener.
    let (code, _, body) = http(mport, "GET", "/api", "").expect("/api");
    assert_eq!(code, 200, "{body}");
    let api = json_object("/api", &body);
    assert!(api["req_total"].is_u64(), "{body}");

    // Drain server a: every new session goes to b.
    let (code, body) = admin(aport, "POST", &format!("/admin/drain/{server_a}"), key);
    assert_eq!(code, 200, "{body}");
    let v = json_object("drain", &body);
    assert_eq!(
        (v["draining"].clone(), v["was_draining"].clone()),
        (true.into(), false.into())
    );
    for _ in 0..6 {
        assert_eq!(whoami(), "b");
    }
    // Undrain it: a takes new sessions again (round robin over both).
    let (code, body) = admin(aport, "DELETE", &format!("/admin/drain/{server_a}"), key);
    assert_eq!(code, 200, "{body}");
    let v = json_object("undrain", &body);
    assert_eq!(
        (v["draining"].clone(), v["was_draining"].clone()),
        (false.into(), true.into())
    );
    let seen: HashSet<String> = (0..6).map(|_| whoami()).collect();
    assert_eq!(seen, HashSet::from(["a".to_string(), "b".to_string()]));
    let (_, body) = admin(aport, "GET", "/admin/status", key);
    let v = json_object("status", &body);
    assert_eq!(v["pools"][0]["servers"][0]["draining"], false, "{body}");

    // Every action is logged with the caller's address and what changed.
    wait_log(&t, "DELETE /admin/drain/", 2, Duration::from_secs(5));
    let log = t.log_text();
    let line = |needle: &str| {
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no {needle:?} in the log:\n{log}"))
            .to_string()
    };
    let drained = line(&format!("POST /admin/drain/{server_a} from 127.0.0.1:"));
    assert!(
        drained.contains("taking new sessions → draining (changed)"),
        "{drained}"
    );
    let undrained = line(&format!("DELETE /admin/drain/{server_a} from 127.0.0.1:"));
    assert!(
        undrained.contains("draining → taking new sessions (changed)"),
        "{undrained}"
    );
    let reload = line("POST /admin/reload from 127.0.0.1:");
    assert!(reload.contains("501"), "{reload}");
    assert!(!log.contains(key), "the key is in the log");
}

#[test]
fn a_missing_files_root_is_warned_by_check_and_once_at_start() {
    let dir = TempDir::new("hz-root");
    dir.write("www/present.txt", b"here\n");
    let port = free_port();
    let config = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\
         [[server.route]]\npath = \"/gone\"\nroot = \"not-there\"\n\
         [[server.route]]\npath = \"/\"\nroot = \"www\"\n"
    );
    let cfg = dir.write("tether.toml", config.as_bytes());
    let out = tether_cmd(dir.path(), &["check", cfg.to_str().expect("utf-8")]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "a warning is no error: {err}");
    let wanted = "tether.toml:5:8: warning: files root \"not-there\" does not exist";
    assert!(err.contains(wanted), "{err}");
    assert_eq!(err.matches("warning:").count(), 1, "www exists: {err}");

    // At start (master and worker): logged once, at WARN.
    let t = tether(&dir, &config, &[port]);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/present.txt")).0, 200);
    let log = t.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(wanted)).collect();
    assert_eq!(lines.len(), 1, "{log}");
    assert!(lines[0].contains("WARN"), "{}", lines[0]);
}
