//! The broker's `ca` and the front door's own certificate, end to end: a one-step
//! self-signed certificate (`openssl req -x509`, marked as a CA) is refused by the polls'
//! TLS (`CaUsedAsEndEntity`) and the log says what to do instead; the CA and server
//! certificate made with docs/broker.md's openssl recipe work.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A plain simulation server answering `/load` with 17.
fn sim(port: u16) -> Proc {
    let script = "import http.server,sys\nclass H(http.server.BaseHTTPRequestHandler):\n    def do_GET(self):\n        b=b'17'\n        self.send_response(200)\n        self.send_header('Content-Length',str(len(b)))\n        self.end_headers()\n        self.wfile.write(b)\n    def log_message(self,*a):\n        pass\nhttp.server.HTTPServer(('127.0.0.1',int(sys.argv[1])),H).serve_forever()\n";
    python_script(script, &[&port.to_string()], port)
}

fn farm(dir: &TempDir, front: u16, sim: u16, cert: &str, key: &str, ca: &str) -> Proc {
    let config = format!(
        "[[broker]]\nname = \"farm\"\nservers = [\"localhost:{front}/{sim}\"]\nssl = true\nca = \"{ca}\"\n\
         poll_interval_ms = 200\ntimeout_ms = 2000\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{front}\"]\n\
         tls = {{ certificates = [{{ cert = \"{cert}\", key = \"{key}\" }}] }}\n\n\
         [[server.route]]\npath = \"/\"\nbroker = \"farm\"\n\
         port_rewrite = {{ host = \"127.0.0.1\", min = {sim}, max = {sim} }}\n"
    );
    tether(dir, &config, &[front])
}

fn load(front: u16, ca: &Path) -> String {
    let out = curl(&[
        "-s",
        "--cacert",
        ca.to_str().expect("utf-8"),
        "--resolve",
        &format!("localhost:{front}:127.0.0.1"),
        &format!("https://localhost:{front}/load"),
    ]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_self_signed_front_door_is_explained_and_the_documented_recipe_works() {
    let (front, sim_port) = (free_port(), free_port());
    let _sim = sim(sim_port);

    // One step, self-signed: a CA certificate as the server's own.
    let dir = TempDir::new("broker-ca-self");
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "30",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-keyout",
            "self.key",
            "-out",
            "self.pem",
        ],
    );
    let t = farm(&dir, front, sim_port, "self.pem", "self.key", "self.pem");
    assert!(
        t.wait_log("Make a CA and a server certificate signed by it"),
        "the poll's error says what to do:\n{}",
        t.log_text()
    );
    drop(t);

    // docs/broker.md's recipe.
    let dir = TempDir::new("broker-ca-recipe");
    let d = dir.path();
    openssl(
        d,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "3650",
            "-subj",
            "/CN=sim farm CA",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
        ],
    );
    openssl(
        d,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-keyout",
            "front.key",
            "-out",
            "front.csr",
        ],
    );
    std::fs::write(
        d.join("front.ext"),
        "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(
        d,
        &[
            "x509",
            "-req",
            "-in",
            "front.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "825",
            "-extfile",
            "front.ext",
            "-out",
            "front.pem",
        ],
    );
    let front2 = free_port();
    let t = farm(&dir, front2, sim_port, "front.pem", "front.key", "ca.pem");
    assert!(
        eventually(Duration::from_secs(10), || load(front2, &d.join("ca.pem"))
            == "17.0"),
        "the broker polls through the front door: {:?}\n{}",
        load(front2, &d.join("ca.pem")),
        t.log_text()
    );
}
