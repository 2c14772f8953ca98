//! Error pages end to end: the real binary between curl (HTTP/1.1) or Python's `h2`
//! (HTTP/2, `tests/support_h2_get.py`) and a backend that answers `500` under `/fail` (or
//! none at all: a port nobody listens on). tether's own `502`, the backend's `500` with
//! `intercept_errors`, a files route's `404`, and gRPC requests, which never get a page.

mod common;

use std::process::Command;

use common::*;

/// A backend: `/fail...` is `500` with a body of its own, anything else `200 ok`.
fn backend(port: u16) -> Proc {
    let script = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        fail = self.path.startswith("/fail") or "/fail" in self.path
        body = b"backend-500 body" if fail else b"ok"
        self.send_response(500 if fail else 200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    python_script(script, &[&port.to_string()], port)
}

fn config(port: u16, up: u16, down: u16, dir: &std::path::Path) -> String {
    let dir = dir.display();
    format!(
        r#"[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]
fail_open = true                   # a backend marked down is still asked: stable statuses

[[upstream]]
name = "down"
servers = ["127.0.0.1:{down}"]
retries = 0
fail_open = true

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true
error_page = [{{ status = 502, file = "{dir}/502.html" }}, {{ status = "4xx", body = "server 4xx page" }}]

[[server.route]]
path = "/down"
proxy = "down"

[[server.route]]
path = "/plain"
proxy = "app"
strip_prefix = true

[[server.route]]
path = "/caught"
proxy = "app"
strip_prefix = true
intercept_errors = true
error_page = [{{ status = "5xx", body = "<h1>caught 5xx</h1>" }}]

[[server.route]]
path = "/files"
alias = "{dir}/www"
error_page = [{{ status = 404, body = "no such file here", content_type = "text/plain" }}]
"#
    )
}

const PAGE_502: &str = "<html><body><h1>We are down</h1></body></html>\n";

fn site(tag: &str) -> (TempDir, u16, Proc, Proc) {
    let dir = TempDir::new(tag);
    dir.write("502.html", PAGE_502.as_bytes());
    dir.write("www/here.txt", b"here\n");
    let (port, up, down) = (free_port(), free_port(), free_port());
    let b = backend(up);
    let t = tether(&dir, &config(port, up, down, dir.path()), &[port]);
    (dir, port, t, b)
}

#[test]
fn tethers_own_502_gets_the_page_over_http1_and_http2() {
    let (_dir, port, _t, _b) = site("error-pages-502");
    let (status, head, body) = curl_get(port, "/down/x", &[]);
    assert_eq!(status, 502, "{head}");
    assert_eq!(body, PAGE_502, "{head}");
    assert!(
        header(&head, "Content-Type").is_some_and(|t| t.starts_with("text/html")),
        "{head}"
    );
    // The connection is kept: a second request on it gets the page again.
    let url = format!("http://127.0.0.1:{port}/down/y");
    let out = curl(&["-s", &url, &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), PAGE_502.repeat(2));

    let (status, headers, body) = h2_get(port, "/down/x", &[]);
    assert_eq!(status, 502, "{headers:?}");
    assert_eq!(body, PAGE_502);

    // A files route's own 404 page; its other 4xx get the server's `4xx` page.
    let (status, _, body) = curl_get(port, "/files/none", &[]);
    assert_eq!((status, body.as_str()), (404, "no such file here"));
    let (status, _, body) = h2_get(port, "/files/none", &[]);
    assert_eq!((status, body.as_str()), (404, "no such file here"));
    let (status, _, body) = curl_get(port, "/files/here.txt", &[]);
    assert_eq!((status, body.as_str()), (200, "here\n"));
    let url = format!("http://127.0.0.1:{port}/files/here.txt");
    let out = curl(&["-s", "-X", "DELETE", "-w", " %{http_code}", &url]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "server 4xx page 405");
}

#[test]
fn the_backends_500_is_replaced_only_with_intercept_errors() {
    let (_dir, port, _t, _b) = site("error-pages-intercept");
    // Without intercept_errors the backend's own answer passes.
    let (status, head, body) = curl_get(port, "/plain/fail", &[]);
    assert_eq!((status, body.as_str()), (500, "backend-500 body"), "{head}");
    // With it, the route's page (its own, before the server's).
    let (status, head, body) = curl_get(port, "/caught/fail", &[]);
    assert_eq!(
        (status, body.as_str()),
        (500, "<h1>caught 5xx</h1>"),
        "{head}"
    );
    // ... on a connection that carries on (the backend's body was not relayed).
    let url = format!("http://127.0.0.1:{port}/caught/fail");
    let ok = format!("http://127.0.0.1:{port}/caught/fine");
    let out = curl(&["-s", &url, &ok]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "<h1>caught 5xx</h1>ok"
    );
    let (status, _, body) = curl_get(port, "/caught/fine", &[]);
    assert_eq!((status, body.as_str()), (200, "ok"));

    let (status, _, body) = h2_get(port, "/caught/fail", &[]);
    assert_eq!((status, body.as_str()), (500, "<h1>caught 5xx</h1>"));
    let (status, _, body) = h2_get(port, "/plain/fail", &[]);
    assert_eq!((status, body.as_str()), (500, "backend-500 body"));
}

#[test]
fn grpc_requests_never_get_an_html_page() {
    let (_dir, port, _t, _b) = site("error-pages-grpc");
    let grpc = "content-type=application/grpc+proto";
    // tether's own 502: no page, a gRPC answer instead (HTTP 200, trailers-only).
    let (status, headers, body) = h2_get(port, "/down/pkg.Svc/Call", &[grpc]);
    assert_eq!(status, 200, "{headers:?}");
    assert_eq!(body, "", "{headers:?}");
    assert_eq!(
        h2_header(&headers, "content-type"),
        Some("application/grpc"),
        "{headers:?}"
    );
    assert_eq!(
        h2_header(&headers, "grpc-status"),
        Some("14"),
        "{headers:?}"
    );
    // The backend's 500 is not intercepted for gRPC.
    let (status, _, body) = h2_get(port, "/caught/fail", &[grpc]);
    assert_eq!((status, body.as_str()), (500, "backend-500 body"));
    // HTTP/1.1 (which gRPC does not speak): no page either; the HTTP status is kept.
    let (status, head, body) = curl_get(port, "/down/x", &["Content-Type: application/grpc"]);
    assert_eq!(status, 502, "{head}");
    assert_eq!(body, "", "{head}");
    assert!(!head.to_ascii_lowercase().contains("text/html"), "{head}");
    assert_eq!(header(&head, "grpc-status"), Some("14"), "{head}");
}

#[test]
fn a_bad_error_page_is_a_check_error_with_its_position() {
    let dir = TempDir::new("error-pages-check");
    for (page, col, want) in [
        ("{ status = \"5yy\", body = \"x\" }", 26, "is not a status"),
        (
            "{ status = 502, file = \"/nonexistent/502.html\" }",
            38,
            "cannot read",
        ),
        ("{ status = 302, body = \"x\" }", 26, "400 to 599"),
    ] {
        let text = format!("[[server]]\nlisten = [\"127.0.0.1:1\"]\nerror_page = [{page}]\n[[server.route]]\npath = \"/\"\nroot = \".\"\n");
        let path = dir.write("bad.toml", text.as_bytes());
        let out = Command::new(TETHER)
            .args(["check", path.to_str().expect("utf-8")])
            .output()
            .expect("run tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}");
        let at = format!("{}:3:{col}: ", path.display());
        assert!(
            err.contains(&at) && err.contains(want),
            "want {at}..{want} in {err}"
        );
    }
}
