//! A route's allow/deny list covers everything under it: the paths a `port_rewrite` sends
//! to a local port too, and a refused request's body is never read as a next request.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

#[test]
fn deny_covers_port_rewritten_paths_and_refused_bodies_are_not_requests() {
    let dir = TempDir::new("access-control");
    let (port, up) = (free_port(), free_port());
    let _u = python_upstream(up);
    let config = format!(
        r#"
[[upstream]]
name = "app"
servers = ["127.0.0.1:{up}"]

[[server]]
listen = ["127.0.0.1:{port}"]

[[server.route]]
path = "/farm"
port_rewrite = {{ host = "127.0.0.1", min = {up}, max = {up} }}
deny = ["127.0.0.1"]

[[server.route]]
path = "/open"
port_rewrite = {{ host = "127.0.0.1", min = {up}, max = {up} }}

[[server.route]]
path = "/private"
proxy = "app"
deny = ["127.0.0.0/8"]
"#
    );
    let _t = tether(&dir, &config, &[port]);
    // The same local port: refused under the denied route, forwarded under the open one.
    let (code, _) = get(&format!("http://127.0.0.1:{port}/farm/{up}/whoami"));
    assert_eq!(code, 403);
    let (code, body) = get(&format!("http://127.0.0.1:{port}/open/{up}/whoami"));
    assert_eq!(code, 200);
    assert!(String::from_utf8_lossy(&body).starts_with("port="));
    // A refused POST whose body looks like a request: one answer, then the connection ends.
    let smuggled = "GET /open/x HTTP/1.1\r\nHost: t\r\n\r\n";
    let req = format!(
        "POST /private/x HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let mut s = TcpStream::connect(addr(port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 403"), "{text}");
    assert_eq!(text.matches("HTTP/1.1 ").count(), 1, "{text}");
}
