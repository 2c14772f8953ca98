//! Header rules, path rewriting and request ids end to end: the real binary between curl
//! (HTTP/1.1) or Python's `h2` (HTTP/2, `tests/support_h2_get.py`) and an upstream that
//! answers with the request head it received (`python_echo_head`), so each test sees
//! exactly which headers reached the backend and which the client got.

mod common;

use std::process::Command;

use common::*;

fn config(port: u16, up: u16, log: &std::path::Path) -> String {
    let log = log.display();
    format!(
        r#"access_log = {{ path = "{log}", format = "tether" }}

[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true
request_id = "generate"
request_headers = {{ set = {{ "X-Client" = "{{client_ip}}:{{client_port}}" }} }}

[[server.route]]
path = "/api"
proxy = "app"
strip_prefix = true
add_prefix = "/v1"
request_headers = {{ set = {{ "X-Who" = "{{scheme}}|{{host}}|{{path}}|{{query}}|{{header.x-tenant}}|{{cookie.sid}}|{{upstream_name}}|{{upstream_addr}}|{{{{lit}}}}", "X-Forwarded-Proto" = "edge", "X-Real-IP" = "" }}, add = {{ "X-Rid" = "{{request_id}}" }}, remove = ["X-Secret", "X-Internal-*"] }}
response_headers = {{ set = {{ "X-Frame-Options" = "DENY" }}, add = {{ "X-Served-By" = "{{upstream_name}}" }}, remove = ["Content-Type"] }}

[[server.route]]
path = "/trusted"
proxy = "app"
request_id = "trust"

[[server.route]]
path = "/off"
proxy = "app"
request_id = "off"
"#
    )
}

fn is_id(v: Option<&str>) -> bool {
    v.is_some_and(|v| v.len() == 32 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The head a backend saw: the request line and the fields.
fn backend_line(body: &str) -> &str {
    body.lines().next().unwrap_or("")
}

#[test]
fn header_rules_paths_and_ids_over_http1() {
    let dir = TempDir::new("header-rules-h1");
    let (port, up) = (free_port(), free_port());
    let _backend = python_echo_head(up);
    let log = dir.path().join("access.log");
    let _t = tether(&dir, &config(port, up, &log), &[port]);

    let (status, head, seen) = curl_get(
        port,
        "/api/x/./y/../z?q=1",
        &[
            "Host: site.example:8080",
            "X-Tenant: t1",
            "Cookie: a=1; sid=abc",
            "X-Secret: s",
            "X-Internal-Token: t",
            "X-Request-Id: from-client",
            "X-Real-IP: 6.6.6.6",
        ],
    );
    assert_eq!(status, 200, "{head}\n{seen}");
    // Path: the route's prefix stripped, /v1 added, normalised; query kept.
    assert_eq!(backend_line(&seen), "GET /v1/x/z?q=1 HTTP/1.1", "{seen}");
    let want_who =
        format!("http|site.example|/api/x/./y/../z|q=1|t1|abc|app|127.0.0.1:{up}|{{lit}}");
    assert_eq!(header(&seen, "X-Who"), Some(want_who.as_str()), "{seen}");
    let client = header(&seen, "X-Client").unwrap_or("");
    let (ip, cport) = client.split_once(':').unwrap_or(("", ""));
    assert!(ip == "127.0.0.1" && cport.parse::<u16>().is_ok(), "{seen}");
    assert_eq!(header(&seen, "X-Secret"), None, "{seen}");
    assert_eq!(header(&seen, "X-Internal-Token"), None, "{seen}");
    // tether's defaults: overridden, turned off, kept.
    assert_eq!(header(&seen, "X-Forwarded-Proto"), Some("edge"), "{seen}");
    assert_eq!(header(&seen, "X-Real-IP"), None, "{seen}");
    assert_eq!(
        header(&seen, "X-Forwarded-For"),
        Some("127.0.0.1"),
        "{seen}"
    );
    assert_eq!(header(&seen, "Host"), Some("site.example:8080"), "{seen}");
    // A generated id replaces the client's, reaches the backend and comes back.
    let id = header(&seen, "X-Request-Id");
    assert!(is_id(id), "{seen}");
    assert_eq!(header(&seen, "X-Rid"), id, "{seen}");
    assert_eq!(header(&head, "X-Request-Id"), id, "{head}");
    // ... and ends the request's access-log line.
    let want = "\"GET /api/x/./y/../z?q=1 HTTP/1.1\" 200 ";
    let rid = format!(" rid={}\n", id.unwrap_or("?"));
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(std::time::Duration::from_secs(5), || {
            logged()
                .lines()
                .any(|l| l.contains(want) && (l.to_string() + "\n").ends_with(&rid))
        }),
        "{rid:?} in {}",
        logged()
    );
    // Response rules.
    assert_eq!(header(&head, "X-Frame-Options"), Some("DENY"), "{head}");
    assert_eq!(header(&head, "X-Served-By"), Some("app"), "{head}");
    assert_eq!(header(&head, "Content-Type"), None, "{head}");
    assert!(header(&head, "Content-Length").is_some(), "{head}");

    // Another request, another id.
    let (_, head2, seen2) = curl_get(port, "/api", &[]);
    assert_eq!(backend_line(&seen2), "GET /v1 HTTP/1.1", "{seen2}");
    let id2 = header(&head2, "X-Request-Id");
    assert!(is_id(id2) && id2 != id, "{id:?} {id2:?}");

    // A rewritten path may not climb above the root.
    let (status, head, _) = curl_get(port, "/api/../../etc/passwd", &[]);
    assert_eq!(status, 400, "{head}");

    // `trust`: the client's id is kept; none sent, one is made.
    let (_, head, seen) = curl_get(port, "/trusted/a", &["X-Request-Id: abc-123"]);
    assert_eq!(header(&seen, "X-Request-Id"), Some("abc-123"), "{seen}");
    assert_eq!(header(&head, "X-Request-Id"), Some("abc-123"), "{head}");
    assert_eq!(backend_line(&seen), "GET /trusted/a HTTP/1.1", "{seen}");
    let (_, head, seen) = curl_get(port, "/trusted/a", &[]);
    assert!(is_id(header(&seen, "X-Request-Id")), "{seen}");
    assert_eq!(header(&head, "X-Request-Id"), header(&seen, "X-Request-Id"));
    // The server's rules reach every route; `off`: the client's header passes as it is,
    // and none comes back.
    let (_, head, seen) = curl_get(port, "/off", &["X-Request-Id: mine"]);
    assert_eq!(header(&seen, "X-Request-Id"), Some("mine"), "{seen}");
    assert_eq!(header(&head, "X-Request-Id"), None, "{head}");
    assert!(header(&seen, "X-Client").is_some(), "{seen}");
    assert_eq!(header(&seen, "X-Who"), None, "{seen}");
}

#[test]
fn header_rules_paths_and_ids_over_http2() {
    let dir = TempDir::new("header-rules-h2");
    let (port, up) = (free_port(), free_port());
    let _backend = python_echo_head(up);
    let log = dir.path().join("access.log");
    let _t = tether(&dir, &config(port, up, &log), &[port]);
    let run = |path: &str, extra: &[&str]| -> serde_json::Value {
        let out = Command::new("python3")
            .arg(repo().join("tests/support_h2_get.py"))
            .arg(port.to_string())
            .arg(path)
            .args(extra)
            .output()
            .expect("python3 support_h2_get.py (needs the h2 package)");
        let text = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)))
    };
    let field = |v: &serde_json::Value, name: &str| -> Option<String> {
        v["headers"].as_array().and_then(|hs| {
            hs.iter()
                .find_map(|h| (h[0].as_str()? == name).then(|| h[1].as_str().map(String::from))?)
        })
    };
    let a = run(
        "/api/x/./y/../z?q=1",
        &[
            "x-tenant=t1",
            "cookie=a=1; sid=abc",
            "x-secret=s",
            "x-internal-token=t",
            "x-request-id=from-client",
        ],
    );
    assert_eq!(a["status"], 200, "{a}");
    let seen = a["body"].as_str().unwrap_or("").to_string();
    assert_eq!(backend_line(&seen), "GET /v1/x/z?q=1 HTTP/1.1", "{seen}");
    let want_who = format!("http|h2.example|/api/x/./y/../z|q=1|t1|abc|app|127.0.0.1:{up}|{{lit}}");
    assert_eq!(header(&seen, "X-Who"), Some(want_who.as_str()), "{seen}");
    assert_eq!(header(&seen, "X-Secret"), None, "{seen}");
    assert_eq!(header(&seen, "X-Internal-Token"), None, "{seen}");
    assert_eq!(header(&seen, "X-Forwarded-Proto"), Some("edge"), "{seen}");
    assert_eq!(header(&seen, "X-Real-IP"), None, "{seen}");
    let id = header(&seen, "X-Request-Id").map(String::from);
    assert!(is_id(id.as_deref()), "{seen}");
    assert_eq!(field(&a, "x-request-id"), id, "{a}");
    let rid = format!(" rid={}", id.as_deref().unwrap_or("?"));
    let logged = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(std::time::Duration::from_secs(5), || logged()
            .lines()
            .any(|l| l.contains("HTTP/2.0\" 200 ") && l.ends_with(&rid))),
        "{rid:?} in {}",
        logged()
    );
    assert_eq!(field(&a, "x-frame-options").as_deref(), Some("DENY"), "{a}");
    assert_eq!(field(&a, "x-served-by").as_deref(), Some("app"), "{a}");
    assert_eq!(field(&a, "content-type"), None, "{a}");

    let b = run("/api", &[]);
    let id2 = field(&b, "x-request-id");
    assert!(is_id(id2.as_deref()) && id2 != id, "{id:?} {id2:?}");
    let c = run("/api/../../etc/passwd", &[]);
    assert_eq!(c["status"], 400, "{c}");
    let d = run("/trusted/a", &["x-request-id=abc-123"]);
    assert_eq!(field(&d, "x-request-id").as_deref(), Some("abc-123"), "{d}");
}

#[test]
fn bad_rules_are_check_errors_with_positions() {
    let dir = TempDir::new("header-rules-check");
    let cases = [
        (
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\nrequest_headers = { set = { \"X-A\" = \"ip={clinet_ip}\" } }\n",
            "tether.toml:11:41: `set.X-A`: unknown placeholder `{clinet_ip}` (did you mean `{client_ip}`?)",
        ),
        (
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\n[[server]]\nlisten = [\"127.0.0.1:1\"]\nresponse_headers = { set = { \"Connection\" = \"close\" } }\n",
            "tether.toml:7:45: `set`: \"Connection\" is a header tether manages",
        ),
        (
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\n[[server]]\nlisten = [\"127.0.0.1:1\"]\nrequest_id = \"maybe\"\n",
            "tether.toml:7:14: `request_id`: \"maybe\" is not",
        ),
        (
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\nadd_prefix = \"/a/../b\"\n",
            "tether.toml:11:14: `add_prefix` must be",
        ),
        (
            "[[server]]\nlisten = [\"127.0.0.1:1\"]\n\n[[server.route]]\npath = \"/\"\nroot = \".\"\nadd_prefix = \"/v1\"\n",
            "tether.toml:7:14: `add_prefix` goes with `proxy`",
        ),
    ];
    for (config, want) in cases {
        let path = dir.write("tether.toml", config.as_bytes());
        let out = Command::new(TETHER)
            .arg("check")
            .arg("tether.toml")
            .current_dir(dir.path())
            .output()
            .expect("tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{config}");
        assert!(
            err.contains(want),
            "want {want:?} in {err} ({})",
            path.display()
        );
    }
}
