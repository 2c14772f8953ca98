//! The helper thread: decides, for each ACME name, when to look at it again, and does
//! the looking — never on an event loop. It runs a current-thread tokio runtime for
//! instant-acme's HTTP, and touches the loops only through [`Acme`]'s short locks.
//!
//! Each name is in one [`State`]. At its time the thread:
//! 1. reads the storage: a certificate newer than the one served (another instance, or an
//!    earlier run, renewed it) is swapped in; if it is not due for renewal, done;
//! 2. takes the name's lease; if another instance holds it, looks at the storage again
//!    soon (that instance is ordering: its result is picked up in step 1);
//! 3. orders (`order.rs`), stores the certificate, swaps it in.
//!
//! Renewal is due at two thirds of the lifetime, or at the start of the window the CA's
//! renewal information (ARI) suggests. A failure is logged, shown in `/admin/status` and
//! `/metrics`, mailed to the supervisor's recipients, and retried after `retry_initial`,
//! doubled on each failure in a row up to `retry_max`; the certificate served stays.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use instant_acme::Account;
use tether_mail::{MailSettings, Mailer};

use super::storage::{Lease, Store};
use super::Acme;
use tether_config::certs::LoadedCert;

/// How often a name whose lease another instance holds is looked at again.
const PEER_POLL: Duration = Duration::from_secs(1);
/// The longest sleep: the storage is looked at again at least this often.
const MAX_SLEEP: Duration = Duration::from_secs(600);

/// Where one name stands.
#[derive(Debug, Clone)]
enum State {
    /// Nothing served yet: order now.
    Missing,
    /// Served until `not_after`; renew from `renew_at`.
    Valid {
        not_after: SystemTime,
        renew_at: SystemTime,
    },
    /// The `attempt`th attempt in a row failed: try again at `retry_at`.
    Failed { attempt: u32, retry_at: SystemTime },
    /// Another instance holds the lease: read the storage again at `check_at`.
    Peer { check_at: SystemTime },
}

impl State {
    fn due(&self) -> SystemTime {
        match self {
            State::Missing => SystemTime::UNIX_EPOCH,
            State::Valid { renew_at, .. } => *renew_at,
            State::Failed { retry_at, .. } => *retry_at,
            State::Peer { check_at } => *check_at,
        }
    }

    fn failures(&self) -> u32 {
        match self {
            State::Failed { attempt, .. } => *attempt,
            _ => 0,
        }
    }
}

/// Start the helper thread of `acme` (once per process; the mail settings are the
/// supervisor's).
pub fn start(acme: Arc<Acme>, mail: Option<&MailSettings>) {
    if let Ok(mut r) = super::RUNNING.lock() {
        *r = Some(acme.clone());
    }
    let mailer = Mailer::from_settings(mail).unwrap_or_else(|e| {
        log::error!("acme: mail: {e}; ACME failures will only be logged");
        Mailer::log_only()
    });
    let spawned = std::thread::Builder::new()
        .name("acme".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match rt {
                Ok(rt) => rt.block_on(Manager::new(acme, mailer).run()),
                Err(e) => log::error!("acme: cannot start its runtime: {e}"),
            }
        });
    if let Err(e) = spawned {
        log::error!("acme: cannot start its thread: {e}");
    }
}

struct Manager {
    acme: Arc<Acme>,
    store: Store,
    mailer: Mailer,
    account: Option<Account>,
    names: Vec<(String, State)>,
}

impl Manager {
    fn new(acme: Arc<Acme>, mailer: Mailer) -> Manager {
        let store = Store::new(&acme.settings);
        let names = acme
            .names()
            .into_iter()
            .map(|n| {
                let state = match acme.cert(&n).and_then(|c| validity(&c.cert[0])) {
                    Some((from, until)) => State::Valid {
                        not_after: until,
                        renew_at: two_thirds(from, until),
                    },
                    None => State::Missing,
                };
                (n, state)
            })
            .collect();
        Manager {
            acme,
            store,
            mailer,
            account: None,
            names,
        }
    }

    async fn run(mut self) {
        log::info!(
            "acme: managing {} with {} ({}), storage {}",
            self.acme.names().join(", "),
            self.acme.settings.directory,
            self.acme.challenge().as_str(),
            self.store.root().display()
        );
        loop {
            let now = SystemTime::now();
            for i in 0..self.names.len() {
                let (name, state) = self.names[i].clone();
                if state.due() <= now {
                    let next = self.step(&name, state).await;
                    self.names[i].1 = next;
                }
                let due = self.names[i].1.due();
                self.acme.update(&name, |s| s.next_check = Some(due));
            }
            let next = self.names.iter().map(|(_, s)| s.due()).min();
            let wait = next
                .and_then(|t| t.duration_since(SystemTime::now()).ok())
                .unwrap_or(Duration::ZERO)
                .min(MAX_SLEEP);
            if next.is_none() {
                tokio::time::sleep(MAX_SLEEP).await;
            } else if !wait.is_zero() {
                tokio::time::sleep(wait).await;
            }
        }
    }

    /// Look at one name whose time has come; its next state.
    async fn step(&mut self, name: &str, state: State) -> State {
        let served = match &state {
            State::Valid { not_after, .. } => Some(*not_after),
            _ => self.acme.status().get(name).and_then(|s| s.not_after),
        };
        if let Some(next) = self.pick_up(name, served) {
            return next;
        }
        match self.store.lease(name, self.acme.settings.lease) {
            Err(e) => {
                let e = format!("storage {}: {e}", self.store.root().display());
                self.failed(name, &state, e)
            }
            Ok(Lease::Busy { until }) => {
                log::info!("acme: another instance is ordering {name}; waiting for its result");
                let soon = SystemTime::now() + PEER_POLL;
                State::Peer {
                    check_at: soon.min(until.max(SystemTime::now())),
                }
            }
            Ok(Lease::Held(_lease)) => {
                // It may have finished between our look and the lease.
                if let Some(next) = self.pick_up(name, served) {
                    return next;
                }
                match self.order(name).await {
                    Ok(next) => next,
                    Err(e) => self.failed(name, &state, e),
                }
            }
        }
    }

    /// A stored certificate newer than the served one is swapped in; `Some` when the
    /// name then needs nothing more for now.
    fn pick_up(&self, name: &str, served: Option<SystemTime>) -> Option<State> {
        let stored = self.store.load_cert(name)?;
        let (from, until) = validity(&stored.key.cert[0])?;
        if served.is_none_or(|s| until > s) && until > SystemTime::now() {
            log::info!(
                "acme: certificate of {name} (until {}) loaded from the storage",
                httpdate::fmt_http_date(until)
            );
            self.acme.install(name, stored.key.clone(), until);
        }
        let renew_at = two_thirds(from, until);
        (renew_at > SystemTime::now() && served.is_none_or(|s| until >= s)).then_some(
            State::Valid {
                not_after: until,
                renew_at,
            },
        )
    }

    /// Order, store and serve a certificate for `name`.
    async fn order(&mut self, name: &str) -> Result<State, String> {
        let account = match &self.account {
            Some(a) => a.clone(),
            None => {
                let a = super::order::account(&self.acme, &self.store).await?;
                self.account = Some(a.clone());
                a
            }
        };
        log::info!("acme: ordering a certificate for {name}");
        let issued = match super::order::order(&self.acme, &account, name).await {
            // The CA lost or deactivated the account (a test CA restarted, say): set it
            // aside so that the next attempt creates a new one.
            Err(e) if e.contains("accountDoesNotExist") => {
                self.store.forget_account();
                return Err(format!(
                    "{e} (stored account set aside: a new one next time)"
                ));
            }
            r => r?,
        };
        self.store
            .save_cert(name, &issued.chain_pem, &issued.key_pem)
            .map_err(|e| format!("storing the certificate of {name}: {e}"))?;
        let loaded: LoadedCert = self
            .store
            .load_cert(name)
            .ok_or_else(|| format!("the certificate issued for {name} does not load"))?;
        let (from, until) = validity(&loaded.key.cert[0])
            .ok_or_else(|| format!("the certificate issued for {name} has no validity"))?;
        self.acme.install(name, loaded.key.clone(), until);
        let mut renew_at = two_thirds(from, until);
        if let Some(ari) = super::order::renewal_window(&account, &loaded.key.cert[0]).await {
            renew_at = ari.min(renew_at);
        }
        log::info!(
            "acme: certificate for {name} obtained (until {}; renewal from {})",
            httpdate::fmt_http_date(until),
            httpdate::fmt_http_date(renew_at)
        );
        Ok(State::Valid {
            not_after: until,
            renew_at,
        })
    }

    /// Record a failure: log, status, mail; retry later with backoff.
    fn failed(&mut self, name: &str, state: &State, error: String) -> State {
        let attempt = state.failures() + 1;
        let s = &self.acme.settings;
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
        let wait = s.retry_initial.saturating_mul(factor).min(s.retry_max);
        let keeps = match self.acme.status().get(name).and_then(|st| st.not_after) {
            Some(t) => format!("the certificate until {} stays", httpdate::fmt_http_date(t)),
            None => "no certificate for it yet".into(),
        };
        log::error!(
            "acme: {name}: {error} (attempt {attempt}; {keeps}; next try in {}s)",
            wait.as_secs_f64().ceil() as u64
        );
        self.acme
            .update(name, |st| st.last_error = Some(error.clone()));
        self.mailer.send(
            &format!("tether: ACME failed for {name}"),
            &format!(
                "tether (pid {}) could not get a certificate for {name} from {}:\n\n    {error}\n\n\
                 Attempt {attempt} in a row; {keeps}. It tries again in {} seconds.\n",
                std::process::id(),
                s.directory,
                wait.as_secs()
            ),
        );
        // The account is read (or created) again next time: it may be what failed.
        self.account = None;
        State::Failed {
            attempt,
            retry_at: SystemTime::now() + wait,
        }
    }
}

/// Two thirds of the way from `from` to `until`.
fn two_thirds(from: SystemTime, until: SystemTime) -> SystemTime {
    let life = until.duration_since(from).unwrap_or(Duration::ZERO);
    from + life * 2 / 3
}

/// A certificate's not-before and not-after.
fn validity(der: &[u8]) -> Option<(SystemTime, SystemTime)> {
    use x509_parser::prelude::*;
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    let t = |ts: i64| {
        u64::try_from(ts)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
    };
    let v = cert.validity();
    Some((t(v.not_before.timestamp())?, t(v.not_after.timestamp())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_is_due_at_two_thirds_of_the_lifetime() {
        let from = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000);
        let until = from + Duration::from_secs(90 * 86_400);
        assert_eq!(
            two_thirds(from, until),
            from + Duration::from_secs(60 * 86_400)
        );
    }
}
