//! The heartbeat: a thread of the master that asks the worker's admin listener
//! `GET /healthz` every `heartbeat_interval` and reports each answer (or its absence) to the
//! master's loop, which counts misses (`mod.rs`). The request is answered by the worker's
//! event loop itself, so a hung loop misses it even while the process lives.
//!
//! One probe waits at most `min(interval, 2 s)` for the whole answer.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Event;

/// What the heartbeat thread probes, changed by a reload.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    pub addr: SocketAddr,
    pub interval: Duration,
}

/// Start the heartbeat thread; it runs as long as the master.
pub fn start(target: Arc<Mutex<Target>>, events: Sender<Event>) -> std::io::Result<()> {
    std::thread::Builder::new()
        .name("heartbeat".into())
        .spawn(move || loop {
            let t = *target.lock().unwrap_or_else(|p| p.into_inner());
            std::thread::sleep(t.interval);
            let sent = Instant::now();
            let ok = probe(t.addr, t.interval.min(Duration::from_secs(2)));
            if events.send(Event::Heartbeat { ok, sent }).is_err() {
                return;
            }
        })?;
    Ok(())
}

/// One `GET /healthz`: true for a `200` within `limit`.
pub fn probe(addr: SocketAddr, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let Ok(mut s) = TcpStream::connect_timeout(&addr, limit) else {
        return false;
    };
    let req = "GET /healthz HTTP/1.1\r\nHost: tether\r\nConnection: close\r\n\r\n";
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || s.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => return false,
        }
    }
    answer.starts_with(b"HTTP/1.1 200 ")
}
