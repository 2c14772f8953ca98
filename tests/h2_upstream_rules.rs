//! A route's header rules and request ids on an HTTP/2 (h2c) pool, for HTTP/1.1 and HTTP/2
//! clients alike: what reached the server (`tests/support_h2c.py`'s `/headers` lists its
//! request's fields) and what the client got back, with the same rules an HTTP/1.1 pool
//! applies (`tests/header_rules.rs`); and `intercept_errors` replacing the server's error
//! answer with the route's page (`tests/error_pages.rs`).

mod common;

use common::*;

#[test]
fn header_rules_and_request_ids_apply_on_an_h2c_pool() {
    let dir = TempDir::new("h2up-rules");
    let (port, up_port) = (free_port(), free_port());
    let _up = h2c_app(up_port);
    let routes = r#"request_id = "generate"

[[server.route]]
path = "/"
proxy = "h2app"
request_headers = { set = { "X-Who" = "{host}|{path}|{header.x-tenant}|{upstream_name}|{upstream_addr}", "Host" = "inner.test" }, add = { "X-Rid" = "{request_id}" }, remove = ["X-Secret", "X-Internal-*"] }
response_headers = { set = { "X-Frame-Options" = "DENY" }, add = { "X-Served-By" = "{upstream_name}" }, remove = ["X-Internal-*"] }
"#;
    let t = tether(&dir, &h2c_pool_config(port, up_port, routes), &[port]);
    let url = format!("http://localhost:{port}/headers?q=1");
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        let out = curl(&[
            proto,
            "-D",
            "-",
            "-H",
            "X-Tenant: acme",
            "-H",
            "X-Secret: hush",
            "-H",
            "X-Internal-Trace: 7",
            &url,
        ]);
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(out.status.success(), "{proto}: {text}\n{}", t.log_text());
        let (head, body) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("{proto}: no head: {text}"));
        // What the server got.
        let who = format!("x-who: localhost|/headers|acme|h2app|127.0.0.1:{up_port}\n");
        assert!(body.contains(&who), "{proto}: {body}");
        assert!(body.contains(":authority: inner.test\n"), "{proto}: {body}");
        assert!(
            !body.contains("x-secret") && !body.contains("x-internal"),
            "{proto}: {body}"
        );
        let rid = body
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("{proto}: no x-request-id upstream: {body}"))
            .to_string();
        assert!(rid.len() >= 32, "{proto}: {rid}");
        assert!(body.contains(&format!("x-rid: {rid}\n")), "{proto}: {body}");
        // What the client got.
        assert!(head.contains("x-frame-options: deny"), "{proto}: {head}");
        assert!(head.contains("x-served-by: h2app"), "{proto}: {head}");
        assert!(
            head.contains(&format!("x-request-id: {rid}")),
            "{proto}: {head}"
        );
        assert!(!head.contains("x-internal-debug"), "{proto}: {head}");
        assert!(head.contains("content-type: text/plain"), "{proto}: {head}");
    }
}

#[test]
fn intercept_errors_replaces_an_h2c_servers_error_answer() {
    let dir = TempDir::new("h2up-pages");
    let (port, up_port) = (free_port(), free_port());
    let _up = h2c_app(up_port);
    let routes = r#"
[[server.route]]
path = "/caught"
proxy = "h2app"
strip_prefix = true
intercept_errors = true
error_page = [{ status = "4xx", body = "caught by tether" }]

[[server.route]]
path = "/"
proxy = "h2app"
error_page = [{ status = "4xx", body = "not without intercept_errors" }]
"#;
    let t = tether(&dir, &h2c_pool_config(port, up_port, routes), &[port]);
    for proto in ["--http1.1", "--http2-prior-knowledge"] {
        // The server answers 404 to both; only the intercepting route shows its page.
        for (path, page) in [("/caught/nope", true), ("/nope", false)] {
            let url = format!("http://127.0.0.1:{port}{path}");
            let out = curl(&[proto, "-o", "-", "-w", " %{http_code}", &url]);
            let text = String::from_utf8_lossy(&out.stdout).to_string();
            assert!(
                text.ends_with(" 404"),
                "{proto} {path}: {text}\n{}",
                t.log_text()
            );
            assert_eq!(
                text.contains("caught by tether"),
                page,
                "{proto} {path}: {text}"
            );
            assert!(!text.contains("not without"), "{proto} {path}: {text}");
        }
        // The intercepted call's stream was reset, the shared connection serves on.
        let ok = curl(&[
            proto,
            "-o",
            "-",
            &format!("http://127.0.0.1:{port}/caught/hello"),
        ]);
        assert_eq!(
            String::from_utf8_lossy(&ok.stdout),
            "hello from h2c",
            "{proto}"
        );
    }
}
