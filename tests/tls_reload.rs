//! Certificates at run time, end to end: replaced on disk and reloaded (SIGHUP) under a loop
//! of HTTPS requests with not one failing; a broken new certificate refused with the old
//! one still served; certificates close to expiry warned about at start and shown in
//! `/metrics` and `/admin/status`.

mod common;
mod ops_support;
mod tls_support;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use ops_support::*;
use tls_support::{s_client, Ca, Key};

fn tls_config(
    port: u16,
    cert: &std::path::Path,
    key: &std::path::Path,
    root: &std::path::Path,
) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\ntls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n",
        root.display(),
        cert.display(),
        key.display()
    )
}

#[test]
fn reload_with_new_certificates_drops_no_request_and_refuses_a_broken_one() {
    let dir = TempDir::new("tls-reload");
    let ca = Ca::new(dir.path(), "ca");
    let (old_cert, old_key) = ca.leaf("old", &["old.test", "localhost"], Key::P256, 30);
    let (new_cert, new_key) = ca.leaf("new", &["new.test", "localhost"], Key::P256, 30);
    let (cert, key) = (dir.path().join("live.pem"), dir.path().join("live.key"));
    std::fs::copy(&old_cert, &cert).unwrap();
    std::fs::copy(&old_key, &key).unwrap();
    dir.write("www/ok.txt", b"ok");
    let port = free_port();
    let config = tls_config(port, &cert, &key, &dir.path().join("www"));
    let t = tether(&dir, &config, &[port]);
    let master = t.child_pid();
    let ca_path = ca.cert.to_str().unwrap().to_string();
    let names = |port: u16| s_client(port, &["-servername", "localhost"], b"");
    assert!(names(port).contains("old.test"), "{}", names(port));

    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut clients = Vec::new();
    for _ in 0..2 {
        let (stop, ok, errors, ca_path) =
            (stop.clone(), ok.clone(), errors.clone(), ca_path.clone());
        clients.push(std::thread::spawn(move || {
            let url = format!("https://localhost:{port}/ok.txt");
            let resolve = format!("localhost:{port}:127.0.0.1");
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) && n < 2000 {
                n += 1;
                let out = curl(&["--cacert", &ca_path, "--resolve", &resolve, &url]);
                if out.status.success() && out.stdout == b"ok" {
                    ok.fetch_add(1, Ordering::SeqCst);
                } else {
                    errors
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&out.stderr).into_owned());
                }
            }
        }));
    }
    // Requests flow before the reload (counted, not timed: curl starts slowly under load).
    let flowing = |more: u64, what: &str| {
        let from = ok.load(Ordering::SeqCst);
        assert!(
            eventually(Duration::from_secs(30), || ok.load(Ordering::SeqCst)
                >= from + more),
            "no {more} requests {what}: {:#?}",
            errors.lock().unwrap()
        );
    };
    flowing(10, "before the reload");
    // New files at the same paths, then SIGHUP: new handshakes get the new certificate.
    std::fs::copy(&new_cert, &cert).unwrap();
    std::fs::copy(&new_key, &key).unwrap();
    signal(master, libc::SIGHUP);
    wait_log(&t, ") finished (exit code 0)", 1, Duration::from_secs(20));
    assert!(eventually(Duration::from_secs(10), || names(port).contains("new.test")));
    // A broken certificate: the reload is refused and says why; the new one stays.
    dir.write(
        "live.pem",
        b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n",
    );
    signal(master, libc::SIGHUP);
    wait_log(
        &t,
        "refused: the running config stays",
        1,
        Duration::from_secs(10),
    );
    assert!(t.wait_log("live.pem"), "{}", t.log_text());
    flowing(10, "after the refused reload");
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.join().unwrap();
    }
    assert!(names(port).contains("new.test"));
    let errors = errors.lock().unwrap().clone();
    let ok = ok.load(Ordering::SeqCst);
    assert!(errors.is_empty(), "{ok} ok, failures: {errors:#?}");
    assert!(ok >= 20, "only {ok} requests");
}

#[test]
fn expiring_certificate_is_warned_about_and_reported() {
    let dir = TempDir::new("tls-expiry");
    let ca = Ca::new(dir.path(), "ca");
    let (cert, key) = ca.leaf("soon", &["soon.test"], Key::P256, 5);
    let (port, metrics, admin_port) = (free_port(), free_port(), free_port());
    let key_file = dir.path().join("admin.key");
    let config = format!(
        "{}\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\nkey_file = \"{}\"\n",
        tls_config(port, &cert, &key, dir.path()),
        key_file.display()
    );
    let t = tether(&dir, &config, &[port, metrics, admin_port]);
    assert!(
        eventually(Duration::from_secs(5), || t
            .log_text()
            .lines()
            .any(|l| l.contains("soon.pem (soon.test) expires in 4 day(s)"))),
        "{}",
        t.log_text()
    );
    let (status, body) = get(&format!("http://127.0.0.1:{metrics}/metrics"));
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    let line = body
        .lines()
        .find(|l| l.starts_with("tether_certificate_expiry_seconds{"))
        .unwrap_or_else(|| panic!("{body}"));
    assert!(line.contains("names=\"soon.test\""), "{line}");
    let at: u64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(
        at > now + 4 * 86_400 && at <= now + 5 * 86_400 + 60,
        "{at} vs {now}"
    );
    let key = read_key(&key_file);
    let (status, body) = admin(admin_port, "GET", "/admin/status", &key);
    assert_eq!(status, 200);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let c = &v["certificates"][0];
    assert_eq!(c["names"][0], "soon.test", "{body}");
    assert_eq!(c["days_left"], 4, "{body}");
    assert_eq!(c["expiring"], true, "{body}");
}
