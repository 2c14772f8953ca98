//! A fleet, end to end on loopback: three tether instances behind HAProxy (PROXY protocol
//! v2), sharing learned sessions through a Sentinel-managed Redis (one master, one replica,
//! three sentinels) — and, in a second run, a three-master Redis Cluster — with the
//! backends found through a real DNS server (`dnsmasq --hostsdir`, which re-reads its
//! files) on 127.0.0.2, 127.0.0.3 and 127.0.0.4, each keeping its users' sessions in its
//! own memory (`tests/support_app.py`), so a user sent to the wrong backend visibly loses
//! the session.
//!
//! While users keep clicking (30 at the start, one more every second): the Redis master is
//! killed (Sentinel promotes the replica; Sentinel run only), a backend is added to DNS, one
//! is removed from DNS (drained: its users stay until `drain_timeout_ms`, then move), and
//! one tether instance is restarted. Reported: requests failed (outside and inside the
//! failover window, which is measured: from the kill until every instance's store is up
//! again), users who lost their session (apart from those of the removed backend), and the
//! time until the new backend gets its first user. `FLEET_SCALE` (default 1) stretches the
//! timeline: `benches/fleet.sh` runs it longer.

mod common;
mod dns_support;
mod fleet_support;

use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use dns_support::*;
use fleet_support::*;

/// The two runs share the machine's two cores: one at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const HOSTS: [&str; 3] = ["127.0.0.2", "127.0.0.3", "127.0.0.4"];

fn scale() -> f64 {
    std::env::var("FLEET_SCALE")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .filter(|s| *s > 0.0)
        .unwrap_or(1.0)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s * scale())
}

fn hosts(addrs: &[&str]) -> String {
    addrs.iter().map(|a| format!("{a} app.fleet\n")).collect()
}

struct Instance {
    dir: TempDir,
    config: String,
    port: u16,
    metrics: u16,
    proc: Option<Proc>,
}

impl Instance {
    fn start(i: usize, store: &str, dns: u16, app_port: u16, drain_ms: u64) -> Instance {
        let dir = TempDir::new(&format!("fleet-t{i}"));
        let (port, metrics) = (free_port(), free_port());
        let config = format!(
            "{store}\non_store_error = \"open\"\n\
             [metrics]\nlisten = \"127.0.0.1:{metrics}\"\n\
             [[upstream]]\nname = \"app\"\n\
             servers = [{{ dns = \"app.fleet\", port = {app_port} }}]\n\
             resolver = [\"127.0.0.1:{dns}\"]\nresolve_min_ms = 200\nresolve_max_ms = 1000\n\
             drain_timeout_ms = {drain_ms}\n\
             balance = \"learn\"\nsession_cookie = \"SID\"\n\
             [upstream.health]\npath = \"/health\"\ninterval_ms = 200\n\
             [[server]]\nlisten = [\"127.0.0.1:{port}\"]\n\
             proxy_protocol = {{ trusted = [\"127.0.0.1\"] }}\n\
             [[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
        );
        let proc = Some(tether(&dir, &config, &[port, metrics]));
        Instance {
            dir,
            config,
            port,
            metrics,
            proc,
        }
    }

    /// `tether quit` (SIGTERM: finish what is in flight, then exit), then start again on
    /// the same ports. Returns how long it was away.
    fn restart(&mut self) -> Duration {
        let began = Instant::now();
        if let Some(mut p) = self.proc.take() {
            // SAFETY: kill has no memory preconditions.
            unsafe { libc::kill(p.child_pid() as libc::pid_t, libc::SIGTERM) };
            let gone = eventually(Duration::from_secs(20), || !p.alive());
            assert!(gone, "tether did not exit on SIGTERM:\n{}", p.log_text());
        }
        self.proc = Some(tether(&self.dir, &self.config, &[self.port, self.metrics]));
        began.elapsed()
    }

    fn store_up(&self) -> bool {
        metric(self.metrics, "tether_store_up") == Some(1.0)
    }
}

/// What one run measured.
struct Report {
    requests: u64,
    users: usize,
    failed_outside: Vec<String>,
    failed_inside: usize,
    lost_other: Vec<String>,
    lost_removed: usize,
    lost_in_window: usize,
    failover: Option<Duration>,
    first_user_on_new: Duration,
    new_logins_on_removed: usize,
    restart_away: Duration,
    homes: String,
}

impl Report {
    fn print(&self, name: &str) {
        println!(
            "fleet[{name}]: {} requests from {} users; failed outside the failover window: {}, \
             inside: {}; failover window: {}; lost sessions: {} (users of the removed \
             backend: {}, created in the failover window: {}); new backend's first user \
             after {} ms; logins on the removed backend after its removal: {}; restarted \
             instance away {} ms; sessions per backend at the end: {}",
            self.requests,
            self.users,
            self.failed_outside.len(),
            self.failed_inside,
            self.failover
                .map(|d| format!("{} ms", d.as_millis()))
                .unwrap_or_else(|| "none (no Redis failover in this run)".into()),
            self.lost_other.len(),
            self.lost_removed,
            self.lost_in_window,
            self.first_user_on_new.as_millis(),
            self.new_logins_on_removed,
            self.restart_away.as_millis(),
            self.homes
        );
    }
}

enum StoreKind {
    Sentinel(SentinelGroup),
    Cluster(Cluster),
}

fn run(name: &str, mut store: StoreKind, dir: &TempDir) -> Report {
    let app_port = free_port_on_all(&HOSTS);
    let _b2 = app_on("127.0.0.2", app_port, "b2");
    let _b3 = app_on("127.0.0.3", app_port, "b3");
    let _b4 = app_on("127.0.0.4", app_port, "b4");
    let dns = Dnsmasq::start(dir, &hosts(&["127.0.0.2", "127.0.0.3"]), &[]);
    let store_line = match &store {
        StoreKind::Sentinel(g) => g.store_line(),
        StoreKind::Cluster(c) => c.store_line(),
    };
    let drain = secs(5.0);
    let mut tethers: Vec<Instance> = (0..3)
        .map(|i| Instance::start(i, &store_line, dns.port, app_port, drain.as_millis() as u64))
        .collect();
    for t in &tethers {
        let proc = t.proc.as_ref().expect("running");
        assert!(
            eventually(Duration::from_secs(15), || t.store_up()),
            "instance on {} never reached its store:\n{}",
            t.port,
            proc.log_text()
        );
    }
    let front = free_port();
    let ports: Vec<u16> = tethers.iter().map(|t| t.port).collect();
    let _haproxy = haproxy(dir, front, &ports);

    let mut users = Users::new(front, Duration::from_millis(200));
    let started = users.started;
    // 30 users at the start, then one more a second (polled, so no event waits on them).
    for _ in 0..30 {
        users.add();
    }
    let mut next_user = Instant::now() + Duration::from_secs(1);
    let mut keep_adding = |users: &mut Users| {
        if Instant::now() >= next_user && users.count() < 400 {
            users.add();
            next_user += Duration::from_secs(1);
        }
    };
    let wait = |users: &mut Users, d: Duration, add: &mut dyn FnMut(&mut Users)| {
        let until = Instant::now() + d;
        while Instant::now() < until {
            add(users);
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    wait(&mut users, secs(8.0), &mut keep_adding);

    // 1. The Redis master dies; Sentinel promotes the replica; every instance follows.
    let mut window: Option<(Duration, Duration)> = None;
    if let StoreKind::Sentinel(g) = &mut store {
        let kill_at = started.elapsed();
        if let Some(mut m) = g.master.take() {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
        let replica = g.replica_port;
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline
            && !(g.current_master_port() == Some(replica) && tethers.iter().all(Instance::store_up))
        {
            keep_adding(&mut users);
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(
            g.current_master_port(),
            Some(replica),
            "Sentinel never promoted the replica"
        );
        assert!(
            tethers.iter().all(Instance::store_up),
            "an instance never reached the new master"
        );
        window = Some((kill_at, started.elapsed()));
        wait(&mut users, secs(4.0), &mut keep_adding);
    }

    // 2. A backend joins in DNS: the time until it gets its first user.
    let added_at = started.elapsed();
    dns.set_hosts(&hosts(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]));
    let first_on_new = {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut first = None;
        while first.is_none() && Instant::now() < deadline {
            keep_adding(&mut users);
            first = users
                .record
                .lock()
                .expect("record")
                .logins
                .iter()
                .find(|(t, _, b)| *t >= added_at && b == "b4")
                .map(|(t, _, _)| *t - added_at);
            std::thread::sleep(Duration::from_millis(20));
        }
        first.expect("the backend added to DNS never got a user")
    };
    wait(&mut users, secs(4.0), &mut keep_adding);

    // 3. A backend leaves DNS: drained (its users stay until the drain time, then move).
    let removed_at = started.elapsed();
    dns.set_hosts(&hosts(&["127.0.0.3", "127.0.0.4"]));
    wait(&mut users, drain + secs(4.0), &mut keep_adding);

    // 4. One instance restarts.
    let restart_away = tethers[0].restart();
    assert!(
        eventually(Duration::from_secs(15), || tethers[0].store_up()),
        "the restarted instance never reached its store"
    );
    wait(&mut users, secs(6.0), &mut keep_adding);
    users.stop();

    // The verdicts.
    let homes = format!("{:?}", users.homes());
    let r = users.record.lock().expect("record");
    let in_window = |t: Duration| window.is_some_and(|(a, b)| t >= a && t <= b);
    let failed_outside: Vec<String> = r
        .failures
        .iter()
        .filter(|(t, _)| !in_window(*t))
        .map(|(t, what)| format!("{} ms: {what}", t.as_millis()))
        .collect();
    let failed_inside = r.failures.len() - failed_outside.len();
    // A session lost counts against the fleet unless its backend was removed, or it was
    // created while the store was failing over (its pin may not have reached the others).
    let created = |user: usize, before: Duration| {
        r.logins
            .iter()
            .rev()
            .find(|(t, u, _)| *u == user && *t <= before)
            .map(|(t, _, _)| *t)
    };
    let mut lost_other = Vec::new();
    let (mut lost_removed, mut lost_in_window) = (0, 0);
    for (t, u, home, at) in &r.lost {
        if home == "b2" && *t >= removed_at {
            lost_removed += 1;
        } else if created(*u, *t).is_some_and(in_window) {
            lost_in_window += 1;
        } else {
            lost_other.push(format!(
                "{} ms: user {u} of {home} reached {at}",
                t.as_millis()
            ));
        }
    }
    // New users stop going to the removed backend once tether has re-resolved (TTL 0,
    // resolve_min_ms 200; two seconds of margin for a loaded machine).
    let new_logins_on_removed = r
        .logins
        .iter()
        .filter(|(t, _, b)| b == "b2" && *t > removed_at + Duration::from_secs(2))
        .count();
    let report = Report {
        requests: r.requests,
        users: r
            .logins
            .iter()
            .map(|(_, u, _)| *u)
            .max()
            .map_or(0, |m| m + 1),
        failed_outside,
        failed_inside,
        lost_other,
        lost_removed,
        lost_in_window,
        failover: window.map(|(a, b)| b - a),
        first_user_on_new: first_on_new,
        new_logins_on_removed,
        restart_away,
        homes,
    };
    report.print(name);
    report
}

fn check(report: &Report) {
    assert!(
        report.failed_outside.is_empty(),
        "requests failed outside the failover window: {:#?}",
        report.failed_outside
    );
    assert!(
        report.lost_other.is_empty(),
        "users lost their session: {:#?}",
        report.lost_other
    );
    assert_eq!(
        report.new_logins_on_removed, 0,
        "new users went to the backend removed from DNS"
    );
    assert!(
        report.lost_removed > 0,
        "no user of the removed backend moved after the drain time: was it drained at all?"
    );
    assert!(
        report.requests > 1000,
        "too few requests: {}",
        report.requests
    );
}

#[test]
fn a_fleet_on_sentinel_keeps_sessions_through_a_failover_dns_changes_and_a_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("fleet-sentinel");
    let group = SentinelGroup::start(&dir, 1000);
    let report = run("sentinel", StoreKind::Sentinel(group), &dir);
    check(&report);
    assert!(report.failover.is_some());
}

#[test]
fn a_fleet_on_redis_cluster_keeps_sessions_through_dns_changes_and_a_restart() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = TempDir::new("fleet-cluster");
    let cluster = Cluster::start(&dir);
    let report = run("cluster", StoreKind::Cluster(cluster), &dir);
    check(&report);
}
