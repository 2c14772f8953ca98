//! `max_fails = 0` turns passive ejection off (docs/affinity.md, nginx's `max_fails=0`), end
//! to end: a backend's `500` is passed to the client and counts for nothing — the next
//! request still reaches the server instead of a `503` for `fail_timeout_ms`.

mod common;

use common::*;

#[test]
fn max_fails_zero_never_ejects_a_server() {
    let dir = TempDir::new("max-fails-zero");
    let (port, backend) = (free_port(), free_port());
    let script = "import http.server,sys\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        code = 500 if self.path == '/fail' else 200\n        b = b'boom' if code == 500 else b'fine'\n        self.send_response(code)\n        self.send_header('Content-Length', str(len(b)))\n        self.end_headers()\n        self.wfile.write(b)\n    def log_message(self, *a):\n        pass\nhttp.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()\n";
    let _backend = python_script(script, &[&backend.to_string()], backend);
    let cfg = format!(
        "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:{backend}\"]\nmax_fails = 0\nfail_timeout_ms = 60000\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
    );
    let _t = tether(&dir, &cfg, &[port]);
    for _ in 0..5 {
        let (code, body) = get(&format!("http://127.0.0.1:{port}/fail"));
        assert_eq!(
            (code, body.as_slice()),
            (500, &b"boom"[..]),
            "the backend's own 500"
        );
    }
    let (code, body) = get(&format!("http://127.0.0.1:{port}/"));
    assert_eq!((code, body.as_slice()), (200, &b"fine"[..]), "not ejected");
}
