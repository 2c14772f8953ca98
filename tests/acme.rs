//! ACME end to end against a real CA: pebble (`acme_support`), validating over loopback
//! against the real tether binary. Certificates by HTTP-01 (with the plain listener
//! redirecting to HTTPS) and by TLS-ALPN-01, then verified by curl against pebble's root;
//! the stored account and certificate reused after a restart; renewal under a request
//! loop with no failed request; a CA outage during renewal; two instances sharing the
//! storage ordering once; an unreachable directory and a refused account leaving the other
//! listeners serving; `tether check` errors with `path:line:col`.

mod acme_support;
mod common;
mod tls_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use acme_support::{acme_table, get_verified, serial, Options, Pebble};
use common::*;

/// A TLS server for `name` with ACME certificates serving `www`, and optionally a plain
/// listener redirecting to it.
fn site(name: &str, tls: u16, plain: Option<u16>, www: &Path) -> String {
    let mut s = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{tls}\"]\nhostnames = [\"{name}\"]\n\
         tls = {{ certificates = \"acme\" }}\n[[server.route]]\npath = \"/\"\nroot = \"{}\"\n",
        www.display()
    );
    if let Some(p) = plain {
        s += &format!("\n[[server]]\nlisten = [\"127.0.0.1:{p}\"]\nredirect_http = {tls}\n");
    }
    s
}

fn www(dir: &TempDir) -> std::path::PathBuf {
    dir.write("www/index.html", b"hello over acme\n");
    dir.path().join("www")
}

/// Wait until `name` on `port` is served with a certificate `root` verifies.
fn wait_verified(name: &str, port: u16, root: &Path, limit: Duration, t: &Proc) {
    let mut last = (0, String::new());
    let ok = eventually(limit, || {
        last = get_verified(name, port, root);
        last.0 == 0
    });
    assert!(
        ok,
        "no verified certificate for {name} on {port}: {last:?}\nlog:\n{}",
        t.log_text()
    );
    assert!(last.1.contains("hello over acme"), "{last:?}");
}

fn http_code(url: &str) -> String {
    let out = curl(&[
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        url,
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn http01_certificate_obtained_served_and_reused_after_a_restart() {
    let dir = TempDir::new("acme-http01");
    let (tls, plain, metrics) = (free_port(), free_port(), free_port());
    let pebble = Pebble::start(
        dir.path(),
        Options {
            http_port: plain,
            tls_port: tls,
            validity: None,
            eab_required: false,
        },
    );
    let storage = dir.path().join("acme");
    let config = acme_table(&pebble, &storage, "challenge = \"http-01\"")
        + &site("a.tether.test", tls, Some(plain), &www(&dir))
        + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n");
    let started = Instant::now();
    let t = tether(&dir, &config, &[tls, plain, metrics]);
    let root = pebble.root();
    wait_verified("a.tether.test", tls, &root, Duration::from_secs(30), &t);
    eprintln!("first certificate after {:?}", started.elapsed());
    let log = t.log_text();
    assert!(log.contains("answered the HTTP-01 validation"), "{log}");
    // The plain listener still redirects everything else (unknown tokens too).
    let base = format!("http://127.0.0.1:{plain}");
    assert_eq!(http_code(&format!("{base}/x")), "308");
    assert_eq!(
        http_code(&format!("{base}/.well-known/acme-challenge/unknown")),
        "308"
    );
    let m = curl(&["-s", &format!("http://127.0.0.1:{metrics}/metrics")]);
    let m = String::from_utf8_lossy(&m.stdout);
    let expiry = m
        .lines()
        .find(|l| l.starts_with("tether_acme_certificate_expiry_seconds{name=\"a.tether.test\"}"))
        .unwrap_or_else(|| panic!("no expiry in /metrics:\n{m}"));
    assert!(!expiry.ends_with(" 0"), "{expiry}");
    assert!(
        m.contains("tether_acme_last_attempt_failed{name=\"a.tether.test\"} 0"),
        "{m}"
    );
    assert_eq!(pebble.orders(), 1);
    // Restarted: the stored account and certificate are used; nothing is ordered.
    drop(t);
    let t = tether(&dir, &config, &[tls, plain]);
    let (code, body) = get_verified("a.tether.test", tls, &root);
    assert_eq!(code, 0, "{body}\n{}", t.log_text());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(pebble.orders(), 1, "{}", t.log_text());
    assert!(!t.log_text().contains("created at"), "{}", t.log_text());
}

#[test]
fn tls_alpn01_certificate_without_a_plain_listener() {
    let dir = TempDir::new("acme-alpn");
    let tls = free_port();
    let pebble = Pebble::start(
        dir.path(),
        Options {
            http_port: free_port(),
            tls_port: tls,
            validity: None,
            eab_required: false,
        },
    );
    let storage = dir.path().join("acme");
    // No `challenge`: with no plain listener on port 80, TLS-ALPN-01 is the default.
    let config = acme_table(&pebble, &storage, "") + &site("b.tether.test", tls, None, &www(&dir));
    let t = tether(&dir, &config, &[tls]);
    let root = pebble.root();
    wait_verified("b.tether.test", tls, &root, Duration::from_secs(30), &t);
    assert!(t.wait_log("(tls-alpn-01)"), "{}", t.log_text());
}

/// Run HTTPS requests until `stop`; count successes and failures.
fn request_loop(
    name: &'static str,
    port: u16,
    root: std::path::PathBuf,
    stop: Arc<AtomicBool>,
) -> (std::thread::JoinHandle<()>, Arc<AtomicU64>, Arc<AtomicU64>) {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (o, f) = (ok.clone(), failed.clone());
    let h = std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let (code, text) = get_verified(name, port, &root);
            if code == 0 && text.contains("hello over acme") {
                o.fetch_add(1, Ordering::SeqCst);
            } else {
                eprintln!("request failed: {code} {text}");
                f.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    (h, ok, failed)
}

#[test]
fn renewal_swaps_the_certificate_under_a_request_loop_with_no_failure() {
    let dir = TempDir::new("acme-renew");
    let (tls, plain) = (free_port(), free_port());
    // 15 s certificates: renewal is due 10 s after issuance.
    let pebble = Pebble::start(
        dir.path(),
        Options {
            http_port: plain,
            tls_port: tls,
            validity: Some(15),
            eab_required: false,
        },
    );
    let storage = dir.path().join("acme");
    let config = acme_table(&pebble, &storage, "challenge = \"http-01\"")
        + &site("c.tether.test", tls, Some(plain), &www(&dir));
    let t = tether(&dir, &config, &[tls, plain]);
    let root = pebble.root();
    wait_verified("c.tether.test", tls, &root, Duration::from_secs(30), &t);
    let first = serial("c.tether.test", tls).expect("serial");
    let stop = Arc::new(AtomicBool::new(false));
    let (h, ok, failed) = request_loop("c.tether.test", tls, root, stop.clone());
    let renewed = eventually(Duration::from_secs(30), || {
        serial("c.tether.test", tls).is_some_and(|s| s != first)
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    h.join().expect("loop");
    assert!(renewed, "not renewed; log:\n{}", t.log_text());
    let (ok, failed) = (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst));
    eprintln!("{ok} requests, {failed} failed");
    assert_eq!(failed, 0);
    assert!(ok >= 20, "only {ok} requests");
    assert!(pebble.orders() >= 2);
}

#[test]
fn ca_outage_during_renewal_keeps_the_old_certificate_and_retries() {
    let dir = TempDir::new("acme-outage");
    let (tls, plain, metrics) = (free_port(), free_port(), free_port());
    // 21 s certificates: renewal is due 14 s after issuance.
    let mut pebble = Pebble::start(
        dir.path(),
        Options {
            http_port: plain,
            tls_port: tls,
            validity: Some(21),
            eab_required: false,
        },
    );
    let storage = dir.path().join("acme");
    let config = acme_table(&pebble, &storage, "challenge = \"http-01\"")
        + &site("d.tether.test", tls, Some(plain), &www(&dir))
        + &format!("\n[metrics]\nlisten = \"127.0.0.1:{metrics}\"\n");
    let t = tether(&dir, &config, &[tls, plain, metrics]);
    let root = pebble.root();
    wait_verified("d.tether.test", tls, &root, Duration::from_secs(30), &t);
    let first = serial("d.tether.test", tls).expect("serial");
    pebble.stop();
    let failed = eventually(Duration::from_secs(30), || {
        t.log_text().contains("acme: d.tether.test: ")
    });
    assert!(failed, "no renewal failure logged:\n{}", t.log_text());
    assert!(t.wait_log("stays"), "{}", t.log_text());
    // The old certificate is still served, and verified.
    assert_eq!(
        serial("d.tether.test", tls).as_deref(),
        Some(first.as_str())
    );
    let (code, text) = get_verified("d.tether.test", tls, &root);
    assert_eq!(code, 0, "{text}");
    let m = curl(&["-s", &format!("http://127.0.0.1:{metrics}/metrics")]);
    let m = String::from_utf8_lossy(&m.stdout).into_owned();
    assert!(
        m.contains("tether_acme_last_attempt_failed{name=\"d.tether.test\"} 1"),
        "{m}"
    );
    // pebble is back (a new root, and it forgot the account): the retry succeeds.
    pebble.resume();
    let new_root = pebble.root();
    wait_verified("d.tether.test", tls, &new_root, Duration::from_secs(30), &t);
    assert_ne!(
        serial("d.tether.test", tls).as_deref(),
        Some(first.as_str())
    );
}

#[test]
fn two_instances_sharing_the_storage_order_once() {
    let dir = TempDir::new("acme-two");
    let (tls_a, plain_a, tls_b, plain_b) = (free_port(), free_port(), free_port(), free_port());
    // pebble validates on instance A's ports only: if B holds the lease, A answers the
    // HTTP-01 challenge from the shared storage.
    let pebble = Pebble::start(
        dir.path(),
        Options {
            http_port: plain_a,
            tls_port: tls_a,
            validity: None,
            eab_required: false,
        },
    );
    let storage = dir.path().join("shared-acme");
    let w = www(&dir);
    let dir_a = TempDir::new("acme-two-a");
    let dir_b = TempDir::new("acme-two-b");
    let conf = |tls, plain| {
        acme_table(&pebble, &storage, "challenge = \"http-01\"")
            + &site("e.tether.test", tls, Some(plain), &w)
    };
    let a = tether(&dir_a, &conf(tls_a, plain_a), &[tls_a, plain_a]);
    let b = tether(&dir_b, &conf(tls_b, plain_b), &[tls_b, plain_b]);
    let root = pebble.root();
    wait_verified("e.tether.test", tls_a, &root, Duration::from_secs(30), &a);
    wait_verified("e.tether.test", tls_b, &root, Duration::from_secs(30), &b);
    let (la, lb) = (a.log_text(), b.log_text());
    let ordering =
        la.matches("ordering a certificate").count() + lb.matches("ordering a certificate").count();
    assert_eq!(ordering, 1, "A:\n{la}\nB:\n{lb}");
    assert_eq!(pebble.orders(), 1);
    assert_eq!(
        la.matches("created at").count() + lb.matches("created at").count(),
        1,
        "one account"
    );
    assert_eq!(
        serial("e.tether.test", tls_a),
        serial("e.tether.test", tls_b)
    );
}

#[test]
fn unreachable_directory_is_logged_and_other_listeners_serve() {
    let dir = TempDir::new("acme-baddir");
    let (tls, files, closed) = (free_port(), free_port(), free_port());
    let config = format!(
        "[acme]\ndirectory = \"https://127.0.0.1:{closed}/dir\"\nemail = \"ops@example.org\"\n\
         agree_tos = true\nstorage = \"acme\"\nchallenge = \"http-01\"\nretry_initial_ms = 500\n\n{}\n{}",
        site("f.tether.test", tls, None, &www(&dir)),
        files_config(files, &dir.path().join("www"))
    );
    let t = tether(&dir, &config, &[tls, files]);
    assert!(
        t.wait_log_within("acme: f.tether.test: ", Duration::from_secs(15)),
        "{}",
        t.log_text()
    );
    assert!(t.wait_log("Connect"), "{}", t.log_text());
    assert_eq!(
        http_code(&format!("http://127.0.0.1:{files}/index.html")),
        "200"
    );
    // The name without a certificate: a TLS alert at once, not a hang.
    let began = Instant::now();
    let any_ca = tls_support::Ca::new(dir.path(), "any");
    let (code, text) = get_verified("f.tether.test", tls, &any_ca.cert);
    assert_eq!(code, 35, "{text}");
    assert!(text.contains("alert"), "{text}");
    assert!(began.elapsed() < Duration::from_secs(3));
}

#[test]
fn refused_account_is_logged_and_other_listeners_serve() {
    let dir = TempDir::new("acme-refused");
    let (tls, files) = (free_port(), free_port());
    // pebble requires external account binding; the config gives none.
    let pebble = Pebble::start(
        dir.path(),
        Options {
            http_port: free_port(),
            tls_port: tls,
            validity: None,
            eab_required: true,
        },
    );
    let config = acme_table(&pebble, &dir.path().join("acme"), "")
        + &site("g.tether.test", tls, None, &www(&dir))
        + "\n"
        + &files_config(files, &dir.path().join("www"));
    let t = tether(&dir, &config, &[tls, files]);
    assert!(
        t.wait_log_within(
            "acme: g.tether.test: creating an account",
            Duration::from_secs(15)
        ),
        "{}",
        t.log_text()
    );
    assert!(t.wait_log("externalAccountRequired"), "{}", t.log_text());
    assert_eq!(
        http_code(&format!("http://127.0.0.1:{files}/index.html")),
        "200"
    );
    assert_eq!(pebble.orders(), 0);
}

#[test]
fn check_names_the_line_of_acme_mistakes() {
    let dir = TempDir::new("acme-check");
    let w = www(&dir);
    let cases = [
        (
            format!(
                "[acme]\nemail = \"a@b.org\"\n\n{}",
                site("h.tether.test", 8443, None, &w)
            ),
            "tether.toml:1:1: [acme]: `agree_tos = true` is required",
        ),
        (
            site("h.tether.test", 8443, None, &w),
            "tether.toml:4:7: ACME certificates need an [acme] table",
        ),
        (
            format!(
                "[acme]\nagree_tos = true\nchallenge = \"http-01\"\n\n{}",
                site("h.tether.test", 8443, None, &w)
            ),
            "tether.toml:3:13: [acme]: HTTP-01 needs a plain http listener",
        ),
        (
            format!(
                "[acme]\nagree_tos = true\n\n{}",
                site("*.tether.test", 8443, None, &w)
            ),
            "a wildcard needs the DNS-01 challenge",
        ),
    ];
    for (config, want) in cases {
        let path = dir.write("tether.toml", config.as_bytes());
        let out = std::process::Command::new(TETHER)
            .arg("check")
            .arg(&path)
            .current_dir(dir.path())
            .output()
            .expect("tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}");
        assert!(err.contains(want), "want {want:?} in {err}");
    }
}
