//! Helpers for the end-to-end tests: start the real `tether` binary and real servers
//! (python `http.server`), pick free loopback ports, wait for a port to accept, read a
//! process's RSS / CPU time / open descriptors from /proc, and kill everything on drop.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const TETHER: &str = env!("CARGO_BIN_EXE_tether");

/// The repository root (where `public/` and `examples/` are).
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[allow(unused_imports)] // each test binary uses some of them
pub use tether_testkit::{dead_port, free_port};

pub fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Wait until `port` accepts a connection (at most 10 s).
pub fn wait_port(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("port {port} never accepted a connection");
}

/// Poll `cond` every 20 ms for at most `limit`; true if it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("tether-test-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, data: &[u8]) -> PathBuf {
        let p = self.0.join(name);
        if let Some(dir) = p.parent() {
            std::fs::create_dir_all(dir).expect("create dir");
        }
        std::fs::write(&p, data).expect("write file");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process killed (and reaped) on drop. For a tether started by `tether_args`,
/// the child is the supervising master and the process that serves is its worker: `pid()`
/// names the worker (the last "running (pid N" line of the log), and drop waits until every
/// worker the log names is gone too (they die with their master: PDEATHSIG).
pub struct Proc {
    pub child: Child,
    pub log: Option<PathBuf>,
}

impl Proc {
    /// The pid of the process that serves: tether's worker (per the log), else the child.
    pub fn pid(&self) -> u32 {
        running_pids(&self.log_text())
            .last()
            .copied()
            .unwrap_or_else(|| self.child.id())
    }

    /// The pid of the child itself (a supervised tether's master).
    pub fn child_pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log_text(&self) -> String {
        self.log
            .as_ref()
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default()
    }

    /// Whether the log holds `needle` within 5 s (a worker's lines reach the file through
    /// the master's copy thread, a moment after the worker wrote them).
    pub fn wait_log(&self, needle: &str) -> bool {
        self.wait_log_within(needle, Duration::from_secs(5))
    }

    /// Whether the log holds `needle` within `limit`.
    pub fn wait_log_within(&self, needle: &str, limit: Duration) -> bool {
        eventually(limit, || self.log_text().contains(needle))
    }

    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let me = self.child.id();
        for pid in running_pids(&self.log_text()) {
            if pid != me && !eventually(Duration::from_secs(5), || !pid_alive(pid)) {
                // SAFETY: kill has no memory preconditions.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
                eprintln!("tether worker {pid} outlived its master");
            }
        }
    }
}

/// Whether `pid` is a live process (a zombie counts as gone).
pub fn pid_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => s
            .rfind(')')
            .and_then(|i| s.get(i + 2..i + 3))
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// The pids of the "running (pid N" lines of a tether log, in order.
pub fn running_pids(log: &str) -> Vec<u32> {
    log.split(" running (pid ")
        .skip(1)
        .filter_map(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Start tether with `args` in `cwd`, logging to `cwd/tether.log`; wait for `ports`.
pub fn tether_args(cwd: &Path, args: &[&str], ports: &[u16]) -> Proc {
    let log = cwd.join("tether.log");
    let f = std::fs::File::create(&log).expect("log file");
    let child = Command::new(TETHER)
        .args(args)
        .current_dir(cwd)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .expect("spawn tether");
    let mut p = Proc {
        child,
        log: Some(log),
    };
    // Every worker's loop is running once the log says so (the sockets accept before that).
    // 30 s: a debug build on a loaded 2-core machine has taken more than 10.
    if !eventually(Duration::from_secs(30), || {
        p.log_text().contains(" running (pid ")
    }) {
        panic!(
            "tether did not start; alive={}; log:\n{}",
            p.alive(),
            p.log_text()
        );
    }
    for &port in ports {
        if !eventually(Duration::from_secs(10), || {
            TcpStream::connect_timeout(&addr(port), Duration::from_millis(200)).is_ok()
        }) {
            panic!(
                "tether did not listen on {port}; alive={}; log:\n{}",
                p.alive(),
                p.log_text()
            );
        }
    }
    p
}

/// Write `config` to `dir/tether.toml` and run tether on it, waiting for `ports`.
pub fn tether(dir: &TempDir, config: &str, ports: &[u16]) -> Proc {
    let cfg = dir.write("tether.toml", config.as_bytes());
    tether_args(dir.path(), &[cfg.to_str().expect("utf-8 path")], ports)
}

/// `python3 -c SCRIPT ARGS...`, quiet, once `port` accepts.
pub fn python_script(script: &str, args: &[&str], port: u16) -> Proc {
    let mut all: Vec<&std::ffi::OsStr> = vec!["-c".as_ref(), script.as_ref()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    python(&all, port)
}

/// `tests/support_h2_ws.py MODE PORT PATH [N]` (bounded by 30 s): a WebSocket over HTTP/2
/// (RFC 8441 extended CONNECT, h2c) to tether on `port`. Its stdout, or why it failed.
pub fn h2_ws_client(mode: &str, port: u16, path: &str, n: usize) -> String {
    let out = Command::new("timeout")
        .args(["30", "python3"])
        .arg(repo().join("tests/support_h2_ws.py"))
        .args([mode, &port.to_string(), path, &n.to_string()])
        .output()
        .expect("python3 tests/support_h2_ws.py (pip install h2)");
    stdout_or_why(out)
}

/// `tests/support_h2_ws.py MODE PORT PATH` as a child (bounded by 30 s) whose stdout
/// lines are read as it goes.
pub fn h2_ws_child(mode: &str, port: u16, path: &str) -> Child {
    Command::new("timeout")
        .args(["30", "python3"])
        .arg(repo().join("tests/support_h2_ws.py"))
        .args([mode, &port.to_string(), path])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 tests/support_h2_ws.py (pip install h2)")
}

/// A client script's stdout, trimmed, if it succeeded; else its status and both outputs.
fn stdout_or_why(out: Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    if out.status.success() {
        stdout.trim().to_string()
    } else {
        format!(
            "client failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    }
}

/// The `tests/support_ws.py` echo server on `port` (each message back, `echo:` first).
pub fn ws_echo_server(port: u16) -> Proc {
    let child = Command::new("python3")
        .arg(repo().join("tests/support_ws.py"))
        .args(["server", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("python3 websockets server (pip install websockets)");
    let p = Proc { child, log: None };
    wait_port(port);
    p
}

/// `tests/support_ws.py client URL N` (bounded by 30 s): sends N messages and a 1 MiB one,
/// checks each echo; a `wss://` URL is verified against `ca`. Its stdout says `ok N`.
pub fn ws_client(url: &str, n: usize, ca: Option<&Path>) -> String {
    let mut cmd = Command::new("timeout");
    cmd.args(["30", "python3"])
        .arg(repo().join("tests/support_ws.py"))
        .args(["client", url, &n.to_string()]);
    if let Some(ca) = ca {
        cmd.env("WS_CA", ca);
    }
    stdout_or_why(cmd.output().expect("python3 websockets client"))
}

/// Run `python3 ARGS`, quiet, and wait until `port` accepts.
/// A config with the pool `h2app` (one h2c server on `up_port`) and a server on `port` that
/// takes HTTP/1.1 and h2c, followed by `rest`: more of the server's keys, and its routes.
pub fn h2c_pool_config(port: u16, up_port: u16, rest: &str) -> String {
    format!(
        "[[upstream]]\nname = \"h2app\"\nservers = [\"127.0.0.1:{up_port}\"]\nprotocol = \"h2c\"\n\n\
         [[server]]\nlisten = [\"127.0.0.1:{port}\"]\nhttp2 = true\n{rest}"
    )
}

/// The route that sends everything to `h2app` (`h2c_pool_config`).
pub const H2APP_ROUTE: &str = "\n[[server.route]]\npath = \"/\"\nproxy = \"h2app\"\n";

/// `tests/support_h2c.py` (an h2c server, Python's `h2`) listening on `port`.
pub fn h2c_app(port: u16) -> Proc {
    let s = repo().join("tests/support_h2c.py").display().to_string();
    python(&[s.as_ref(), port.to_string().as_ref()], port)
}

pub fn python(args: &[&std::ffi::OsStr], port: u16) -> Proc {
    let child = Command::new("python3")
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn python3 (is python3 installed?)");
    let mut p = Proc { child, log: None };
    wait_port(port);
    // Something answered on the port: it must be this python (one that could not bind
    // has exited, and a stranger on its port would take the test's requests).
    if let Ok(Some(status)) = p.child.try_wait() {
        panic!("python3 {args:?} exited ({status}) though port {port} answers: another process holds it");
    }
    p
}

/// `python3 -m http.server` on `port`, serving `dir`.
pub fn python_http(dir: &Path, port: u16) -> Proc {
    let port_s = port.to_string();
    let args = [
        "-m",
        "http.server",
        &port_s,
        "--bind",
        "127.0.0.1",
        "--directory",
    ];
    let mut all: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    all.push(dir.as_os_str());
    python(&all, port)
}

/// A python upstream that answers every GET with the request head it received as body.
pub fn python_echo_head(port: u16) -> Proc {
    let script = r#"
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (self.requestline + "\r\n" + str(self.headers)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"#;
    let port_s = port.to_string();
    python(&["-c".as_ref(), script.as_ref(), port_s.as_ref()], port)
}

/// `tests/support_upstream.py` on `port`: an HTTP/1.1 keep-alive upstream with `/whoami`,
/// `/chunked`, `/close`, `/head`, `/slow` and `POST /echo`.
pub fn python_upstream(port: u16) -> Proc {
    let script = repo().join("tests/support_upstream.py");
    let port_s = port.to_string();
    python(&[script.as_os_str(), port_s.as_ref()], port)
}

/// `tests/support_app.py` on `port` named `name`: a stateful app (sessions in memory,
/// `/login`, `/session`, `/health` switchable with `/admin/down` and `/admin/up`).
pub fn python_app(port: u16, name: &str) -> Proc {
    let script = repo().join("tests/support_app.py");
    let port_s = port.to_string();
    python(&[script.as_os_str(), port_s.as_ref(), name.as_ref()], port)
}

/// A `[[listener]]` serving `root` over HTTP on `port`.
pub fn files_config(port: u16, root: &Path) -> String {
    format!(
        "[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"http\"\nroot = \"{}\"\n",
        root.display()
    )
}

/// The value of header `name` in a response head (case-insensitive name).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Run curl with `args` (silent, 20 s cap) and return its output.
pub fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("run curl (is curl installed?)")
}

/// `curl URL` → (status code, body).
pub fn get(url: &str) -> (u16, Vec<u8>) {
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "-",
            "-w",
            "\n%{http_code}",
            url,
        ])
        .output()
        .expect("run curl");
    let mut body = out.stdout;
    let nl = body
        .iter()
        .rposition(|&b| b == b'\n')
        .expect("curl -w output");
    let code = String::from_utf8_lossy(&body[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    body.truncate(nl);
    (code, body)
}

/// Run `nc` with `args`, feeding `input`; returns stdout. Bounded by `-w 5` and a 20 s cap.
pub fn nc(args: &[&str], input: &[u8]) -> Vec<u8> {
    let mut child = Command::new("timeout")
        .arg("20")
        .arg("nc")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("run nc (is netcat-openbsd installed?)");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(input).expect("write to nc");
    drop(stdin);
    let mut out = Vec::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_end(&mut out)
        .expect("read nc");
    let _ = child.wait();
    out
}

/// Send raw bytes to `port` (half-closing after them) and read the whole answer.
pub fn raw(port: u16, request: &[u8]) -> Vec<u8> {
    nc(&["-N", "-w", "5", "127.0.0.1", &port.to_string()], request)
}

/// Resident set size of `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS")
}

/// User + system CPU time of `pid`.
pub fn cpu_time(pid: u32) -> Duration {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // Fields after the command name (which is in parentheses and may hold spaces).
    let rest = &s[s.rfind(')').expect("stat format") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz.max(1))
}

/// Open file descriptors of `pid`.
pub fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .expect("read /proc fd")
}

/// Deterministic pseudo-random bytes.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Headless Chromium with a profile of its own, for pages that must render.
pub struct Chromium {
    bin: &'static str,
    user_dir: String,
}

const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

impl Chromium {
    /// The installed Chromium (its profile under `dir`); `None` (the test skips) only
    /// outside CI: in CI a missing Chromium fails the test.
    pub fn find(dir: &Path) -> Option<Chromium> {
        let bin = ["chromium", "chromium-browser"].into_iter().find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        });
        let Some(bin) = bin else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromium is required in CI"
            );
            eprintln!("SKIPPED: chromium not installed");
            return None;
        };
        let user_dir = format!("--user-data-dir={}", dir.join("profile").display());
        Some(Chromium { bin, user_dir })
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("timeout")
            .arg("60")
            .arg(self.bin)
            .args(CHROMIUM_FLAGS)
            .arg(&self.user_dir)
            .args(args)
            .output()
            .expect("chromium")
    }

    /// The DOM of `url` once loaded (`--dump-dom`).
    pub fn dump_dom(&self, url: &str) -> String {
        self.dump_dom_with(&[], url)
    }

    /// `dump_dom` with more flags (`--ignore-certificate-errors-spki-list=...`).
    pub fn dump_dom_with(&self, flags: &[&str], url: &str) -> String {
        let mut args = flags.to_vec();
        args.extend(["--dump-dom", url]);
        String::from_utf8_lossy(&self.run(&args).stdout).into_owned()
    }

    /// A 1024x768 screenshot of `url` into `png`; asserts a PNG was written.
    pub fn screenshot(&self, url: &str, png: &Path) {
        let shot = format!("--screenshot={}", png.display());
        let out = self.run(&[&shot, "--window-size=1024,768", url]);
        let bytes = std::fs::read(png).unwrap_or_default();
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG"),
            "no screenshot: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The body of `GET url` as text (any status).
pub fn body_of(url: &str) -> String {
    String::from_utf8_lossy(&get(url).1).into_owned()
}

/// Wait (bounded, 10 s) until `url` answers `want`; the last answer in the panic message.
pub fn wait_body(url: &str, want: &str) {
    let mut last = String::new();
    let ok = eventually(Duration::from_secs(10), || {
        last = body_of(url);
        last == want
    });
    assert!(ok, "{url}: wanted {want:?}, still {last:?}");
}

/// TCP connections to local port `port` in the ESTABLISHED state, seen by the kernel
/// (`/proc/net/tcp` and `tcp6`): whether a proxy has reached its upstream yet.
pub fn established_to(port: u16) -> usize {
    let want = format!(":{port:04X}");
    let mut n = 0;
    for f in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(f).unwrap_or_default();
        n += text
            .lines()
            .skip(1)
            .filter(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[2].ends_with(&want) && cols[3] == "01"
            })
            .count();
    }
    n
}

/// `python3 SCRIPT --port 0 ARGS...` for a test server that prints `listening on <port>` once
/// it accepts: the process and its port (a panic naming the script if it did not start).
pub fn python_listening(script: &str, args: &[&std::ffi::OsStr]) -> (Proc, u16) {
    use std::io::BufRead;
    let mut child = Command::new("python3")
        .arg(repo().join(script))
        .args(["--port", "0"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn python3 (bash scripts/setup.sh installs what the tests need)");
    let stdout = child.stdout.take().expect("stdout");
    let proc = Proc { child, log: None };
    let mut line = String::new();
    let _ = std::io::BufReader::new(stdout).read_line(&mut line);
    let port = line
        .trim()
        .strip_prefix("listening on ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{script} {args:?} did not start: {line:?}"));
    (proc, port)
}

/// One HTTP/1.1 GET of `path` (sent as it is, `..` and all) with extra `headers` (curl's
/// `-H` form): (status, head, body).
pub fn curl_get(port: u16, path: &str, headers: &[&str]) -> (u16, String, String) {
    let url = format!("http://127.0.0.1:{port}{path}");
    let mut args = vec!["--path-as-is", "-s", "-i"];
    for h in headers {
        args.extend(["-H", h]);
    }
    args.push(&url);
    let out = curl(&args);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_string(), body.to_string())
}

/// One HTTP/2 GET by `tests/support_h2_get.py` (prior knowledge; `extra`: its options):
/// (status, headers, body).
pub fn h2_get(port: u16, path: &str, extra: &[&str]) -> (u16, Vec<(String, String)>, String) {
    let out = Command::new("python3")
        .arg(repo().join("tests/support_h2_get.py"))
        .arg(port.to_string())
        .arg(path)
        .args(extra)
        .output()
        .expect("python3 support_h2_get.py (needs the h2 package)");
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text} {}", String::from_utf8_lossy(&out.stderr)));
    let headers = v["headers"]
        .as_array()
        .map(|hs| {
            hs.iter()
                .map(|h| {
                    let s = |i: usize| h[i].as_str().unwrap_or("").to_string();
                    (s(0), s(1))
                })
                .collect()
        })
        .unwrap_or_default();
    let status = v["status"].as_u64().unwrap_or(0) as u16;
    (
        status,
        headers,
        v["body"].as_str().unwrap_or("").to_string(),
    )
}

/// The value of `name` (any case) among `headers`.
pub fn h2_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The value of the Prometheus sample `name` (labels included, e.g.
/// `tether_store_up` or `tether_limit_requests_total{limit="api",result="allowed"}`) in
/// the text of a `/metrics` answer.
pub fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// The sample `name` of the `/metrics` listener on `port` (`None`: absent or no answer).
pub fn metric(port: u16, name: &str) -> Option<f64> {
    let (_, body) = get(&format!("http://127.0.0.1:{port}/metrics"));
    sample(&String::from_utf8_lossy(&body), name)
}

/// `tests/support_grpc.py client PORT MODE` (bounded by 120 s): grpcio calls through
/// tether on `port`; (success, stdout + stderr).
pub fn grpc_client(port: u16, mode: &str) -> (bool, String) {
    let out = Command::new("timeout")
        .arg("120")
        .arg("python3")
        .arg(repo().join("tests/support_grpc.py"))
        .args(["client", &port.to_string(), mode])
        .output()
        .expect("python3 with grpcio (scripts/setup.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}
