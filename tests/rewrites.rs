//! Regex rewrites, redirects with captures and `alias` end to end: the real binary between
//! curl (HTTP/1.1) or Python's `h2` (HTTP/2, `tests/support_h2_get.py`) and an upstream that
//! answers with the request head it received (`python_echo_head`), so each test sees the
//! path that reached the backend.

mod common;

use std::process::Command;

use common::*;

fn config(port: u16, up: u16, dir: &std::path::Path) -> String {
    let dir = dir.display();
    format!(
        r#"[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]
http2 = true

[[server.route]]
path = "/"
root = "{dir}/www"

[[server.route]]
path = "/api"
proxy = "app"
regex = '^/api/v1/(?P<rest>.*)$'
rewrite = "/v2/$rest"

[[server.route]]
path = "/climb"
proxy = "app"
regex = '^/climb/(.*)$'
rewrite = "/a/${{1}}"

[[server.route]]
path = "/both"
proxy = "app"
regex = '^/both/(\w+)/(\w+)$'
rewrite = "/x/$2/$1?from={{path}}&cost=5$$"

[[server.route]]
path = "/old"
regex = '^/old/(.*)$'
redirect = "https://new.example/$1"
status = 301

[[server.route]]
path = "/admin"
alias = "{dir}/private"
"#
    )
}

fn site(tag: &str) -> (TempDir, u16, Proc, Proc) {
    let dir = TempDir::new(tag);
    dir.write("www/index.html", b"public index\n");
    dir.write("private/secret.txt", b"the admin secret\n");
    dir.write("private/index.html", b"admin index\n");
    dir.write("outside.txt", b"must never be served\n");
    let (port, up) = (free_port(), free_port());
    let backend = python_echo_head(up);
    let t = tether(&dir, &config(port, up, dir.path()), &[port]);
    (dir, port, t, backend)
}

#[test]
fn regex_rewrite_reaches_the_backend_over_http1_and_http2() {
    let (_dir, port, _t, _b) = site("rewrites-regex");
    // HTTP/1.1: the capture fills the target; the client's query follows.
    let (status, head, seen) = curl_get(port, "/api/v1/users/7?full=1", &[]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        seen.lines().next(),
        Some("GET /v2/users/7?full=1 HTTP/1.1"),
        "{seen}"
    );
    // A path the regex does not match goes as it is.
    let (_, _, seen) = curl_get(port, "/api/other", &[]);
    assert_eq!(
        seen.lines().next(),
        Some("GET /api/other HTTP/1.1"),
        "{seen}"
    );
    // Two captures swapped, a placeholder, `$$` as a `$`; the target's own query wins.
    let (_, _, seen) = curl_get(port, "/both/one/two?dropped=1", &[]);
    assert_eq!(
        seen.lines().next(),
        Some("GET /x/two/one?from=/both/one/two&cost=5$ HTTP/1.1"),
        "{seen}"
    );
    // The rewritten path is normalised again and cannot climb above `/`.
    let (_, _, seen) = curl_get(port, "/climb/b/../c", &[]);
    assert_eq!(seen.lines().next(), Some("GET /a/c HTTP/1.1"), "{seen}");
    let (status, head, _) = curl_get(port, "/climb/../../../etc/passwd", &[]);
    assert_eq!(status, 400, "{head}");
    let (status, head, _) = curl_get(port, "/climb/%2e%2e/%2e%2e/etc/passwd", &[]);
    assert_eq!(status, 400, "{head}");

    // HTTP/2: the same phase step.
    let (status, _, seen) = h2_get(port, "/api/v1/users/7?full=1", &[]);
    assert_eq!(status, 200, "{seen}");
    assert_eq!(
        seen.lines().next(),
        Some("GET /v2/users/7?full=1 HTTP/1.1"),
        "{seen}"
    );
    let (status, _, _) = h2_get(port, "/climb/../../etc/passwd", &[]);
    assert_eq!(status, 400);
}

#[test]
fn redirect_with_a_capture_over_http1_and_http2() {
    let (_dir, port, _t, _b) = site("rewrites-redirect");
    let (status, head, _) = curl_get(port, "/old/docs/page.html", &[]);
    assert_eq!(status, 301, "{head}");
    assert_eq!(
        header(&head, "Location"),
        Some("https://new.example/docs/page.html"),
        "{head}"
    );
    let (status, headers, _) = h2_get(port, "/old/a/b", &[]);
    assert_eq!(status, 301);
    assert_eq!(
        h2_header(&headers, "location"),
        Some("https://new.example/a/b"),
        "{headers:?}"
    );
}

#[test]
fn alias_serves_its_directory_and_cannot_climb_out() {
    let (_dir, port, _t, _b) = site("rewrites-alias");
    // `alias`: /admin/secret.txt is private/secret.txt (a `root` would look for
    // private/admin/secret.txt).
    let (status, head, body) = curl_get(port, "/admin/secret.txt", &[]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, "the admin secret\n");
    let (status, head, _) = curl_get(port, "/admin", &[]);
    assert_eq!(status, 301, "{head}");
    assert_eq!(header(&head, "Location"), Some("/admin/"), "{head}");
    let (status, _, body) = curl_get(port, "/admin/", &[]);
    assert_eq!((status, body.as_str()), (200, "admin index\n"));
    // The `/` route's root does not hold it.
    let (status, _, _) = curl_get(port, "/secret.txt", &[]);
    assert_eq!(status, 404);
    // Climbing out of the alias: plain, encoded, with encoded slashes.
    for path in [
        "/admin/../outside.txt",
        "/admin/../../etc/passwd",
        "/admin/%2e%2e/outside.txt",
        "/admin/%2E%2E/%2e%2e/etc/passwd",
        "/admin/..%2foutside.txt",
        "/admin/..%2f..%2fetc%2fpasswd",
    ] {
        let (status, head, body) = curl_get(port, path, &[]);
        assert!(
            status == 400 || status == 404,
            "{path}: {status}\n{head}\n{body}"
        );
        assert!(!body.contains("must never be served"), "{path}: {body}");
        assert!(!body.contains("root:"), "{path}: {body}");
    }
    // HTTP/2 too.
    let (status, _, body) = h2_get(port, "/admin/secret.txt", &[]);
    assert_eq!((status, body.as_str()), (200, "the admin secret\n"));
    let (status, _, body) = h2_get(port, "/admin/%2e%2e/outside.txt", &[]);
    assert!(status == 400 || status == 404, "{status} {body}");
}

#[test]
fn a_bad_regex_or_capture_is_a_check_error_with_its_position() {
    let dir = TempDir::new("rewrites-check");
    let cases = [
        (
            "regex = '^/a/(unclosed'\nrewrite = \"/b\"\n",
            5,
            9,
            "`regex`: bad pattern",
        ),
        (
            "regex = '^/a/(.*)$'\nrewrite = \"/b/$2\"\n",
            6,
            15,
            "`$2` is not a capture",
        ),
        ("rewrite = \"/b/$1\"\n", 5, 15, "needs a `regex`"),
    ];
    for (i, (route, line, col, want)) in cases.into_iter().enumerate() {
        let text = format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\n[[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/a\"\nproxy = \"app\"\n{route}"
        );
        // The route's keys start on line 9; shift the expectations accordingly.
        let (line, col) = (line + 4, col);
        let path = dir.write(&format!("bad{i}.toml"), text.as_bytes());
        let out = Command::new(env!("CARGO_BIN_EXE_tether"))
            .args(["check", path.to_str().expect("utf-8")])
            .output()
            .expect("run tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{text}\n{err}");
        let at = format!("{}:{line}:{col}: ", path.display());
        assert!(err.contains(&at), "want {at}{want} in {err}");
        assert!(err.contains(want), "want {want} in {err}");
    }
}

#[test]
fn the_site_example_admin_route_serves_with_alias() {
    // examples/configs/site.toml as shipped, on a free port, from the repository (its
    // `public` and `docs` directories).
    let dir = TempDir::new("rewrites-site");
    let port = free_port();
    let shipped = std::fs::read_to_string(repo().join("examples/configs/site.toml"))
        .expect("read examples/configs/site.toml");
    assert!(shipped.contains("alias = \"public\""), "{shipped}");
    let text = shipped
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{port}"))
        .replace("workers = \"auto\"", "workers = 1")
        .replace("\"public\"", &format!("{:?}", repo().join("public")))
        .replace("\"docs\"", &format!("{:?}", repo().join("docs")));
    let cfg = dir.write("site.toml", text.as_bytes());
    let _t = tether_args(dir.path(), &[cfg.to_str().expect("utf-8")], &[port]);
    let want = std::fs::read_to_string(repo().join("public/sample.txt")).expect("sample");
    let (status, head, body) = curl_get(port, "/admin/sample.txt", &[]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(body, want);
    let (status, _, body) = curl_get(port, "/admin/", &[]);
    let index = std::fs::read_to_string(repo().join("public/index.html")).expect("index");
    assert_eq!((status, body), (200, index));
}

#[test]
fn the_nginx_like_example_does_what_it_says() {
    // examples/configs/nginx-like.toml as shipped, with free ports and temporary
    // directories for /srv/www and /srv/assets; the app on 3000 replaced by an echo backend.
    let dir = TempDir::new("rewrites-nginx-like");
    dir.write("www/index.html", b"home\n");
    dir.write("assets/app.css", b"body { color: black }\n");
    let (port, up) = (free_port(), free_port());
    let shipped = std::fs::read_to_string(repo().join("examples/configs/nginx-like.toml"))
        .expect("read examples/configs/nginx-like.toml");
    let www = dir.path().join("www");
    let assets = dir.path().join("assets");
    let text = shipped
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{port}"))
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{up}"))
        .replace("workers = \"auto\"", "workers = 1")
        .replace("\"/srv/www\"", &format!("{:?}", www.display().to_string()))
        .replace(
            "\"/srv/assets\"",
            &format!("{:?}", assets.display().to_string()),
        );
    let cfg = dir.write("nginx-like.toml", text.as_bytes());
    let _t = tether_args(dir.path(), &[cfg.to_str().expect("utf-8")], &[port]);

    // The backend is not there yet: the /api route's own 5xx page (JSON).
    let (status, head, body) = curl_get(port, "/api/users", &[]);
    assert_eq!(status, 502, "{head}");
    assert_eq!(body, r#"{"error":"the service is unavailable"}"#, "{head}");
    assert_eq!(header(&head, "Content-Type"), Some("application/json"));

    let _b = python_echo_head(up);
    let (status, head, seen) = curl_get(port, "/api/users?page=2", &[]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(
        seen.lines().next(),
        Some("GET /users?page=2 HTTP/1.1"),
        "{seen}"
    );
    assert_eq!(header(&seen, "X-Real-IP"), Some("127.0.0.1"), "{seen}");
    assert_eq!(header(&head, "X-Frame-Options"), Some("DENY"), "{head}");
    let (_, _, seen) = curl_get(port, "/old-api/a/b", &[]);
    assert_eq!(seen.lines().next(), Some("GET /v1/a/b HTTP/1.1"), "{seen}");

    let (status, head, _) = curl_get(port, "/blog/2024/hello-world", &[]);
    assert_eq!(status, 301, "{head}");
    assert_eq!(
        header(&head, "Location"),
        Some("https://blog.example.org/2024/hello-world")
    );
    let (status, _, body) = curl_get(port, "/static/app.css", &[]);
    assert_eq!((status, body.as_str()), (200, "body { color: black }\n"));
    let (status, _, body) = curl_get(port, "/", &[]);
    assert_eq!((status, body.as_str()), (200, "home\n"));
    let (status, _, body) = curl_get(port, "/nothing-here", &[]);
    assert_eq!(status, 404);
    assert!(body.contains("<h1>Not found</h1>"), "{body}");
}
