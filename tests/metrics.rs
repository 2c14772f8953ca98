//! Metrics and limits end to end: eXpServer's metrics JSON at `/api` and Prometheus text at
//! `/metrics` on a metrics listener (TOML and xps_config.json), a `status_page` route, the
//! connection limit, and the per-route body limit (`413`).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// GET `url` → parsed JSON.
fn json(url: &str) -> serde_json::Value {
    let (code, body) = get(url);
    assert_eq!(code, 200, "{url}: {}", String::from_utf8_lossy(&body));
    serde_json::from_slice(&body).expect("metrics JSON")
}

fn int(v: &serde_json::Value, key: &str) -> u64 {
    v.get(key)
        .and_then(|x| x.as_u64())
        .unwrap_or_else(|| panic!("{key} is not an integer in {v}"))
}

/// Every field eXpServer's dashboard reads, with integers where it checks `isInteger`.
const INT_FIELDS: &[&str] = &[
    "pid",
    "workers",
    "uptime_msec",
    "sys_ram_usage_bytes",
    "sys_ram_total_bytes",
    "workers_ram_usage_bytes",
    "conn_current",
    "conn_accepted",
    "conn_error",
    "conn_timeout",
    "conn_accepted_error",
    "req_current",
    "req_total",
    "req_file_serve",
    "req_reverse_proxy",
    "req_redirect",
    "res_avg_res_time_msec",
    "res_peak_res_time_msec",
    "res_code_2xx",
    "res_code_3xx",
    "res_code_4xx",
    "res_code_5xx",
    "traffic_total_send_bytes",
    "traffic_total_recv_bytes",
];

#[test]
fn metrics_listener_counts_requests_by_kind_and_status() {
    let dir = TempDir::new("metrics-toml");
    dir.write("www/a.txt", b"file a\n");
    let up = free_port();
    let _upstream = python_upstream(up);
    let (port, mport) = (free_port(), free_port());
    let cfg = format!(
        r#"server_name = "tether-metrics"
workers = 2

[metrics]
listen = "127.0.0.1:{mport}"

[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]

[[server.route]]
path = "/whoami"
proxy = "app"

[[server.route]]
path = "/"
root = "{}"

[[server.route]]
path = "/old"
redirect = "/a.txt"
status = 301

[[server.route]]
path = "/status"
status_page = "prometheus"
"#,
        dir.path().join("www").display()
    );
    let t = tether(&dir, &cfg, &[port, mport]);
    let base = format!("http://127.0.0.1:{port}");

    let before = json(&format!("http://127.0.0.1:{mport}/api"));
    for key in INT_FIELDS {
        int(&before, key);
    }
    assert_eq!(before["server_name"], "tether-metrics");
    assert_eq!(int(&before, "pid"), t.pid() as u64);
    assert_eq!(int(&before, "workers"), 2);
    assert_eq!(
        before["workers_cpu_usage_percent"].as_array().map(Vec::len),
        Some(2)
    );
    assert!(before["sys_cpu_usage_percent"].is_number());
    assert!(int(&before, "sys_ram_total_bytes") > 0);

    for _ in 0..3 {
        assert_eq!(get(&format!("{base}/whoami")).0, 200);
    }
    assert_eq!(get(&format!("{base}/a.txt")).0, 200);
    assert_eq!(get(&format!("{base}/missing.txt")).0, 404);
    assert_eq!(get(&format!("{base}/old")).0, 301);
    let bad = raw(port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert!(
        bad.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&bad)
    );

    // The counters are read when the requests are over; bounded wait for the last one (the
    // scrape itself is the one request in flight, and counts).
    let mut after = serde_json::Value::Null;
    let settled = eventually(Duration::from_secs(5), || {
        after = json(&format!("http://127.0.0.1:{mport}/api"));
        int(&after, "req_current") == 1 && int(&after, "req_total") >= int(&before, "req_total") + 8
    });
    assert!(settled, "requests not counted: {after}");
    let d = |k: &str| int(&after, k) - int(&before, k);
    assert_eq!(d("req_reverse_proxy"), 3);
    assert_eq!(d("req_file_serve"), 2);
    assert_eq!(d("req_redirect"), 1);
    assert!(d("res_code_2xx") >= 5, "{after}");
    assert_eq!(d("res_code_3xx"), 1);
    assert!(d("res_code_4xx") >= 2, "{after}");
    assert!(
        d("conn_error") >= 1,
        "the bad request counts as an error: {after}"
    );
    assert!(d("conn_accepted") >= 7, "{after}");
    assert!(d("traffic_total_send_bytes") > 0 && d("traffic_total_recv_bytes") > 0);

    // The JSON is served with CORS for the dashboard (another origin fetches it).
    let head = curl(&[
        "-s",
        "-D",
        "-",
        "-o",
        "/dev/null",
        &format!("http://127.0.0.1:{mport}/api"),
    ]);
    let head = String::from_utf8_lossy(&head.stdout).into_owned();
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("*"),
        "{head}"
    );
    assert_eq!(header(&head, "content-type"), Some("application/json"));

    // Prometheus text on the metrics listener and on the `status_page` route.
    for url in [
        format!("http://127.0.0.1:{mport}/metrics"),
        format!("{base}/status"),
    ] {
        let (code, body) = get(&url);
        let text = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(code, 200, "{url}");
        assert!(
            text.contains("# TYPE tether_requests_total counter"),
            "{text}"
        );
        let proxied = text
            .lines()
            .find_map(|l| l.strip_prefix("tether_requests_total{route=\"proxy\"} "))
            .and_then(|v| v.parse::<u64>().ok());
        assert!(proxied.is_some_and(|n| n >= 3), "{text}");
    }
    // A metrics listener has only its two paths.
    assert_eq!(get(&format!("http://127.0.0.1:{mport}/other")).0, 404);
}

#[test]
fn xps_config_metrics_key_opens_the_dashboard_endpoint() {
    let dir = TempDir::new("metrics-xps");
    dir.write("www/index.html", b"hi\n");
    let (port, mport) = (free_port(), free_port());
    let cfg = format!(
        r#"{{
  "server_name": "xps-metrics",
  "workers": 1,
  "metrics": {{"host": "127.0.0.1", "port": {mport}}},
  "servers": [{{
    "listeners": [{{"host": "127.0.0.1", "port": {port}}}],
    "routes": [{{"req_path": "/", "type": "file_serve", "dir_path": "{}"}}]
  }}]
}}"#,
        dir.path().join("www").display()
    );
    let path = dir.write("xps_config.json", cfg.as_bytes());
    let _t = tether_args(dir.path(), &[path.to_str().expect("utf-8")], &[port, mport]);
    assert_eq!(get(&format!("http://127.0.0.1:{port}/")).0, 200);
    let mut m = serde_json::Value::Null;
    assert!(eventually(Duration::from_secs(5), || {
        m = json(&format!("http://127.0.0.1:{mport}/api"));
        int(&m, "req_file_serve") >= 1
    }));
    assert_eq!(m["server_name"], "xps-metrics");
    assert_eq!(int(&m, "workers"), 1);
}

/// Read a response head (up to the blank line) from `s`, waiting at most `wait`.
fn read_head(s: &mut TcpStream, wait: Duration) -> String {
    s.set_read_timeout(Some(wait)).expect("timeout");
    let mut got = Vec::new();
    let mut b = [0u8; 1024];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match s.read(&mut b) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn connection_limit_sheds_the_longest_idle_keepalive_for_a_new_client() {
    // At the limit a new client takes the place of the connection idle longest between
    // requests (before: it waited in the backlog until one closed).
    let dir = TempDir::new("metrics-maxconn");
    dir.write("www/a.txt", b"a\n");
    let port = free_port();
    let cfg = format!(
        "workers = 1\nmax_connections = 2\n{}",
        files_config(port, &dir.path().join("www"))
    );
    let _t = tether(&dir, &cfg, &[port]);
    let request = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    // Two keep-alive clients take both places (each is answered, then stays open).
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(addr(port)).expect("connect");
        s.write_all(request).expect("write");
        let head = read_head(&mut s, Duration::from_secs(5));
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        held.push(s);
    }
    // A third is served at once...
    let mut third = TcpStream::connect(addr(port)).expect("connect");
    third.write_all(request).expect("write");
    let head = read_head(&mut third, Duration::from_secs(5));
    assert!(
        head.starts_with("HTTP/1.1 200"),
        "the new client is served: {head:?}"
    );
    // ...and the first, idle longest, was closed to make room.
    let mut oldest = held.remove(0);
    oldest
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    let n = std::io::Read::read(&mut oldest, &mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the longest idle connection is closed");
}

#[test]
fn body_over_the_route_limit_gets_413_and_is_not_forwarded() {
    let dir = TempDir::new("metrics-413");
    let up = free_port();
    let _upstream = python_upstream(up);
    let port = free_port();
    let cfg = format!(
        r#"[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]

[[server.route]]
path = "/"
proxy = "app"
max_body_size = 10
"#
    );
    let _t = tether(&dir, &cfg, &[port]);
    let url = format!("http://127.0.0.1:{port}/echo");
    // At the limit: forwarded and echoed.
    let ok = curl(&[
        "-s",
        "-w",
        " %{http_code}",
        "--data-binary",
        "0123456789",
        &url,
    ]);
    assert_eq!(String::from_utf8_lossy(&ok.stdout), "0123456789 200");
    // Over it, by Content-Length: refused before anything is forwarded.
    let over = raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\n0123456789A",
    );
    let over = String::from_utf8_lossy(&over).into_owned();
    assert!(over.starts_with("HTTP/1.1 413"), "{over}");
    assert!(
        !over.contains("0123456789A"),
        "the body reached the upstream: {over}"
    );
    // Over it, chunked: refused when the running total passes the limit.
    let chunked = raw(
        port,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\n012345\r\n6\r\n6789AB\r\n0\r\n\r\n",
    );
    let chunked = String::from_utf8_lossy(&chunked).into_owned();
    assert!(chunked.starts_with("HTTP/1.1 413"), "{chunked}");
}
