//! Pipe throughput: how many bytes per second tether-core moves, next to a plain `memcpy` of
//! the same bytes.
//!
//! One Criterion group, `pipe`, every case moving the same 16 MiB payload (256 chunks of
//! 64 KiB, each a `bytes::Bytes` slice of one allocation):
//!
//! - `memcpy`: copy the chunks into a destination buffer. The ceiling for anything that
//!   touches every byte once.
//! - `pipe_in_process`: the same chunks through `tether_core::PipeBuffer` the way the pump
//!   uses it (push while under `DEFAULT_THRESHOLD`, drain up to 64 slices at a time, then
//!   `consume`), with a memory sink that copies each slice into the destination buffer.
//! - `loopback_direct`: a client socket writes the payload straight to a socket on
//!   127.0.0.1 whose accepted end a reader thread drains. The kernel's own cost.
//! - `core_loopback`: the same, with a `tether_core::Core` in between: the client talks to a
//!   core listener whose session connects to the reader's listener and opens one pipe
//!   client → upstream. The core runs on its own thread, started once.
//!
//! Sockets are connected once; every iteration writes the payload and waits until the
//! reader has counted all of it. After Criterion, a short manual timing prints the ratios.
//!
//!     cargo bench --bench pipe

use std::hint::black_box;
use std::io::{self, IoSlice, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{Criterion, Throughput};
use tether_core::{ConnId, Core, Cx, Handle, PipeBuffer, Session, Sink, Source, DEFAULT_THRESHOLD};

/// Bytes moved per iteration.
const PAYLOAD: usize = 16 * 1024 * 1024;
/// Size of one `Bytes` chunk (the core reads at most this much per `read(2)` too).
const CHUNK: usize = 64 * 1024;
/// Slices handed to one drain, as the core's `writev` does.
const MAX_IOV: usize = 64;
/// How long one iteration may take before the bench gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// The payload as 64 KiB `Bytes` slices of one allocation.
fn payload() -> Vec<Bytes> {
    let data: Vec<u8> = (0..PAYLOAD).map(|i| (i * 31 + 7) as u8).collect();
    let data = Bytes::from(data);
    (0..PAYLOAD / CHUNK)
        .map(|i| data.slice(i * CHUNK..(i + 1) * CHUNK))
        .collect()
}

/// Copy every chunk into `dst`.
fn memcpy(chunks: &[Bytes], dst: &mut [u8]) -> usize {
    let mut at = 0;
    for c in chunks {
        dst[at..at + c.len()].copy_from_slice(c);
        at += c.len();
    }
    at
}

/// Move every chunk through `buf` into `dst`, the way the pump does: fill while under the
/// threshold, then drain one vectored batch into the memory sink.
fn through_pipe(chunks: &[Bytes], buf: &mut PipeBuffer, dst: &mut [u8]) -> usize {
    let mut src = chunks.iter();
    let mut src_done = false;
    let mut at = 0;
    loop {
        while !src_done && buf.len() < DEFAULT_THRESHOLD {
            match src.next() {
                Some(c) => buf.push(c.clone()),
                None => src_done = true,
            }
        }
        if buf.is_empty() {
            return at;
        }
        let moved = {
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = buf.slices(&mut iov);
            let mut moved = 0;
            for s in &iov[..n] {
                dst[at..at + s.len()].copy_from_slice(s);
                at += s.len();
                moved += s.len();
            }
            moved
        };
        buf.consume(moved);
    }
}

/// The session under test: connect to `upstream`, then pipe the client's bytes to it.
struct Forward {
    upstream: SocketAddr,
    client: Option<ConnId>,
}

impl Session for Forward {
    fn on_start(&mut self, cx: &mut Cx<'_>, client: ConnId) {
        self.client = Some(client);
        if let Err(e) = cx.connect(self.upstream) {
            eprintln!("bench session: connect to {}: {e}", self.upstream);
            cx.close();
        }
    }

    fn on_connect(&mut self, cx: &mut Cx<'_>, up: ConnId, result: io::Result<()>) {
        match (result, self.client) {
            (Ok(()), Some(client)) => {
                cx.pipe(Source::Conn(client), Sink::Conn(up));
            }
            (Err(e), _) => {
                eprintln!("bench session: connect to {}: {e}", self.upstream);
                cx.close();
            }
            (Ok(()), None) => cx.close(),
        }
    }
}

/// A client socket whose bytes end up at a reader thread that counts them.
struct Path {
    client: TcpStream,
    /// One message per `PAYLOAD` bytes counted; closed when the reader sees end-of-stream.
    done: Receiver<()>,
    reader: JoinHandle<()>,
}

impl Path {
    /// Start a reader thread on `listener`, then connect a client to `target` (which is the
    /// listener itself, or a core in front of it).
    fn open(listener: TcpListener, target: SocketAddr) -> Path {
        let (tx, done) = mpsc::channel();
        let reader = thread::spawn(move || {
            let (mut s, _) = listener.accept().expect("reader: accept");
            let mut buf = vec![0u8; 256 * 1024];
            let mut pending = 0;
            loop {
                match s.read(&mut buf) {
                    Ok(0) => return,
                    Ok(n) => {
                        pending += n;
                        while pending >= PAYLOAD {
                            pending -= PAYLOAD;
                            if tx.send(()).is_err() {
                                return;
                            }
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        eprintln!("reader: {e}");
                        return;
                    }
                }
            }
        });
        let client = TcpStream::connect(target).expect("connect the client");
        client.set_nodelay(true).expect("set TCP_NODELAY");
        Path {
            client,
            done,
            reader,
        }
    }

    /// Write the payload and wait until the reader has all of it.
    fn send(&mut self, chunks: &[Bytes]) {
        for c in chunks {
            self.client.write_all(c).expect("client write");
        }
        self.done
            .recv_timeout(PATIENCE)
            .expect("the reader did not get the whole payload in time");
    }

    /// Close the client; true if the reader saw the end of the stream (FIN made it through).
    fn close(self) -> bool {
        drop(self.client);
        match self.done.recv_timeout(Duration::from_secs(10)) {
            Err(RecvTimeoutError::Disconnected) => {
                let _ = self.reader.join();
                true
            }
            _ => false,
        }
    }
}

/// Everything the socket cases need, set up once.
struct Fixture {
    chunks: Vec<Bytes>,
    dst: Vec<u8>,
    buf: PipeBuffer,
    direct: Path,
    core: Path,
    handle: Handle,
    core_thread: JoinHandle<io::Result<()>>,
}

impl Fixture {
    fn start() -> Fixture {
        let chunks = payload();
        let mut dst = vec![0u8; PAYLOAD];
        let mut buf = PipeBuffer::default();
        // The in-process cases must really deliver the bytes: check once, untimed.
        assert_eq!(memcpy(&chunks, &mut dst), PAYLOAD);
        dst.fill(0);
        assert_eq!(through_pipe(&chunks, &mut buf, &mut dst), PAYLOAD);
        assert!(chunks
            .iter()
            .zip(dst.chunks(CHUNK))
            .all(|(c, d)| c[..] == d[..]));

        let any: SocketAddr = "127.0.0.1:0".parse().expect("a socket address");
        let listener = TcpListener::bind(any).expect("bind the direct reader");
        let target = listener.local_addr().expect("direct reader address");
        let direct = Path::open(listener, target);

        let upstream = TcpListener::bind(any).expect("bind the upstream reader");
        let up_addr = upstream.local_addr().expect("upstream reader address");
        let (tx, rx) = mpsc::channel();
        // `Core` holds non-`Send` sessions, so it is built on the thread that runs it.
        let core_thread = thread::spawn(move || -> io::Result<()> {
            let mut core = Core::new()?;
            let l = core.listen(
                any,
                Box::new(move |_| {
                    Box::new(Forward {
                        upstream: up_addr,
                        client: None,
                    })
                }),
            )?;
            let addr = core.local_addr(l).expect("the listener exists");
            let _ = tx.send((addr, core.handle()));
            core.run()
        });
        let (core_addr, handle) = rx.recv().expect("the core thread failed to start");
        let core = Path::open(upstream, core_addr);

        Fixture {
            chunks,
            dst,
            buf,
            direct,
            core,
            handle,
            core_thread,
        }
    }

    fn memcpy(&mut self) {
        black_box(memcpy(black_box(&self.chunks), &mut self.dst));
        black_box(&self.dst);
    }

    fn pipe(&mut self) {
        black_box(through_pipe(
            black_box(&self.chunks),
            &mut self.buf,
            &mut self.dst,
        ));
        black_box(&self.dst);
    }

    fn direct(&mut self) {
        self.direct.send(&self.chunks);
    }

    fn core(&mut self) {
        self.core.send(&self.chunks);
    }

    fn stop(self) {
        if !self.direct.close() {
            eprintln!("direct loopback: the reader did not see the end of the stream");
        }
        if !self.core.close() {
            eprintln!("core loopback: the upstream did not see the end of the stream");
        }
        self.handle.stop();
        match self.core_thread.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("core loop failed: {e}"),
            Err(_) => eprintln!("core thread panicked"),
        }
    }
}

/// One benchmark case: its name and one run of it over the payload.
type Case = (&'static str, fn(&mut Fixture));

/// The cases, in the order they run.
const CASES: [Case; 4] = [
    ("memcpy", Fixture::memcpy),
    ("pipe_in_process", Fixture::pipe),
    ("loopback_direct", Fixture::direct),
    ("core_loopback", Fixture::core),
];

fn bench(c: &mut Criterion, fx: &mut Fixture) {
    let mut g = c.benchmark_group("pipe");
    g.throughput(Throughput::Bytes(PAYLOAD as u64));
    g.sample_size(20);
    g.warm_up_time(Duration::from_secs(1));
    g.measurement_time(Duration::from_secs(4));
    for (name, run) in CASES {
        g.bench_function(name, |b| b.iter(|| run(fx)));
    }
    g.finish();
}

/// GiB/s for one call that took `secs`.
fn gibps(secs: f64) -> f64 {
    PAYLOAD as f64 / secs / (1u64 << 30) as f64
}

/// A quick manual timing for a one-line ratio summary (Criterion's output is the record):
/// the four cases take turns, round after round, so drifting noise hits them alike, and each
/// case's median call gives its figure.
fn summary(fx: &mut Fixture) {
    const ROUNDS: usize = 101;
    let mut secs = vec![Vec::with_capacity(ROUNDS); CASES.len()];
    for _ in 0..ROUNDS {
        for ((_, f), s) in CASES.iter().zip(&mut secs) {
            let t = Instant::now();
            f(fx);
            s.push(t.elapsed().as_secs_f64());
        }
    }
    let rate: Vec<f64> = secs
        .iter_mut()
        .map(|s| {
            s.sort_by(f64::total_cmp);
            gibps(s[ROUNDS / 2])
        })
        .collect();
    let figures: Vec<String> = CASES
        .iter()
        .zip(&rate)
        .map(|((name, _), r)| format!("{name} {r:.2}"))
        .collect();
    println!(
        "summary (median of {ROUNDS} interleaved rounds, GiB/s): {}",
        figures.join(", ")
    );
    println!(
        "ratios: pipe/memcpy {:.2}, core/memcpy {:.3}, core/direct {:.2}",
        rate[1] / rate[0],
        rate[3] / rate[0],
        rate[3] / rate[2]
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let has = |a: &str| args.iter().any(|x| x == a);
    let benchmarking = has("--bench") && !has("--test") && !has("--list");
    let mut fx = Fixture::start();
    let mut c = Criterion::default().configure_from_args();
    bench(&mut c, &mut fx);
    c.final_summary();
    if benchmarking && !args.iter().any(|x| x.starts_with("--profile-time")) {
        summary(&mut fx);
    }
    fx.stop();
}
