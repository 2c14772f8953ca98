//! The proxy's HTML status page (`status_page = "html"`, issue 12) end to end: the real
//! `tether` binary in front of two `tests/support_app.py` instances with cookie affinity,
//! active health checks and a draining server; one affinity miss, one hit and one re-pin
//! made with curl; then the page read by curl and by headless Chromium (`--dump-dom`
//! content, and a `--screenshot` that must be a PNG with more than a blank background).

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

/// The page's row of `server` (from `<tr><td>server` to `</tr>`).
fn row<'a>(page: &'a str, server: &str) -> &'a str {
    let start = page
        .find(&format!("<tr><td>{server}"))
        .unwrap_or_else(|| panic!("no row for {server}:\n{page}"));
    let rest = &page[start..];
    &rest[..rest.find("</tr>").unwrap_or(rest.len())]
}

/// The number of distinct pixel bytes in a PNG (its IDAT data inflated), read by python3's
/// zlib: a blank page has one or two, a page with text and colours many.
fn png_distinct_bytes(path: &std::path::Path) -> usize {
    let script = r#"
import struct, sys, zlib
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat = 8, b''
while pos < len(data):
    n, kind = struct.unpack('>I4s', data[pos:pos + 8])
    if kind == b'IDAT':
        idat += data[pos + 8:pos + 8 + n]
    pos += 12 + n
print(len(set(zlib.decompress(idat))))
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(path)
        .output()
        .expect("python3");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn html_status_page_shows_listeners_pools_and_affinity_in_chromium() {
    let dir = TempDir::new("status-page");
    let (pa, pb, nobody, port) = (free_port(), free_port(), free_port(), free_port());
    let _a = python_app(pa, "alpha");
    let _b = python_app(pb, "beta");
    let cfg = format!(
        r#"server_name = "tether-status-test"

[[upstream]]
name = "app"
servers = ["127.0.0.1:{pa}", "127.0.0.1:{pb}", {{ id = "spare", addr = "127.0.0.1:{nobody}", drain = true }}]
balance = "cookie"
keys = ["a passphrase only for this status page test"]

[upstream.health]
path = "/health"
interval_ms = 100
timeout_ms = 500
rise = 1
fall = 1

[[server]]
listen = ["127.0.0.1:{port}"]

[[server.route]]
path = "/status"
status_page = "html"

[[server.route]]
path = "/"
proxy = "app"
"#
    );
    let _t = tether(&dir, &cfg, &[port]);
    let base = format!("http://127.0.0.1:{port}");
    let status = format!("{base}/status");
    let page = || String::from_utf8_lossy(&get(&status).1).into_owned();

    // Both apps up by their checks (the spare has nobody listening: down).
    let mut last = String::new();
    assert!(
        eventually(Duration::from_secs(10), || {
            last = page();
            row(&last, &format!("127.0.0.1:{pa}")).contains("'up'>up<")
                && row(&last, &format!("127.0.0.1:{pb}")).contains("'up'>up<")
                && row(&last, "spare").contains("'down'>down<")
        }),
        "{last}"
    );

    // A miss (no cookie: balanced, pinned by the cookie), a hit, then a re-pin once the
    // pinned server's health check fails.
    let jar = dir.path().join("cookies");
    let jar = jar.to_str().expect("utf-8");
    let first = curl(&["-c", jar, &format!("{base}/whoami")]);
    let pinned = String::from_utf8_lossy(&first.stdout).into_owned();
    let (pinned_port, other) = match pinned.as_str() {
        "alpha" => (pa, "beta"),
        "beta" => (pb, "alpha"),
        x => panic!("first request answered {x:?}"),
    };
    let again = curl(&["-b", jar, &format!("{base}/whoami")]);
    assert_eq!(String::from_utf8_lossy(&again.stdout), pinned);
    let down = curl(&[&format!("http://127.0.0.1:{pinned_port}/admin/down")]);
    assert!(down.status.success());
    let pinned_id = format!("127.0.0.1:{pinned_port}");
    assert!(
        eventually(Duration::from_secs(10), || {
            last = page();
            row(&last, &pinned_id).contains("'down'>down<")
        }),
        "{last}"
    );
    let moved = curl(&["-b", jar, &format!("{base}/whoami")]);
    assert_eq!(String::from_utf8_lossy(&moved.stdout), other);

    // The page as served.
    let p = page();
    assert!(
        p.contains("<meta http-equiv='refresh' content='5'/>"),
        "{p}"
    );
    assert!(
        p.contains("<title>tether-status-test status</title>"),
        "{p}"
    );
    assert!(
        p.contains(&format!("<td>127.0.0.1:{port}</td><td>no</td><td>http")),
        "{p}"
    );
    assert!(p.contains("* /status → status (html)"), "{p}");
    assert!(
        p.contains(
            "balance round_robin, affinity cookie: <span class='hits'>1 hits</span>, \
             <span class='misses'>1 misses</span>, <span class='repins'>1 re-pins</span>, \
             0 refused."
        ),
        "{p}"
    );
    assert!(
        row(&p, "spare").contains("<td class='draining'>draining</td>"),
        "{p}"
    );
    let other_port = if pinned_port == pa { pb } else { pa };
    let other_row = row(&p, &format!("127.0.0.1:{other_port}"));
    assert!(
        other_row.contains("'up'>up<") && other_row.contains("<td>no</td>"),
        "{other_row}"
    );
    // Weight 1 everywhere; 3 proxied requests answered 200 (the page's own request is the
    // 4th, still in flight while it renders; the earlier page loads are 2xx too).
    assert!(other_row.contains("<td class='n'>1</td>"), "{other_row}");
    assert!(p.contains("<th>2xx</th>"), "{p}");

    let Some(chromium) = Chromium::find(dir.path()) else {
        return;
    };
    let dom = chromium.dump_dom(&status);
    for want in [
        "<h1>tether-status-test status</h1>",
        "<h2>Listeners</h2>",
        "<h2>Upstream pools</h2>",
        "<h3>app</h3>",
        "<span class=\"hits\">1 hits</span>",
        "<span class=\"repins\">1 re-pins</span>",
        "<td class=\"draining\">draining</td>",
        &format!("<td>127.0.0.1:{port}</td>"),
    ] {
        assert!(dom.contains(want), "{want} not in the DOM:\n{dom}");
    }
    assert_eq!(dom.matches("<table class=\"servers\"").count(), 1, "{dom}");

    let shot = dir.path().join("status.png");
    chromium.screenshot(&status, &shot);
    let distinct = png_distinct_bytes(&shot);
    assert!(
        distinct > 16,
        "a blank screenshot: {distinct} distinct bytes"
    );
}
