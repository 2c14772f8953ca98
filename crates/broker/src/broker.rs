//! `Broker`: the shared state of one broker and its poller thread. Every poll interval the
//! poller asks each simulation server for `/load` (one scoped thread per server, all at
//! once, each bounded by the timeout) and records each answer as soon as it arrives
//! (`state.rs`; a server with no answer yet is `Load::Unpolled`, never handed out), mails
//! or logs each transition, and when "some server is available" flips, bumps
//! `generation()` and calls every subscribed waker. `start` returns once the first round's
//! requests are on their way, so that round has begun before the listeners serve; until it
//! has an answer or a timeout from every server (`first_round_done`), the feed's first
//! frame waits (`feed_value` is `None` unless a server is already available) and so does
//! `/session` (`Broker::hold`, `http.rs`; the gate is `first_round.rs`): the Webots session
//! server polls once before it listens, so it never says "no server" for a farm that has
//! one. Workers (event loops) only read: `session_body`, `available`, `feed_value`,
//! `load_body`, `monitor_html` take a short lock and never wait on the network. The broker
//! also holds the `/session` gate (`authorized`): open, or a bearer token.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tether_mail::Mailer;

use crate::access::{self, Secret};
use crate::config::BrokerConfig;
use crate::first_round::{FirstRound, Wake};
use crate::monitor;
use crate::poll;
use crate::state::{self, format_load, python_load, Load, ServerState, Transition};

/// How long `start` waits for the first round's requests to be sent.
const FIRST_ROUND_WAIT: Duration = Duration::from_secs(2);

/// `/session`'s answer when no server can take a client (Webots' words).
pub const NO_SERVER: &str = "Error: no simulation server available at the moment.";

/// The headers `/session` carries, so a page from another origin may ask.
pub const CORS_HEADERS: [(&str, &str); 3] = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Headers", "x-requested-with"),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
];

/// `CORS_HEADERS` for a broker with a token: a browser's preflight must allow the
/// `Authorization` header its `/session` request carries.
pub const CORS_HEADERS_WITH_TOKEN: [(&str, &str); 3] = [
    ("Access-Control-Allow-Origin", "*"),
    (
        "Access-Control-Allow-Headers",
        "x-requested-with, authorization",
    ),
    ("Access-Control-Allow-Methods", "POST, GET, OPTIONS"),
];

/// Who may ask `/session`.
enum Gate {
    Open,
    Token(Secret),
    /// `token_file` could not be read when the broker was made: refuse everyone.
    Closed,
}

/// A handle to undo `subscribe`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionId(u64);

type Waker = Arc<dyn Fn() + Send + Sync>;

/// One broker, shared (`Arc`) by the poller and every worker thread.
pub struct Broker {
    config: BrokerConfig,
    mailer: Mailer,
    started: String,
    servers: Mutex<Vec<ServerState>>,
    available: AtomicBool,
    generation: AtomicU64,
    rounds: Mutex<u64>,
    round_done: Condvar,
    subscribers: Mutex<Vec<(SubscriptionId, Waker)>>,
    next_subscription: AtomicU64,
    stopping: Mutex<bool>,
    stop_signal: Condvar,
    poller: Mutex<Option<JoinHandle<()>>>,
    agent: ureq::Agent,
    gate: Gate,
    first_round: FirstRound,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Broker {
    /// A broker with no poller: every server is `Unpolled` (none handed out) until
    /// `poll_once` (tests, tools); what `hold` keeps waits for that round (or `stop`).
    /// A token that cannot be read (`token_file`) closes `/session` to everyone (logged);
    /// `start` refuses it instead.
    pub fn new(config: BrokerConfig, mailer: Mailer) -> Arc<Broker> {
        let servers: Vec<ServerState> = config.servers.iter().map(ServerState::from_spec).collect();
        let gate = match config.access_token() {
            Ok(None) => Gate::Open,
            Ok(Some(t)) => Gate::Token(t),
            Err(m) => {
                log::error!(
                    "broker {}: {m}; /session refuses every request",
                    config.name
                );
                Gate::Closed
            }
        };
        // Checked with the config; read again here, and a file gone since is logged.
        let roots = config.poll_roots().unwrap_or_else(|m| {
            log::error!("broker {}: {m}; polls use the built-in roots", config.name);
            None
        });
        let available = servers.iter().any(|s| s.load.is_available(config.max_load));
        let first_round = FirstRound::new(all_polled(&servers));
        if mailer.is_log_only() {
            log::info!(
                "broker {}: no mail settings, transitions go to the log",
                config.name
            );
        }
        Arc::new(Broker {
            agent: poll::agent(config.timeout(), roots),
            config,
            mailer,
            started: httpdate::fmt_http_date(SystemTime::now()),
            servers: Mutex::new(servers),
            available: AtomicBool::new(available),
            generation: AtomicU64::new(0),
            rounds: Mutex::new(0),
            round_done: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            next_subscription: AtomicU64::new(1),
            stopping: Mutex::new(false),
            stop_signal: Condvar::new(),
            poller: Mutex::new(None),
            gate,
            first_round,
        })
    }

    /// A broker whose poller thread polls now, then every `poll_interval`. Returns once the
    /// first round's requests are sent (at most `FIRST_ROUND_WAIT`); each answer counts as
    /// it arrives, and a server not answered yet is not available; until every server has a
    /// result, the feed's first frame and `/session` wait (`feed_value`, `hold`).
    /// `wait_first_poll` waits for the whole first round.
    pub fn start(config: BrokerConfig, mailer: Mailer) -> std::io::Result<Arc<Broker>> {
        config.access_token().map_err(|m| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("broker {}: {m}", config.name),
            )
        })?;
        let broker = Broker::new(config, mailer);
        let b = Arc::clone(&broker);
        let (sent_tx, sent) = mpsc::channel();
        let handle = std::thread::Builder::new()
            .name(format!("broker-{}", broker.config.name))
            .spawn(move || b.run(sent_tx))?;
        *lock(&broker.poller) = Some(handle);
        if sent.recv_timeout(FIRST_ROUND_WAIT).is_err() {
            log::warn!(
                "broker {}: the first polling round has not started after {:?}",
                broker.config.name,
                FIRST_ROUND_WAIT
            );
        }
        Ok(broker)
    }

    /// Stop the poller and wait for it (at most one poll timeout). Idempotent. Whatever
    /// still waits for the first round is released (answered with what is known).
    pub fn stop(&self) {
        *lock(&self.stopping) = true;
        self.stop_signal.notify_all();
        let handle = lock(&self.poller).take();
        if let Some(h) = handle {
            if h.join().is_err() {
                log::error!("broker {}: the poller thread panicked", self.config.name);
            }
        }
        self.settle_first_round();
    }

    /// The poller thread: a round now (`first_sent` hears when its requests are out), then
    /// one every interval until `stop`.
    fn run(&self, first_sent: mpsc::Sender<()>) {
        log::info!(
            "broker {}: polling {} simulation server(s) every {:?}",
            self.config.name,
            self.config.servers.len(),
            self.config.poll_interval()
        );
        let mut first_sent = Some(first_sent);
        loop {
            let began = Instant::now();
            self.poll_round(|| {
                if let Some(tx) = first_sent.take() {
                    let _ = tx.send(());
                }
            });
            let next = began + self.config.poll_interval();
            let guard = lock(&self.stopping);
            let wait = next.saturating_duration_since(Instant::now());
            let stopped = match self.stop_signal.wait_timeout_while(guard, wait, |s| !*s) {
                Ok((s, _)) => *s,
                Err(poisoned) => *poisoned.into_inner().0,
            };
            if stopped {
                return;
            }
        }
    }

    /// One polling round, on the calling thread (never call it from an event loop): every
    /// server at once, each bounded by the timeout, each answer applied as it arrives
    /// (mails, availability, wakers); returns when every server answered or timed out.
    pub fn poll_once(&self) {
        self.poll_round(|| {});
    }

    /// `poll_once`, calling `sent` once every server's request is under way.
    fn poll_round(&self, sent: impl FnOnce()) {
        let scheme = self.config.http_scheme();
        let urls: Vec<String> = self
            .config
            .servers
            .iter()
            .map(|s| poll::load_url(scheme, &s.entry))
            .collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = urls
                .iter()
                .enumerate()
                .map(|(i, url)| {
                    scope.spawn(move || self.record_load(i, poll::fetch_load(&self.agent, url)))
                })
                .collect();
            sent();
            for (i, h) in handles.into_iter().enumerate() {
                if h.join().is_err() {
                    self.record_load(i, Load::Down("poll thread panicked".into()));
                }
            }
        });
        self.settle_first_round();
        *lock(&self.rounds) += 1;
        self.round_done.notify_all();
    }

    /// The first round is over (every server has a result, a round ended, or the broker
    /// stopped): wake the held requests and, so that a held feed sends its first frame
    /// even when availability did not flip, every subscriber. Once.
    fn settle_first_round(&self) {
        if !self.first_round.settle() {
            return;
        }
        log::info!(
            "broker {}: first polling round done; {}",
            self.config.name,
            if self.available() {
                "a simulation server is available"
            } else {
                "no simulation server is available"
            }
        );
        self.wake_subscribers();
    }

    fn wake_subscribers(&self) {
        let wakers: Vec<Waker> = lock(&self.subscribers)
            .iter()
            .map(|(_, w)| Arc::clone(w))
            .collect();
        for w in wakers {
            w();
        }
    }

    /// Record server `index`'s poll result now (the poller calls it as each answer arrives;
    /// tests and tools may feed results too): its transition is logged or mailed, and
    /// when "some server is available" flips, the feed's subscribers are woken. The flip is
    /// decided under the servers' lock, so answers arriving together cannot reorder it.
    /// The result that leaves no server unpolled ends the first round (`first_round_done`).
    pub fn record_load(&self, index: usize, load: Load) {
        let max = self.config.max_load;
        let (event, flipped, polled) = {
            let mut servers = lock(&self.servers);
            let Some(s) = servers.get_mut(index) else {
                return;
            };
            let event = s
                .record(load, max, self.config.history)
                .map(|t| (t, s.entry.clone(), s.load.clone()));
            let now = servers.iter().any(|s| s.load.is_available(max));
            let flipped = self.available.swap(now, Ordering::SeqCst) != now;
            if flipped {
                self.generation.fetch_add(1, Ordering::SeqCst);
            }
            (event, flipped.then_some(now), all_polled(&servers))
        };
        if let Some((t, entry, load)) = event {
            self.notify(t, &entry, &load);
        }
        if let Some(now_available) = flipped {
            log::info!(
                "broker {}: simulation servers {}",
                self.config.name,
                if now_available {
                    "available (1)"
                } else {
                    "unavailable (0)"
                }
            );
            self.wake_subscribers();
        }
        if polled {
            self.settle_first_round();
        }
    }

    /// Log a transition, and mail it when mail settings are there.
    fn notify(&self, t: Transition, entry: &str, load: &Load) {
        let (sentence, body) = transition_text(t, entry, load, &self.config.monitor_link());
        match t {
            Transition::NotResponding | Transition::ReachedMaxLoad => log::warn!("{sentence}"),
            Transition::WorkingAgain | Transition::AvailableAgain => log::info!("{sentence}"),
        }
        if !self.mailer.is_log_only() {
            self.mailer.send(t.subject(), &body);
        }
    }

    /// Wait until at least one polling round has ended (at most `limit`). True if so.
    pub fn wait_first_poll(&self, limit: Duration) -> bool {
        self.wait_rounds(1, limit)
    }

    /// Wait until `n` polling rounds have ended in all (at most `limit`). True if so.
    pub fn wait_rounds(&self, n: u64, limit: Duration) -> bool {
        let guard = lock(&self.rounds);
        match self.round_done.wait_timeout_while(guard, limit, |r| *r < n) {
            Ok((r, _)) => *r >= n,
            Err(poisoned) => *poisoned.into_inner().0 >= n,
        }
    }

    /// Polling rounds ended so far.
    pub fn rounds(&self) -> u64 {
        *lock(&self.rounds)
    }

    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// `/session`: `ws(s)://<entry>` of the least-loaded server below the max load, or
    /// `NO_SERVER`.
    pub fn session_body(&self) -> String {
        self.session_body_for(None)
    }

    /// `/session?url=<repository>`: the same among the servers that allow `url` (`None`:
    /// among all).
    pub fn session_body_for(&self, url: Option<&str>) -> String {
        let servers = lock(&self.servers);
        match state::pick_for(&servers, self.config.max_load, url) {
            Some(s) => format!("{}://{}", self.config.ws_scheme(), s.entry),
            None => NO_SERVER.to_string(),
        }
    }

    /// Does `/session` ask for a token?
    pub fn needs_token(&self) -> bool {
        !matches!(self.gate, Gate::Open)
    }

    /// May this request have `/session`? `authorization` is the `Authorization` header's
    /// value, `query_token` the `token=` parameter; without a token configured, yes.
    pub fn authorized(&self, authorization: Option<&[u8]>, query_token: Option<&str>) -> bool {
        match &self.gate {
            Gate::Open => true,
            Gate::Token(t) => access::authorized(t, authorization, query_token),
            Gate::Closed => false,
        }
    }

    /// Some server may take a client (what the feed sends as `1`/`0`), as known now: during
    /// the first round, `false` may only mean "not answered yet" (see `feed_value`).
    pub fn available(&self) -> bool {
        self.available.load(Ordering::SeqCst)
    }

    /// What the feed may send now: `Some(true)` as soon as a server is available,
    /// `Some(false)` once the first round is done with none, `None` while the first round
    /// still waits for a server (hold the frame; a subscriber is woken when it settles).
    /// Give it to `FeedSocket::new` and `FeedSocket::update`.
    pub fn feed_value(&self) -> Option<bool> {
        // Settled is read first: a result that settles the round is recorded before.
        let settled = self.first_round_done();
        match self.available() {
            true => Some(true),
            false if settled => Some(false),
            false => None,
        }
    }

    /// The first polling round has a result (an answer or a timeout) from every server,
    /// or some round ended, or the broker stopped. Until then `/session` is held.
    pub fn first_round_done(&self) -> bool {
        self.first_round.is_settled()
    }

    /// Keep `wake` until the first round is done (true), or drop it if it is (false).
    pub(crate) fn hold_until_first_round(&self, wake: Wake) -> bool {
        self.first_round.hold(wake)
    }

    /// `1` or `0`: the feed's message, and `/` without upgrade.
    pub fn available_body(&self) -> &'static str {
        if self.available() {
            "1"
        } else {
            "0"
        }
    }

    /// Bumped each time `available()` flips.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    /// `/load`: the mean load of the servers that answered a number, as Python prints a
    /// float (`45.666666666666664`, `30.0`), or `-1` when none did.
    pub fn load_body(&self) -> String {
        match state::mean_load(&lock(&self.servers)) {
            Some(l) => python_load(l),
            None => "-1".into(),
        }
    }

    /// `/monitor`: the HTML page.
    pub fn monitor_html(&self) -> String {
        let servers = lock(&self.servers);
        monitor::render(&monitor::View {
            started: &self.started,
            servers: &servers,
            max_load: self.config.max_load,
            http_scheme: self.config.http_scheme(),
            refresh_secs: self.config.poll_interval().as_secs().max(1),
            history: self.config.history,
        })
    }

    /// A copy of every server's state (for tools and tests).
    pub fn snapshot(&self) -> Vec<ServerState> {
        lock(&self.servers).clone()
    }

    /// The CORS headers `/session` answers with (and its `OPTIONS` preflight).
    /// With a token, `Authorization` is among the allowed headers.
    pub fn cors_headers(&self) -> &'static [(&'static str, &'static str)] {
        if self.needs_token() {
            &CORS_HEADERS_WITH_TOKEN
        } else {
            &CORS_HEADERS
        }
    }

    /// Call `waker` (from the poller thread; keep it short, e.g. `mio::Waker::wake`) each
    /// time `available()` flips, and once when the first round is done (then `feed_value`
    /// turns `Some`). Subscribe before reading `feed_value`, or use `open_feed` (`ws.rs`),
    /// so that no change falls between the two.
    pub fn subscribe(&self, waker: Box<dyn Fn() + Send + Sync>) -> SubscriptionId {
        let id = SubscriptionId(self.next_subscription.fetch_add(1, Ordering::Relaxed));
        lock(&self.subscribers).push((id, Arc::from(waker)));
        id
    }

    pub fn unsubscribe(&self, id: SubscriptionId) {
        lock(&self.subscribers).retain(|(i, _)| *i != id);
    }
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("name", &self.config.name)
            .field("servers", &self.config.entries())
            .field("available", &self.available())
            .field("rounds", &self.rounds())
            .finish()
    }
}

/// No server is waiting for its first result.
fn all_polled(servers: &[ServerState]) -> bool {
    servers.iter().all(|s| s.load != Load::Unpolled)
}

/// (the log sentence, the mail body) for a transition. The body names the server and its
/// load and ends with the link to the broker's `/monitor`.
pub fn transition_text(t: Transition, entry: &str, load: &Load, monitor: &str) -> (String, String) {
    let shown = match load {
        Load::Up(l) => format!("{}%", format_load(*l)),
        Load::Unpolled | Load::Down(_) => "N/A".into(),
    };
    let sentence = match (t, load) {
        (Transition::NotResponding, Load::Down(why)) => format!(
            "{entry} simulation server may be down, as it is not responding to the requests \
             of the session server ({why}; load {shown})"
        ),
        (Transition::NotResponding, _) => format!("{entry} simulation server is not responding"),
        (Transition::WorkingAgain, _) => {
            format!("{entry} simulation server is up and running again (load = {shown})")
        }
        (Transition::ReachedMaxLoad, _) => {
            format!("{entry} simulation server has reached maximum load ({shown})")
        }
        (Transition::AvailableAgain, _) => {
            format!("{entry} simulation server is available again (load = {shown})")
        }
    };
    let body = format!("Hello,\n\n{sentence}.\n\nCheck it at {monitor}");
    (sentence, body)
}
