//! The router end to end: upstream pools (round robin), virtual hosts by `Host`, longest
//! prefix at a segment boundary, redirects, allow/deny → 403 — in tether's TOML and in
//! eXpServer's `xps_config.json`, run as it is.

mod common;

use std::process::Command;

use common::*;

/// Two python upstreams, each serving `id.txt` with its own letter.
fn two_upstreams(dir: &TempDir) -> (Proc, Proc, u16, u16) {
    dir.write("a/id.txt", b"A");
    dir.write("b/id.txt", b"B");
    dir.write("a/api/id.txt", b"api-A");
    dir.write("b/api/id.txt", b"api-B");
    let (pa, pb) = (free_port(), free_port());
    (
        python_http(&dir.path().join("a"), pa),
        python_http(&dir.path().join("b"), pb),
        pa,
        pb,
    )
}

/// `curl` a URL (with an optional `Host`) → "status redirect-url".
fn status_and_location(url: &str, host: Option<&str>) -> String {
    let host_header = host.map(|h| format!("Host: {h}"));
    let mut args = vec![
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code} %{redirect_url}",
    ];
    if let Some(h) = &host_header {
        args.extend(["-H", h.as_str()]);
    }
    args.push(url);
    String::from_utf8_lossy(&curl(&args).stdout).into_owned()
}

#[test]
fn toml_pools_hosts_prefixes_redirects_and_acls() {
    let dir = TempDir::new("router-toml");
    let (_a, _b, pa, pb) = two_upstreams(&dir);
    dir.write("www/index.html", b"site\n");
    dir.write("www/api2", b"not the api\n");
    let port = free_port();
    let www = dir.path().join("www");
    let cfg = format!(
        r#"server_name = "tether-router"

[[upstream]]
name = "app"
servers = ["127.0.0.1:{pa}", "127.0.0.1:{pb}"]
balance = "round_robin"

[[server]]
listen = ["127.0.0.1:{port}"]

[[server.route]]
path = "/"
root = "{www}"

[[server.route]]
path = "/api"
proxy = "app"

[[server.route]]
path = "/private"
root = "{www}"
allow = ["10.0.0.0/8"]

[[server.route]]
path = "/blocked"
root = "{www}"
deny = ["127.0.0.0/8"]

[[server]]
listen = ["127.0.0.1:{port}"]
hostnames = ["old.test", "*.legacy.test"]

[[server.route]]
path = "/"
redirect = "http://new.test/"
status = 301
"#,
        www = www.display()
    );
    let _t = tether(&dir, &cfg, &[port]);
    let base = format!("http://127.0.0.1:{port}");
    // Round robin over the pool.
    let ids: Vec<Vec<u8>> = (0..4)
        .map(|_| get(&format!("{base}/api/id.txt")).1)
        .collect();
    assert_eq!(
        ids,
        vec![
            b"api-A".to_vec(),
            b"api-B".to_vec(),
            b"api-A".to_vec(),
            b"api-B".to_vec()
        ]
    );
    // Longest prefix at a segment boundary: /api2 is the files route.
    assert_eq!(
        get(&format!("{base}/api2")),
        (200, b"not the api\n".to_vec())
    );
    assert_eq!(get(&format!("{base}/")), (200, b"site\n".to_vec()));
    // ACLs.
    assert_eq!(get(&format!("{base}/private/")).0, 403);
    assert_eq!(get(&format!("{base}/blocked/")).0, 403);
    // Virtual hosts: by name (with port), by wildcard; unknown names go to the first server.
    for host in ["old.test", "OLD.test:8080", "x.legacy.test"] {
        assert_eq!(
            status_and_location(&format!("{base}/"), Some(host)),
            "301 http://new.test/",
            "{host}"
        );
    }
    let out = curl(&["-s", "-H", "Host: other.test", &format!("{base}/")]);
    assert_eq!(out.stdout, b"site\n");
    let out = curl(&["-sI", &format!("{base}/")]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Server: tether-router\r\n"));
}

#[test]
fn xps_config_json_runs_as_is() {
    let dir = TempDir::new("router-xps");
    let (_a, _b, pa, pb) = two_upstreams(&dir);
    // Long enough to be worth compressing (tiny files are sent as they are).
    dir.write(
        "public/index.html",
        format!("{}xps home\n", "<p>".repeat(50)).as_bytes(),
    );
    let (p1, p2, p3) = (free_port(), free_port(), free_port());
    let public = dir.path().join("public");
    let json = format!(
        r#"{{
	"server_name": "eXpServer",
	"workers": 2,
	"servers": [
		{{
			"listeners": [{{ "host": "127.0.0.1", "port": {p1} }}],
			"routes": [
				{{ "req_path": "/", "type": "file_serve", "dir_path": "{public}", "index": ["index.html"],
				   "gzip_enable": true, "gzip_level": 8, "gzip_mime_types": ["text/html"] }},
				{{ "req_path": "/redirect", "type": "redirect", "http_status_code": 302, "redirect_url": "http://localhost:{p2}/" }},
				{{ "req_path": "/nope", "type": "file_serve", "dir_path": "{public}", "ip_blacklist": ["127.0.0.1"] }},
				{{ "req_path": "/only", "type": "file_serve", "dir_path": "{public}", "ip_whitelist": ["10.1.1.1"] }}
			]
		}},
		{{
			"listeners": [{{ "host": "127.0.0.1", "port": {p2} }}],
			"hostnames": ["localhost"],
			"routes": [
				{{ "req_path": "/", "type": "reverse_proxy", "upstreams": ["localhost:{pa}", "localhost:{pb}"], "load_balancing": "round_robin" }}
			]
		}},
		{{
			"listeners": [{{ "host": "127.0.0.1", "port": {p3} }}],
			"routes": [
				{{ "req_path": "/", "type": "reverse_proxy", "upstreams": ["localhost:{pa}", "localhost:{pb}"], "load_balancing": "ip_hash" }}
			]
		}}
	]
}}"#,
        public = public.display()
    );
    let cfg = dir.write("xps_config.json", json.as_bytes());
    let _t = tether_args(dir.path(), &[cfg.to_str().unwrap()], &[p1, p2, p3]);
    let out = curl(&["-si", &format!("http://127.0.0.1:{p1}/")]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.starts_with("HTTP/1.1 200")
            && s.contains("Server: eXpServer\r\n")
            && s.ends_with("xps home\n"),
        "{s}"
    );
    // gzip_enable with gzip_mime_types text/html: compressed for a client that accepts it.
    let out = curl(&[
        "-s",
        "--compressed",
        "-D",
        "-",
        &format!("http://127.0.0.1:{p1}/"),
    ]);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("Content-Encoding: gzip\r\n") && s.ends_with("xps home\n"),
        "{s}"
    );
    assert_eq!(
        status_and_location(&format!("http://127.0.0.1:{p1}/redirect"), None),
        format!("302 http://localhost:{p2}/")
    );
    assert_eq!(get(&format!("http://127.0.0.1:{p1}/nope/")).0, 403);
    assert_eq!(get(&format!("http://127.0.0.1:{p1}/only/")).0, 403);
    let ids: Vec<Vec<u8>> = (0..2)
        .map(|_| get(&format!("http://127.0.0.1:{p2}/id.txt")).1)
        .collect();
    assert_eq!(ids, vec![b"A".to_vec(), b"B".to_vec()]);
    // ip_hash: one client, one server.
    let first = get(&format!("http://127.0.0.1:{p3}/id.txt")).1;
    for _ in 0..4 {
        assert_eq!(get(&format!("http://127.0.0.1:{p3}/id.txt")).1, first);
    }
}

#[test]
fn xps_config_errors_have_positions() {
    let dir = TempDir::new("router-xps-bad");
    let cases = [
        ("unknown.json", "{\n  \"server_name\": \"x\",\n  \"servrs\": []\n}\n", ":3:"),
        ("route.json", "{\"servers\": [{\"listeners\": [{\"host\": \"127.0.0.1\", \"port\": 1}], \"routes\": [{\"req_path\": \"/\", \"type\": \"file_serve\", \"dir_path\": \".\", \"colour\": 1}]}]}", ":1:"),
        ("kind.json", "{\"servers\": [{\"routes\": [{\"req_path\": \"/\", \"type\": \"teleport\"}]}]}", ":1:52: servers[0].routes[0]: `type`"),
    ];
    for (name, text, want) in cases {
        let p = dir.write(name, text.as_bytes());
        let out = Command::new(TETHER)
            .args(["check", p.to_str().unwrap()])
            .output()
            .expect("tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert!(
            err.starts_with(&format!("{}{want}", p.display())),
            "{name}: {err}"
        );
    }
}
