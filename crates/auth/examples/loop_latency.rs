//! Measures what basic auth costs an event loop while 20 clients keep sending wrong
//! passwords against bcrypt cost 10 entries.
//!
//! ```sh
//! cargo run --release -p tether-auth --example loop_latency [-- SECONDS_PER_SLICE ROUNDS]
//! ```
//!
//! The main thread plays the loop: every 200 µs a request of an already authenticated
//! client arrives (its success is cached, so `check` answers at once). Each round runs
//! three slices, so that the machine's other load falls on all three alike:
//!
//! - `baseline`: only that client;
//! - `attack`: 20 attacker clients each send a new wrong password as soon as their previous
//!   one was answered (the callback queues the answer as a `mio::Waker` would; `Busy` is
//!   retried on the next tick), and one first login of a legitimate user half way through;
//! - `inline` (the control): what the same loop would suffer if it verified hashes itself,
//!   with only ONE wrong password per second.
//!
//! Printed per slice kind: the time the loop's thread spends in each `check` call and the
//! other client's request latency (arrival to answer, the loop's own scheduling delay
//! included), and how long the first logins waited behind the attackers' queue.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tether_auth::{AuthResult, Htpasswd, Options, Verifier};

const ATTACKERS: usize = 20;
const TICK: Duration = Duration::from_micros(200);
const LOGIN: usize = usize::MAX;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Baseline,
    Attack,
    Inline,
}

#[derive(Default)]
struct Samples {
    cached_check: Vec<Duration>,
    attacker_check: Vec<Duration>,
    latency: Vec<Duration>,
    login_waits: Vec<Duration>,
    wrong_verified: u64,
    busy: u64,
    seconds: f64,
}

fn basic(user: &str, password: &str) -> Vec<u8> {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {token}").into_bytes()
}

/// p50, p99 and max of `samples`, in microseconds.
fn summary(samples: &mut [Duration]) -> String {
    if samples.is_empty() {
        return "no samples".to_string();
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    format!(
        "n={:>6}  p50={:>8.1} us  p99={:>8.1} us  max={:>9.1} us",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

struct Bench {
    verifier: Verifier,
    file: Arc<Htpasswd>,
    alice_hash: String,
}

impl Bench {
    /// One slice of `kind`, its samples added to `out`. `login` is a first login sent half
    /// way through an attack slice.
    fn slice(&self, kind: Kind, seconds: f64, login: &[u8], out: &mut Samples) {
        let cached = basic("alice", "alice-pw");
        let wrong: Vec<Vec<u8>> = (0..ATTACKERS)
            .map(|i| basic("alice", &format!("guess-{i}")))
            .collect();
        let (answers_tx, answers_rx) = mpsc::channel::<(usize, AuthResult)>();
        let mut to_send: Vec<usize> = if kind == Kind::Attack {
            (0..ATTACKERS).collect()
        } else {
            vec![]
        };
        let mut outstanding = 0usize;
        let before = self.verifier.stats();
        let start = Instant::now();
        let end = start + Duration::from_secs_f64(seconds);
        let mut login_sent: Option<Instant> = None;
        let mut next_inline = start + Duration::from_millis(500);
        let mut next = start;
        while next < end {
            // Sleep until the next request arrives, as a loop waits in epoll.
            let now = Instant::now();
            if next > now {
                std::thread::sleep(next - now);
            }
            let arrival = next;
            next += TICK;

            // The answers the helper threads queued (the "waker" events).
            while let Ok((who, answer)) = answers_rx.try_recv() {
                outstanding -= 1;
                if who == LOGIN {
                    assert!(matches!(answer, AuthResult::Ok { .. }), "{answer:?}");
                    if let Some(sent) = login_sent {
                        out.login_waits.push(sent.elapsed());
                    }
                } else {
                    assert_eq!(answer, AuthResult::Denied);
                    out.wrong_verified += 1;
                    to_send.push(who);
                }
            }
            // The attackers' next tries.
            for who in std::mem::take(&mut to_send) {
                let tx = answers_tx.clone();
                let t = Instant::now();
                let answer = self.verifier.check(
                    &self.file,
                    Some(&wrong[who]),
                    Box::new(move |r| {
                        let _ = tx.send((who, r));
                    }),
                );
                out.attacker_check.push(t.elapsed());
                match answer {
                    None => outstanding += 1,
                    Some(AuthResult::Busy) => to_send.push(who),
                    Some(other) => panic!("a wrong password answered at once: {other:?}"),
                }
            }
            // A first login half way through an attack.
            let half = start + Duration::from_secs_f64(seconds / 2.0);
            if kind == Kind::Attack && login_sent.is_none() && arrival >= half {
                let tx = answers_tx.clone();
                login_sent = Some(Instant::now());
                let answer = self.verifier.check(
                    &self.file,
                    Some(login),
                    Box::new(move |r| {
                        let _ = tx.send((LOGIN, r));
                    }),
                );
                assert_eq!(answer, None, "a first login needs a verification");
                outstanding += 1;
            }
            // The control: one wrong password per second hashed on the loop itself.
            if kind == Kind::Inline && arrival >= next_inline {
                next_inline += Duration::from_secs(1);
                let ok = bcrypt::verify("guess", &self.alice_hash).unwrap_or(false);
                assert!(!ok);
                out.wrong_verified += 1;
            }
            // The other client's request.
            let t = Instant::now();
            let answer = self
                .verifier
                .check(&self.file, Some(&cached), Box::new(|_| {}));
            let done = Instant::now();
            out.cached_check.push(done - t);
            out.latency.push(done - arrival);
            assert!(matches!(answer, Some(AuthResult::Ok { .. })), "{answer:?}");
        }
        // Let the attackers' last tries (and the login) finish outside the measurement, so
        // the next slice starts quiet.
        let deadline = Instant::now() + Duration::from_secs(120);
        while outstanding > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            match answers_rx.recv_timeout(left) {
                Ok((who, _)) => {
                    outstanding -= 1;
                    if who == LOGIN {
                        if let Some(sent) = login_sent {
                            out.login_waits.push(sent.elapsed());
                        }
                    }
                }
                Err(e) => panic!("answers still missing after 120 s: {e}"),
            }
        }
        let after = self.verifier.stats();
        out.busy += after.busy - before.busy;
        out.seconds += seconds;
    }
}

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let mut number = |default: f64| -> Result<f64, String> {
        match args.next() {
            Some(s) => s.parse().map_err(|_| format!("not a number: {s:?}")),
            None => Ok(default),
        }
    };
    let seconds = number(1.0)?;
    let rounds = number(6.0)? as usize;

    // The format of `htpasswd -B -C 10`: alice, and one user per round for a first login.
    let hash = |pw: &str| -> Result<String, String> {
        let h = bcrypt::hash(pw, 10).map_err(|e| e.to_string())?;
        Ok(h.replacen("$2b$", "$2y$", 1))
    };
    let alice_hash = hash("alice-pw")?;
    let mut text = format!("alice:{alice_hash}\n");
    for i in 0..rounds {
        text += &format!("login{i}:{}\n", hash("login-pw")?);
    }
    let file = Arc::new(Htpasswd::parse(&text, "bench-users").map_err(|e| e.to_string())?);
    let options = Options::default();
    let bench = Bench {
        verifier: Verifier::new(&options)?,
        file,
        alice_hash,
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    println!(
        "bcrypt cost 10, {} helper thread(s), queue {}, {ATTACKERS} attackers, a request every {} us, \
         {rounds} rounds of {seconds} s slices",
        options.threads,
        options.queue,
        TICK.as_micros()
    );

    // alice logs in once; her later requests are cache hits.
    let (tx, rx) = mpsc::channel();
    let t = Instant::now();
    let first = bench.verifier.check(
        &bench.file,
        Some(&basic("alice", "alice-pw")),
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    if first.is_some() {
        return Err(format!("the first login answered at once: {first:?}"));
    }
    let answer = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|e| format!("no answer to the first login: {e}"))?;
    println!(
        "one bcrypt cost 10 verification on a helper thread: {:.1} ms -> {answer:?}",
        t.elapsed().as_secs_f64() * 1e3
    );

    let kinds = [
        (Kind::Baseline, "baseline (no attack)"),
        (
            Kind::Attack,
            "20 wrong-password clients, hashes on the helper thread",
        ),
        (
            Kind::Inline,
            "control: 1 wrong password/s hashed on the loop itself",
        ),
    ];
    let mut samples: Vec<Samples> = kinds.iter().map(|_| Samples::default()).collect();
    for round in 0..rounds {
        let login = basic(&format!("login{round}"), "login-pw");
        for ((kind, _), out) in kinds.iter().zip(samples.iter_mut()) {
            bench.slice(*kind, seconds, &login, out);
        }
    }
    for ((kind, name), s) in kinds.iter().zip(samples.iter_mut()) {
        println!("\n{name}:");
        println!(
            "  check() on the loop, cached client  {}",
            summary(&mut s.cached_check)
        );
        if *kind == Kind::Attack {
            println!(
                "  check() on the loop, attackers      {}",
                summary(&mut s.attacker_check)
            );
        }
        println!(
            "  other client's request latency      {}",
            summary(&mut s.latency)
        );
        if *kind != Kind::Baseline {
            println!(
                "  wrong passwords answered during the slices: {} ({:.1}/s), Busy: {}",
                s.wrong_verified,
                s.wrong_verified as f64 / s.seconds,
                s.busy
            );
        }
        if !s.login_waits.is_empty() {
            let ms: Vec<String> = s
                .login_waits
                .iter()
                .map(|d| format!("{:.0}", d.as_secs_f64() * 1e3))
                .collect();
            println!(
                "  first logins behind the attackers' queue: {} ms",
                ms.join(", ")
            );
        }
    }
    Ok(())
}
