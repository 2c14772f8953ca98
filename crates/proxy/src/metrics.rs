//! Metrics: what the workers count, and the two ways to read it — eXpServer's metrics JSON
//! (the shape its dashboard fetches from `/api`) and Prometheus text (`/metrics`).
//!
//! Each worker owns one [`WorkerStats`] (HTTP counters written by its sessions) next to its
//! loop's `LoopStats` (connections and bytes, written by the core). Only that worker's
//! thread writes them, with relaxed atomics, so counting costs no contention; a scrape sums
//! the workers under the [`Registry`]'s short lock and samples `/proc` for CPU and memory.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tether_core::LoopStats;

/// What kind of route answered a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqKind {
    File,
    Proxy,
    Redirect,
    Other,
}

/// The HTTP counters of one worker.
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub conn_error: AtomicU64,
    pub conn_timeout: AtomicU64,
    pub req_current: AtomicU64,
    pub req_total: AtomicU64,
    pub req_file_serve: AtomicU64,
    pub req_reverse_proxy: AtomicU64,
    pub req_redirect: AtomicU64,
    res_time_sum_us: AtomicU64,
    res_n: AtomicU64,
    res_peak_us: AtomicU64,
    /// Responses by class, indexed by `status / 100` (0 and 1 unused).
    res_codes: [AtomicU64; 6],
    /// The worker thread's kernel id, for its CPU time in `/proc/self/task`.
    tid: AtomicI32,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

fn get(c: &AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

impl WorkerStats {
    /// A request head was read.
    pub fn request_started(&self) {
        bump(&self.req_total);
        bump(&self.req_current);
    }

    /// The route that serves it.
    pub fn routed(&self, kind: ReqKind) {
        match kind {
            ReqKind::File => bump(&self.req_file_serve),
            ReqKind::Proxy => bump(&self.req_reverse_proxy),
            ReqKind::Redirect => bump(&self.req_redirect),
            ReqKind::Other => {}
        }
    }

    /// The request is over (answered with `status`, or abandoned with 499) after `took`.
    pub fn request_done(&self, status: u16, took: Duration) {
        self.req_current.fetch_sub(1, Ordering::Relaxed);
        let us = took.as_micros().min(u64::MAX as u128) as u64;
        self.res_time_sum_us.fetch_add(us, Ordering::Relaxed);
        bump(&self.res_n);
        self.res_peak_us.fetch_max(us, Ordering::Relaxed);
        if let Some(c) = self
            .res_codes
            .get((status / 100) as usize)
            .filter(|_| status >= 100)
        {
            bump(c);
        }
    }

    /// A connection ended on an error (bad request, reset, broken pipe).
    pub fn conn_error(&self) {
        bump(&self.conn_error);
    }

    /// A connection ended on a timeout.
    pub fn conn_timeout(&self) {
        bump(&self.conn_timeout);
    }

    /// Call from the worker's own thread, once.
    pub fn set_thread(&self) {
        // SAFETY: gettid has no preconditions.
        let tid = unsafe { libc::syscall(libc::SYS_gettid) } as i32;
        self.tid.store(tid, Ordering::Relaxed);
    }
}

struct Worker {
    loop_stats: Arc<LoopStats>,
    http: Arc<WorkerStats>,
}

/// CPU samples of the previous scrape, for usage percentages over the interval.
#[derive(Default)]
struct Samples {
    at: Option<Instant>,
    sys: Option<(u64, u64)>,
    workers: Vec<u64>,
}

/// Every worker's counters, and what a scrape needs besides.
pub struct Registry {
    server_name: String,
    workers: Mutex<Vec<Worker>>,
    started: Instant,
    samples: Mutex<Samples>,
    /// The listeners' certificates: (file, names, expiry as Unix seconds).
    certificates: Mutex<Vec<(String, String, u64)>>,
    /// The affinity store, for its state (up, last answer, queue).
    store: Mutex<Option<Arc<dyn tether_store::Store>>>,
    /// The named request limits (`[[limit]]`), for their counters.
    limits: Mutex<Vec<Arc<crate::access::Limit>>>,
}

/// The sums of one scrape, in eXpServer's names.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Snapshot {
    pub server_name: String,
    pub pid: u32,
    pub workers: u64,
    pub uptime_msec: u64,
    pub sys_cpu_usage_percent: f64,
    pub sys_ram_usage_bytes: u64,
    pub sys_ram_total_bytes: u64,
    pub workers_cpu_usage_percent: Vec<f64>,
    pub workers_ram_usage_bytes: u64,
    pub conn_current: u64,
    pub conn_accepted: u64,
    pub conn_error: u64,
    pub conn_timeout: u64,
    pub conn_accepted_error: u64,
    /// Connections closed at the connection limit to make room for a new one.
    pub conn_shed: u64,
    pub req_current: u64,
    pub req_total: u64,
    pub req_file_serve: u64,
    pub req_reverse_proxy: u64,
    pub req_redirect: u64,
    pub res_avg_res_time_msec: u64,
    pub res_peak_res_time_msec: u64,
    pub res_code_2xx: u64,
    pub res_code_3xx: u64,
    pub res_code_4xx: u64,
    pub res_code_5xx: u64,
    pub traffic_total_send_bytes: u64,
    pub traffic_total_recv_bytes: u64,
}

impl Registry {
    pub fn new(server_name: &str) -> Arc<Registry> {
        Arc::new(Registry {
            server_name: server_name.to_string(),
            workers: Mutex::new(Vec::new()),
            started: Instant::now(),
            samples: Mutex::new(Samples::default()),
            certificates: Mutex::new(Vec::new()),
            store: Mutex::new(None),
            limits: Mutex::new(Vec::new()),
        })
    }

    /// The certificates `/metrics` reports the expiry of.
    pub fn set_certificates(&self, certs: &[tether_config::certs::LoadedCert]) {
        let list = certs
            .iter()
            .map(|c| {
                let at = c
                    .not_after
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                (c.cert_path.display().to_string(), c.names.join(","), at)
            })
            .collect();
        if let Ok(mut m) = self.certificates.lock() {
            *m = list;
        }
    }

    /// Register a worker: its loop's counters; returns the HTTP counters its sessions bump.
    pub fn add_worker(&self, loop_stats: Arc<LoopStats>) -> Arc<WorkerStats> {
        let http = Arc::new(WorkerStats::default());
        if let Ok(mut w) = self.workers.lock() {
            w.push(Worker {
                loop_stats,
                http: http.clone(),
            });
        }
        http
    }

    /// Sum the workers and sample the system.
    pub fn snapshot(&self) -> Snapshot {
        let mut s = Snapshot {
            server_name: self.server_name.clone(),
            pid: std::process::id(),
            uptime_msec: self.started.elapsed().as_millis() as u64,
            ..Snapshot::default()
        };
        let (mut time_sum, mut time_n, mut tids) = (0u64, 0u64, Vec::new());
        if let Ok(workers) = self.workers.lock() {
            s.workers = workers.len() as u64;
            for w in workers.iter() {
                let (l, h) = (&w.loop_stats, &w.http);
                s.conn_current += LoopStats::get(&l.open);
                s.conn_accepted += LoopStats::get(&l.accepted);
                s.conn_accepted_error += LoopStats::get(&l.accept_errors);
                s.conn_shed += LoopStats::get(&l.shed);
                s.traffic_total_send_bytes += LoopStats::get(&l.bytes_out);
                s.traffic_total_recv_bytes += LoopStats::get(&l.bytes_in);
                s.conn_error += get(&h.conn_error);
                s.conn_timeout += get(&h.conn_timeout);
                s.req_current += get(&h.req_current);
                s.req_total += get(&h.req_total);
                s.req_file_serve += get(&h.req_file_serve);
                s.req_reverse_proxy += get(&h.req_reverse_proxy);
                s.req_redirect += get(&h.req_redirect);
                time_sum += get(&h.res_time_sum_us);
                time_n += get(&h.res_n);
                s.res_peak_res_time_msec = s.res_peak_res_time_msec.max(get(&h.res_peak_us) / 1000);
                s.res_code_2xx += get(&h.res_codes[2]);
                s.res_code_3xx += get(&h.res_codes[3]);
                s.res_code_4xx += get(&h.res_codes[4]);
                s.res_code_5xx += get(&h.res_codes[5]);
                tids.push(h.tid.load(Ordering::Relaxed));
            }
        }
        s.res_avg_res_time_msec = time_sum.checked_div(time_n).unwrap_or(0) / 1000;
        let (total, avail) = proc::meminfo().unwrap_or((0, 0));
        s.sys_ram_total_bytes = total;
        s.sys_ram_usage_bytes = total.saturating_sub(avail);
        s.workers_ram_usage_bytes = proc::rss_bytes().unwrap_or(0);
        self.sample_cpu(&mut s, &tids);
        s
    }

    /// CPU usage since the previous scrape (since the start for the first one).
    fn sample_cpu(&self, s: &mut Snapshot, tids: &[i32]) {
        let Ok(mut prev) = self.samples.lock() else {
            return;
        };
        let now = Instant::now();
        let wall = now.saturating_duration_since(prev.at.unwrap_or(self.started));
        let sys = proc::cpu_totals();
        if let (Some((busy, total)), Some((pbusy, ptotal))) = (sys, prev.sys) {
            let dt = total.saturating_sub(ptotal);
            if dt > 0 {
                s.sys_cpu_usage_percent =
                    round2(100.0 * busy.saturating_sub(pbusy) as f64 / dt as f64);
            }
        }
        let ticks: Vec<u64> = tids
            .iter()
            .map(|&t| proc::thread_ticks(t).unwrap_or(0))
            .collect();
        let hz = proc::clock_ticks_per_sec() as f64;
        let wall_s = wall.as_secs_f64().max(1e-3);
        s.workers_cpu_usage_percent = ticks
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let before = prev.workers.get(i).copied().unwrap_or(0);
                round2(100.0 * t.saturating_sub(before) as f64 / hz / wall_s)
            })
            .collect();
        prev.at = Some(now);
        prev.sys = sys;
        prev.workers = ticks;
    }

    /// eXpServer's metrics JSON.
    pub fn json(&self) -> String {
        let mut v = serde_json::to_value(self.snapshot()).unwrap_or_default();
        if let (Some(map), Some(store)) = (v.as_object_mut(), self.store_json()) {
            map.insert("store".into(), store);
        }
        let limits = self.limits.lock().map(|l| l.clone()).unwrap_or_default();
        if let (Some(map), false) = (v.as_object_mut(), limits.is_empty()) {
            map.insert("limits".into(), crate::access::limits_json(&limits));
        }
        serde_json::to_string(&v).unwrap_or_else(|_| "{}".into())
    }

    /// The named request limits whose counters `/metrics` and `/api` show.
    pub fn set_limits(&self, limits: &[Arc<crate::access::Limit>]) {
        if let Ok(mut l) = self.limits.lock() {
            *l = limits.to_vec();
        }
    }

    /// The affinity store whose state `/metrics`, `/api` and `/admin/status` show.
    pub fn set_store(&self, store: Arc<dyn tether_store::Store>) {
        if let Ok(mut s) = self.store.lock() {
            *s = Some(store);
        }
    }

    fn store_stats(&self) -> Option<tether_store::Stats> {
        let store = self.store.lock().ok()?.clone()?;
        Some(store.stats())
    }

    /// The store's state as JSON: `kind` (`memory` or `redis`), `up` (always true in
    /// memory), seconds since Redis last answered, the queued and dropped writes.
    pub fn store_json(&self) -> Option<serde_json::Value> {
        let s = self.store_stats()?;
        Some(serde_json::json!({
            "kind": if s.up.is_some() { "redis" } else { "memory" },
            "up": s.up.unwrap_or(true),
            "seconds_since_last_answer": s.since_last_answer.map(|d| d.as_secs_f64()),
            "queued_writes": s.queued_writes,
            "dropped_writes": s.dropped_writes,
            "sent_writes": s.sent_writes,
            "outages": s.outages,
            "entries": s.entries,
        }))
    }

    /// Prometheus text exposition (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = prometheus_text(&self.snapshot());
        let certs = self
            .certificates
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        if !certs.is_empty() {
            out.push_str(
                "# HELP tether_certificate_expiry_seconds When a listener's certificate expires (Unix time).\n\
                 # TYPE tether_certificate_expiry_seconds gauge\n",
            );
            for (file, names, at) in certs {
                let _ = writeln!(
                    out,
                    "tether_certificate_expiry_seconds{{file=\"{}\",names=\"{}\"}} {at}",
                    file.escape_default(),
                    names.escape_default()
                );
            }
        }
        if let Some(acme) = tether_acme::running() {
            out.push_str(&acme.prometheus());
        }
        if let Some(s) = self.store_stats() {
            store_prometheus(&mut out, &s);
        }
        let limits = self.limits.lock().map(|l| l.clone()).unwrap_or_default();
        crate::access::limits_prometheus(&mut out, &limits);
        access_log_prometheus(&mut out);
        out
    }
}

/// Each access-log target's lines written and dropped (a stuck target drops).
fn access_log_prometheus(out: &mut String) {
    let all = crate::access_log::stats_all();
    if all.is_empty() {
        return;
    }
    for (name, help) in [
        ("written", "Access-log lines written, by target."),
        (
            "dropped",
            "Access-log lines dropped because the target was stuck, by target.",
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP tether_access_log_lines_{name}_total {help}\n# TYPE tether_access_log_lines_{name}_total counter"
        );
        for (target, s) in &all {
            let v = if name == "written" {
                s.written
            } else {
                s.dropped
            };
            let _ = writeln!(
                out,
                "tether_access_log_lines_{name}_total{{target=\"{}\"}} {v}",
                target.escape_default()
            );
        }
    }
}

/// The affinity store's state in Prometheus text.
fn store_prometheus(out: &mut String, s: &tether_store::Stats) {
    let mut gauge = |name: &str, help: &str, v: f64| {
        let _ = writeln!(
            out,
            "# HELP tether_store_{name} {help}\n# TYPE tether_store_{name} gauge\ntether_store_{name} {v}"
        );
    };
    gauge(
        "up",
        "1 while the affinity store answers (always 1 in memory).",
        if s.up.unwrap_or(true) { 1.0 } else { 0.0 },
    );
    if let Some(d) = s.since_last_answer {
        gauge(
            "seconds_since_last_answer",
            "Seconds since Redis last answered.",
            d.as_secs_f64(),
        );
    }
    gauge(
        "queued_writes",
        "Pins waiting to be written to the store.",
        s.queued_writes as f64,
    );
    gauge(
        "dropped_writes",
        "Pins dropped (oldest first) while the queue was full.",
        s.dropped_writes as f64,
    );
    gauge("outages", "Store outages seen.", s.outages as f64);
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Render a snapshot as Prometheus text.
pub fn prometheus_text(s: &Snapshot) -> String {
    let mut out = String::with_capacity(4096);
    let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, f64)]| {
        let _ = writeln!(
            out,
            "# HELP tether_{name} {help}\n# TYPE tether_{name} {kind}"
        );
        for (labels, v) in samples {
            let _ = writeln!(out, "tether_{name}{labels} {v}");
        }
    };
    let c = |v: u64| v as f64;
    metric(
        "uptime_seconds",
        "gauge",
        "Seconds since start.",
        &[("", s.uptime_msec as f64 / 1000.0)],
    );
    metric(
        "workers",
        "gauge",
        "Event-loop threads.",
        &[("", c(s.workers))],
    );
    metric(
        "connections_open",
        "gauge",
        "Client connections open now.",
        &[("", c(s.conn_current))],
    );
    metric(
        "connections_accepted_total",
        "counter",
        "Client connections accepted.",
        &[("", c(s.conn_accepted))],
    );
    metric(
        "connections_errors_total",
        "counter",
        "Connections ended on an error.",
        &[("", c(s.conn_error))],
    );
    metric(
        "connections_timeouts_total",
        "counter",
        "Connections ended on a timeout.",
        &[("", c(s.conn_timeout))],
    );
    metric(
        "connections_shed_total",
        "counter",
        "Connections closed at the connection limit to make room for a new one (the longest \
         on an unfinished head, else the longest idle).",
        &[("", c(s.conn_shed))],
    );
    metric(
        "accept_errors_total",
        "counter",
        "accept(2) failures.",
        &[("", c(s.conn_accepted_error))],
    );
    metric(
        "requests_in_flight",
        "gauge",
        "Requests being answered now.",
        &[("", c(s.req_current))],
    );
    metric(
        "requests_total",
        "counter",
        "Requests by the kind of route that answered.",
        &[
            ("{route=\"file\"}", c(s.req_file_serve)),
            ("{route=\"proxy\"}", c(s.req_reverse_proxy)),
            ("{route=\"redirect\"}", c(s.req_redirect)),
            (
                "{route=\"other\"}",
                c(s.req_total
                    .saturating_sub(s.req_file_serve + s.req_reverse_proxy + s.req_redirect)),
            ),
        ],
    );
    metric(
        "responses_total",
        "counter",
        "Responses by status class.",
        &[
            ("{code=\"2xx\"}", c(s.res_code_2xx)),
            ("{code=\"3xx\"}", c(s.res_code_3xx)),
            ("{code=\"4xx\"}", c(s.res_code_4xx)),
            ("{code=\"5xx\"}", c(s.res_code_5xx)),
        ],
    );
    metric(
        "response_time_avg_seconds",
        "gauge",
        "Mean response time.",
        &[("", s.res_avg_res_time_msec as f64 / 1000.0)],
    );
    metric(
        "response_time_peak_seconds",
        "gauge",
        "Longest response time.",
        &[("", s.res_peak_res_time_msec as f64 / 1000.0)],
    );
    metric(
        "sent_bytes_total",
        "counter",
        "Bytes written to sockets.",
        &[("", c(s.traffic_total_send_bytes))],
    );
    metric(
        "received_bytes_total",
        "counter",
        "Bytes read from sockets.",
        &[("", c(s.traffic_total_recv_bytes))],
    );
    metric(
        "resident_memory_bytes",
        "gauge",
        "Resident memory of the process.",
        &[("", c(s.workers_ram_usage_bytes))],
    );
    out
}

/// Readings from `/proc` (Linux). Each returns `None` where the file is missing or odd.
mod proc {
    /// `(MemTotal, MemAvailable)` in bytes.
    pub fn meminfo() -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            let kb: u64 = line[name.len()..]
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()?;
            Some(kb * 1024)
        };
        Some((field("MemTotal:")?, field("MemAvailable:")?))
    }

    /// Resident set size of this process.
    pub fn rss_bytes() -> Option<u64> {
        let text = std::fs::read_to_string("/proc/self/statm").ok()?;
        let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
        // SAFETY: sysconf has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        Some(pages * page.max(1) as u64)
    }

    /// `(busy, total)` jiffies of all CPUs from `/proc/stat`.
    pub fn cpu_totals() -> Option<(u64, u64)> {
        let text = std::fs::read_to_string("/proc/stat").ok()?;
        let line = text.lines().next()?.strip_prefix("cpu ")?;
        let v: Vec<u64> = line
            .split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect();
        if v.len() < 4 {
            return None;
        }
        let total: u64 = v.iter().take(8).sum();
        let idle = v[3] + v.get(4).copied().unwrap_or(0);
        Some((total - idle, total))
    }

    /// User + system clock ticks of one thread of this process.
    pub fn thread_ticks(tid: i32) -> Option<u64> {
        if tid <= 0 {
            return None;
        }
        let text = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).ok()?;
        // The command name may hold spaces; fields resume after its closing parenthesis.
        let rest = &text[text.rfind(')')? + 1..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        // After the name: state(3) ... utime(14) stime(15) → indexes 11 and 12 here.
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }

    pub fn clock_ticks_per_sec() -> u64 {
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if hz > 0 {
            hz as u64
        } else {
            100
        }
    }
}
