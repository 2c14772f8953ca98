//! Measures what basic auth costs an event loop while 20 clients keep sending wrong
//! passwords against bcrypt cost 10 entries.
//!
//! ```sh
//! cargo run --release -p tether-auth --example loop_latency [-- SECONDS_PER_PHASE]
//! ```
//!
//! The main thread plays the loop: every 200 µs a request of an already authenticated
//! client arrives (its success is cached, so `check` answers at once). In the second
//! phase 20 attacker clients each resubmit a wrong password as soon as their previous one
//! was answered (the callback queues the answer as a `mio::Waker` would; a `Busy` answer
//! is retried on the next tick). Printed per phase: the time the loop's thread spends in
//! each `check` call, and the latency of the other client's requests (from their arrival
//! to their answer: the loop's own delay included). Also printed: how long a first login
//! waits behind the attackers' queue, the honest cost of a shared pool.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use tether_auth::{AuthResult, Htpasswd, Options, Verifier};

const ATTACKERS: usize = 20;
const TICK: Duration = Duration::from_micros(200);

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
        "n={:>6}  p50={:>7.1} us  p99={:>7.1} us  max={:>8.1} us",
        samples.len(),
        at(0.5),
        at(0.99),
        at(1.0)
    )
}

struct Phase {
    cached_check: Vec<Duration>,
    attacker_check: Vec<Duration>,
    latency: Vec<Duration>,
    verifications: u64,
    busy: u64,
    login_wait: Option<Duration>,
}

fn run_phase(
    verifier: &Verifier,
    file: &Arc<Htpasswd>,
    seconds: f64,
    attack: bool,
    login: Option<&[u8]>,
) -> Phase {
    let cached = basic("alice", "alice-pw");
    let wrong: Vec<Vec<u8>> = (0..ATTACKERS)
        .map(|i| basic("alice", &format!("guess-{i}")))
        .collect();
    let (answers_tx, answers_rx) = mpsc::channel::<(usize, AuthResult)>();
    let mut to_send: Vec<usize> = if attack {
        (0..ATTACKERS).collect()
    } else {
        vec![]
    };
    let before = verifier.stats();
    let mut phase = Phase {
        cached_check: Vec::new(),
        attacker_check: Vec::new(),
        latency: Vec::new(),
        verifications: 0,
        busy: 0,
        login_wait: None,
    };
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(seconds);
    let mut login_sent: Option<Instant> = None;
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
            if who == usize::MAX {
                if let Some(sent) = login_sent {
                    phase.login_wait = Some(sent.elapsed());
                }
                assert!(matches!(answer, AuthResult::Ok { .. }), "{answer:?}");
            } else {
                assert_eq!(answer, AuthResult::Denied);
                to_send.push(who);
            }
        }
        // The attackers' next tries.
        for who in std::mem::take(&mut to_send) {
            let tx = answers_tx.clone();
            let t = Instant::now();
            let answer = verifier.check(
                file,
                Some(&wrong[who]),
                Box::new(move |r| {
                    let _ = tx.send((who, r));
                }),
            );
            phase.attacker_check.push(t.elapsed());
            match answer {
                None => {}
                Some(AuthResult::Busy) => to_send.push(who),
                Some(other) => panic!("a wrong password answered at once: {other:?}"),
            }
        }
        // A first login half way through.
        if let (Some(header), None) = (login, login_sent) {
            if arrival >= start + Duration::from_secs_f64(seconds / 2.0) {
                let tx = answers_tx.clone();
                login_sent = Some(Instant::now());
                let answer = verifier.check(
                    file,
                    Some(header),
                    Box::new(move |r| {
                        let _ = tx.send((usize::MAX, r));
                    }),
                );
                assert_eq!(answer, None, "a first login needs a verification");
            }
        }
        // The other client's request.
        let t = Instant::now();
        let answer = verifier.check(file, Some(&cached), Box::new(|_| {}));
        let done = Instant::now();
        phase.cached_check.push(done - t);
        phase.latency.push(done - arrival);
        assert!(matches!(answer, Some(AuthResult::Ok { .. })), "{answer:?}");
    }
    let after = verifier.stats();
    // The first login may still wait behind the attackers' queue: wait for it (bounded).
    if let (Some(sent), None) = (login_sent, phase.login_wait) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while let Ok((who, _)) =
            answers_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if who == usize::MAX {
                phase.login_wait = Some(sent.elapsed());
                break;
            }
        }
    }
    phase.verifications = after.verifications - before.verifications;
    phase.busy = after.busy - before.busy;
    phase
}

fn main() -> Result<(), String> {
    let seconds: f64 = match std::env::args().nth(1) {
        Some(s) => s
            .parse()
            .map_err(|_| format!("not a number of seconds: {s:?}"))?,
        None => 3.0,
    };
    let hash = |pw: &str| bcrypt::hash(pw, 10).map_err(|e| e.to_string());
    // The format of `htpasswd -B -C 10`.
    let text = format!(
        "alice:{}\nbob:{}\n",
        hash("alice-pw")?.replacen("$2b$", "$2y$", 1),
        hash("bob-pw")?.replacen("$2b$", "$2y$", 1)
    );
    let file = Arc::new(Htpasswd::parse(&text, "bench-users").map_err(|e| e.to_string())?);
    let options = Options::default();
    let verifier = Verifier::new(&options)?;
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("load average at start: {}", load.trim());
    println!(
        "bcrypt cost 10, {} helper thread(s), queue {}, {} attackers, a request every {} us, {seconds} s per phase",
        options.threads,
        options.queue,
        ATTACKERS,
        TICK.as_micros()
    );

    // alice logs in once; her later requests are cache hits.
    let (tx, rx) = mpsc::channel();
    let t = Instant::now();
    let first = verifier.check(
        &file,
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
        "one bcrypt cost 10 verification (first login): {:.1} ms -> {answer:?}",
        t.elapsed().as_secs_f64() * 1e3
    );

    let bob = basic("bob", "bob-pw");
    for (name, attack) in [("baseline", false), ("20 wrong-password clients", true)] {
        let mut p = run_phase(
            &verifier,
            &file,
            seconds,
            attack,
            attack.then_some(&bob[..]),
        );
        println!("\n{name}:");
        println!(
            "  check() on the loop, cached client  {}",
            summary(&mut p.cached_check)
        );
        if attack {
            println!(
                "  check() on the loop, attackers      {}",
                summary(&mut p.attacker_check)
            );
        }
        println!(
            "  other client's request latency      {}",
            summary(&mut p.latency)
        );
        println!(
            "  wrong passwords verified: {} ({:.0}/s), answered Busy: {}",
            p.verifications,
            p.verifications as f64 / seconds,
            p.busy
        );
        if let Some(wait) = p.login_wait {
            println!(
                "  a first login (bob) behind the attackers' queue: {:.0} ms",
                wait.as_secs_f64() * 1e3
            );
        }
    }
    Ok(())
}
