//! The `tcp` listener end to end: concurrency, an unreachable upstream, backpressure,
//! idle cost, half-way closes and descriptor hygiene.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::*;

fn tcp_config(port: u16, upstream: u16) -> String {
    format!("[[listener]]\nlisten = \"127.0.0.1:{port}\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:{upstream}\"\n")
}

#[test]
fn upstream_down_closes_client_without_a_byte() {
    let dir = TempDir::new("tcp-down");
    let (port, dead) = (free_port(), free_port());
    let t = tether(&dir, &tcp_config(port, dead), &[port]);
    for _ in 0..3 {
        let mut s = TcpStream::connect(addr(port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => assert!(buf.is_empty(), "got {buf:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
    // And with a real client: nc prints nothing and exits.
    assert!(nc(&["-w", "5", "127.0.0.1", &port.to_string()], b"hello").is_empty());
    assert!(t.wait_log("unreachable"), "{}", t.log_text());
}

#[test]
fn hundred_concurrent_clients_all_served() {
    let dir = TempDir::new("tcp-100");
    let body = noise(64 * 1024, 7);
    dir.write("up/data.bin", &body);
    let (up, port, http_port) = (free_port(), free_port(), free_port());
    let _py = python_http(&dir.path().join("up"), up);
    let config = format!(
        "{}\n{}",
        tcp_config(port, up),
        files_config(http_port, &dir.path().join("up"))
    );
    let _t = tether(&dir, &config, &[port, http_port]);
    for p in [port, http_port] {
        let children: Vec<_> = (0..100)
            .map(|i| {
                Command::new("curl")
                    .args(["-sS", "--max-time", "30", "-o"])
                    .arg(dir.path().join(format!("out-{p}-{i}")))
                    .arg(format!("http://127.0.0.1:{p}/data.bin"))
                    .stdout(Stdio::null())
                    .spawn()
                    .expect("spawn curl")
            })
            .collect();
        for (i, mut c) in children.into_iter().enumerate() {
            assert!(
                c.wait().expect("wait curl").success(),
                "client {i} on {p} failed"
            );
            let got = std::fs::read(dir.path().join(format!("out-{p}-{i}"))).expect("output");
            assert!(
                got == body,
                "client {i} on {p}: wrong body ({} bytes)",
                got.len()
            );
        }
    }
}

/// An upstream that accepts and never reads; keeps its sockets until dropped.
fn deaf_upstream() -> (u16, Arc<AtomicBool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let stop2 = stop.clone();
    l.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        while !stop2.load(Ordering::SeqCst) {
            match l.accept() {
                Ok((s, _)) => held.push(s),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    (port, stop)
}

#[test]
fn backpressure_bounds_memory_and_others_are_served() {
    let dir = TempDir::new("tcp-bp");
    dir.write("www/ok.txt", b"still here\n");
    let (deaf, stop) = deaf_upstream();
    let (port, http_port) = (free_port(), free_port());
    let config = format!(
        "{}\n{}",
        tcp_config(port, deaf),
        files_config(http_port, &dir.path().join("www"))
    );
    let t = tether(&dir, &config, &[port, http_port]);
    let pid = t.pid();

    // Push for 4 s with non-blocking writes into a tunnel whose upstream never reads.
    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_nonblocking(true).unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let start = Instant::now();
    let (mut pushed, mut peak_rss) = (0usize, 0u64);
    while start.elapsed() < Duration::from_secs(4) {
        match s.write(&chunk) {
            Ok(n) => pushed += n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Err(e) => panic!("write failed: {e}"),
        }
        peak_rss = peak_rss.max(rss_kib(pid));
    }
    // The kernel buffers fill and then tether stops reading: far less than 4 s of loopback.
    assert!(pushed < 64 << 20, "pushed {pushed} bytes: no backpressure");
    assert!(peak_rss < 64 * 1024, "tether RSS reached {peak_rss} KiB");

    // Meanwhile another client is served.
    let (code, body) = get(&format!("http://127.0.0.1:{http_port}/ok.txt"));
    assert_eq!((code, body.as_slice()), (200, &b"still here\n"[..]));
    stop.store(true, Ordering::SeqCst);
}

#[test]
fn hundred_idle_connections_cost_almost_no_cpu() {
    let dir = TempDir::new("tcp-idle");
    let (deaf, stop) = deaf_upstream();
    let port = free_port();
    let t = tether(&dir, &tcp_config(port, deaf), &[port]);
    let conns: Vec<TcpStream> = (0..100)
        .map(|_| TcpStream::connect(addr(port)).expect("connect"))
        .collect();
    // Let the 100 tunnels get established before measuring.
    std::thread::sleep(Duration::from_millis(300));
    let before = cpu_time(t.pid());
    std::thread::sleep(Duration::from_secs(5));
    let spent = cpu_time(t.pid()) - before;
    assert!(
        spent < Duration::from_millis(50),
        "100 idle connections cost {spent:?} of CPU in 5 s"
    );
    drop(conns);
    stop.store(true, Ordering::SeqCst);
}

/// An upstream that sends `greeting` on every connection. With `close_after` it then
/// closes; otherwise it reads, and for a connection that sent bytes reports whether it saw
/// that client's end (EOF or reset) within 5 s. (tether's readiness probe also connects,
/// sends nothing, and is not reported.)
fn greeting_upstream(greeting: &'static [u8], close_after: bool) -> (u16, mpsc::Receiver<bool>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for _ in 0..16 {
            let Ok((mut s, _)) = l.accept() else { return };
            let tx = tx.clone();
            std::thread::spawn(move || {
                let _ = s.write_all(greeting);
                if close_after {
                    return; // drop: the upstream closes half-way
                }
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                let mut buf = [0u8; 1024];
                let mut got = 0;
                let ended = loop {
                    match s.read(&mut buf) {
                        Ok(0) => break true,
                        Ok(n) => got += n,
                        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                        Err(_) => break false,
                    }
                };
                if got > 0 {
                    let _ = tx.send(ended);
                }
            });
        }
    });
    (port, rx)
}

#[test]
fn client_closing_half_way_closes_upstream_and_frees_fds() {
    let dir = TempDir::new("tcp-client-close");
    let (up, ended) = greeting_upstream(b"hello, client\n", false);
    let port = free_port();
    let t = tether(&dir, &tcp_config(port, up), &[port]);
    let baseline = fd_count(t.pid());

    let mut s = TcpStream::connect(addr(port)).expect("connect");
    let mut buf = [0u8; 14];
    s.read_exact(&mut buf).expect("greeting through tether");
    assert_eq!(&buf, b"hello, client\n");
    s.write_all(b"partial requ").unwrap();
    drop(s); // the client goes away half-way

    assert!(
        ended.recv_timeout(Duration::from_secs(10)).unwrap_or(false),
        "upstream never saw the close"
    );
    assert!(
        eventually(Duration::from_secs(10), || fd_count(t.pid()) <= baseline),
        "fds: {} now, {baseline} before; {}\n{}",
        fd_count(t.pid()),
        fd_list(t.pid()),
        t.log_text()
    );
}

/// The descriptors of `pid`, for a failure message.
fn fd_list(pid: u32) -> String {
    let out = Command::new("ls")
        .arg("-l")
        .arg(format!("/proc/{pid}/fd"))
        .output();
    let ss = Command::new("ss").args(["-tanp"]).output();
    let text = |o: std::io::Result<std::process::Output>| {
        o.map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let ss = text(ss);
    let mine: Vec<&str> = ss
        .lines()
        .filter(|l| l.contains(&format!("pid={pid},")))
        .collect();
    format!("{}\n{}", text(out), mine.join("\n"))
}

#[test]
fn upstream_closing_half_way_closes_client_and_frees_fds() {
    let dir = TempDir::new("tcp-up-close");
    let (up, _) = greeting_upstream(b"partial respon", true);
    let port = free_port();
    let t = tether(&dir, &tcp_config(port, up), &[port]);
    let baseline = fd_count(t.pid());

    let mut s = TcpStream::connect(addr(port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got)
        .expect("EOF after the upstream closed");
    assert_eq!(got, b"partial respon");
    s.shutdown(Shutdown::Both).ok();
    drop(s);
    assert!(
        eventually(Duration::from_secs(10), || fd_count(t.pid()) <= baseline),
        "fds: {} now, {baseline} before",
        fd_count(t.pid())
    );
}

#[test]
fn half_close_passes_on_fin_and_the_answer_still_arrives() {
    // nc -N sends its request, then a FIN; the upstream answers after that FIN.
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let up = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..4 {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut req = Vec::new();
            let _ = s.read_to_end(&mut req); // until tether passes on the client's FIN
            req.reverse();
            let _ = s.write_all(&req);
        }
    });
    let dir = TempDir::new("tcp-half");
    let port = free_port();
    let _t = tether(&dir, &tcp_config(port, up), &[port]);
    assert_eq!(raw(port, b"stressed"), b"desserts");
}
