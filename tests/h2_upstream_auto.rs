//! `protocol = "auto"` on a TLS pool, end to end: two tether backends over TLS, one that
//! offers `h2` by ALPN (`http2 = true`) and one that speaks HTTP/1.1 only, each behind a
//! front tether pool that says `auto`. HTTP/1.1 and HTTP/2 clients get the same bytes
//! from both; each backend's access log (format "tether", which names the ALPN) shows what
//! the front spoke to it: HTTP/2 to the first (its first request, sent on the HTTP/1.1
//! path's connection before the server's choice was known, moved to HTTP/2 without a
//! byte sent), HTTP/1.1 to the second; the front logs each server's choice once.

mod common;
mod tls_support;

use common::*;

/// A tether serving `www/` over TLS on `port`, HTTP/2 offered or not, its access log at
/// `access.log` in the "tether" format.
fn backend(
    dir: &TempDir,
    port: u16,
    cert: &std::path::Path,
    key: &std::path::Path,
    h2: bool,
) -> Proc {
    let config = format!(
        "[[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = {h2}\n\
         tls = {{ certificates = [{{ cert = \"{}\", key = \"{}\" }}] }}\n\
         access_log = {{ path = \"{}\", format = \"tether\" }}\n\n\
         [[server.route]]\npath = \"/\"\nroot = \"{}\"\n",
        cert.display(),
        key.display(),
        dir.path().join("access.log").display(),
        dir.path().join("www").display()
    );
    tether(dir, &config, &[port])
}

/// The backend's access log lines once it has at least `n` (bounded wait).
fn access_lines(dir: &TempDir, n: usize) -> Vec<String> {
    let path = dir.path().join("access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n || std::time::Instant::now() > deadline {
            return lines;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

#[test]
fn auto_pools_speak_what_each_server_chose_by_alpn() {
    let (d2, d1, df) = (
        TempDir::new("auto-h2-back"),
        TempDir::new("auto-h1-back"),
        TempDir::new("auto-front"),
    );
    let ca = tls_support::Ca::new(df.path(), "ca");
    let (cert, key) = ca.leaf("back", &["back.test"], tls_support::Key::P256, 5);
    let body: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 253) as u8).collect();
    d2.write("www/big.bin", &body);
    d1.write("www/big.bin", &body);
    let (b2, b1, f2, f1) = (free_port(), free_port(), free_port(), free_port());
    let _b2 = backend(&d2, b2, &cert, &key, true);
    let _b1 = backend(&d1, b1, &cert, &key, false);
    let ca_path = ca.cert.display().to_string();
    let front_config = format!(
        r#"
[[upstream]]
name = "modern"
servers = ["127.0.0.1:{b2}"]
protocol = "auto"
tls = {{ ca = "{ca_path}", sni = "back.test" }}

[[upstream]]
name = "old"
servers = ["127.0.0.1:{b1}"]
protocol = "auto"
tls = {{ ca = "{ca_path}", sni = "back.test" }}

[[server]]
listen = ["127.0.0.1:{f2}"]
http2 = true

[[server.route]]
path = "/"
proxy = "modern"

[[server]]
listen = ["127.0.0.1:{f1}"]
http2 = true

[[server.route]]
path = "/"
proxy = "old"
"#
    );
    let t = tether(&df, &front_config, &[f2, f1]);
    let upload = df.write("upload.bin", &body[..100_000]);
    let upload_arg = format!("@{}", upload.display());
    for front in [f2, f1] {
        let url = format!("http://127.0.0.1:{front}/big.bin");
        // The first request carries a body: on the HTTP/2 server it is the one moved
        // over once the server chose h2. The file route refuses a POST; the same
        // connection's next request is served.
        let out = curl(&[
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} ",
            "--data-binary",
            &upload_arg,
            &url,
            "--next",
            "--http1.1",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{num_connects}",
            &url,
        ]);
        let codes = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            codes.starts_with("405 200 0"),
            "{front}: {codes}\n{}",
            t.log_text()
        );
        for proto in [
            "--http1.1",
            "--http2-prior-knowledge",
            "--http1.1",
            "--http2-prior-knowledge",
        ] {
            let out = curl(&[proto, "-o", "-", &url]);
            assert!(
                out.status.success() && out.stdout == body,
                "{front} {proto}: {} bytes, {}\n{}",
                out.stdout.len(),
                String::from_utf8_lossy(&out.stderr),
                t.log_text()
            );
        }
    }
    assert!(
        t.wait_log(&format!("127.0.0.1:{b2} chose h2 by ALPN")),
        "{}",
        t.log_text()
    );
    assert!(
        t.wait_log(&format!("127.0.0.1:{b1} chose http/1.1 by ALPN")),
        "{}",
        t.log_text()
    );
    // Six requests each; each backend saw every one in the protocol it chose.
    for (dir, alpn, other) in [
        (&d2, "alpn=h2", "alpn=http/1.1"),
        (&d1, "alpn=http/1.1", "alpn=h2"),
    ] {
        let lines = access_lines(dir, 6);
        assert_eq!(lines.len(), 6, "{alpn}: {lines:#?}");
        assert!(
            lines.iter().all(|l| l.contains(alpn) && !l.contains(other)),
            "{alpn}: {lines:#?}"
        );
    }
    // The h2 server's five GETs went over the front's shared HTTP/2 connections, not one
    // connection per request: the choice is not asked again.
    let probes = t
        .log_text()
        .matches(&format!("127.0.0.1:{b2} chose"))
        .count();
    assert_eq!(probes, 1, "{}", t.log_text());
}
