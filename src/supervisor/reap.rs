//! The master's bookkeeping of exits and deadlines: `reap` collects the workers that
//! exited (a retired one is done, a replacement that died keeps the running config, the
//! serving one is restarted after the backoff and mailed about), `timers` starts a due
//! worker and kills one past its drain deadline or not ready in time, `prune` closes the
//! sockets no live config needs.

use std::io;
use std::time::{Duration, Instant};

use tether_config::Settings;

use super::process::Worker;
use super::{mail, Master, START_TIMEOUT};

impl Master {
    /// Collect the workers that exited and act on each.
    pub(super) fn reap(&mut self) -> io::Result<()> {
        let now = Instant::now();
        let mut i = 0;
        while i < self.retiring.len() {
            if let Some(status) = exited(&mut self.retiring[i]) {
                let mut w = self.retiring.swap_remove(i);
                w.finish_output();
                log::info!(
                    "worker {} (generation {}) finished ({})",
                    w.pid,
                    w.generation,
                    mail::describe_status(Some(status))
                );
                self.prune();
            } else {
                i += 1;
            }
        }
        if let Some(status) = self.starting.as_mut().and_then(|(w, _)| exited(w)) {
            if let Some((mut w, _)) = self.starting.take() {
                w.finish_output();
                log::error!(
                    "new worker {} exited before it was ready ({}); the running config stays",
                    w.pid,
                    mail::describe_status(Some(status))
                );
            }
            self.prune();
            if self.current.is_none() && self.shutdown.is_none() && self.respawn_at.is_none() {
                self.respawn_at = Some(now + self.backoff.after_crash(Duration::ZERO));
            }
        }
        let Some(status) = self.current.as_mut().and_then(exited) else {
            return Ok(());
        };
        let Some(mut w) = self.current.take() else {
            return Ok(());
        };
        w.finish_output();
        let desc = mail::describe_status(Some(status));
        if self.shutdown.is_some() {
            log::info!("worker {} stopped ({desc})", w.pid);
            return Ok(());
        }
        if !self.ever_ready {
            return Err(io::Error::other(format!(
                "the worker exited before it was ready ({desc}); see its output above"
            )));
        }
        let uptime = now.saturating_duration_since(w.started);
        let wait = self.backoff.after_crash(uptime);
        self.restarts += 1;
        log::error!(
            "worker {} exited unexpectedly ({desc}) after {:.1} s; restart {} in {} ms",
            w.pid,
            uptime.as_secs_f64(),
            self.restarts,
            wait.as_millis()
        );
        let lines = w.output.last(self.settings.ops.supervisor.mail_log_lines);
        mail::send_crash(
            &self.mailer,
            &self.settings,
            &mail::Crash {
                pid: w.pid,
                status: Some(status),
                killed_for: w.killed_for.as_deref(),
                uptime,
                restarts: self.restarts,
                next_in: wait,
                config_name: &self.source.name(),
                last_lines: lines,
            },
        );
        // A replacement already starting takes over when ready; otherwise start one.
        if self.starting.is_none() {
            self.respawn_at = Some(now + wait);
        }
        Ok(())
    }

    /// Close the sockets no live worker's config needs.
    fn prune(&mut self) {
        let mut in_use: Vec<&Settings> = vec![&self.settings];
        in_use.extend(self.workers().map(|w| w.settings.as_ref()));
        let in_use: Vec<Settings> = in_use.into_iter().cloned().collect();
        let refs: Vec<&Settings> = in_use.iter().collect();
        self.sockets.prune(&refs);
    }

    pub(super) fn timers(&mut self) {
        let now = Instant::now();
        if self.respawn_at.is_some_and(|t| now >= t)
            && self.current.is_none()
            && self.starting.is_none()
            && self.shutdown.is_none()
        {
            self.respawn_at = None;
            match self.spawn(&self.text.clone(), self.settings.clone()) {
                Ok(w) => {
                    log::info!("started worker {} (generation {})", w.pid, w.generation);
                    self.current = Some(w);
                }
                Err(e) => {
                    let wait = self.backoff.after_crash(Duration::ZERO);
                    log::error!("cannot start a worker: {e}; trying again in {wait:?}");
                    self.respawn_at = Some(now + wait);
                }
            }
        }
        let late = |w: &Worker| {
            w.stop_deadline.is_some_and(|d| now >= d)
                || (w.ready_at.is_none()
                    && now.saturating_duration_since(w.started) > START_TIMEOUT)
        };
        let all = self
            .current
            .iter_mut()
            .chain(self.starting.iter_mut().map(|(w, _)| w))
            .chain(self.retiring.iter_mut());
        for w in all {
            if late(w) && w.killed_for.is_none() {
                let why = if w.stop_deadline.is_some() {
                    "still running after the drain timeout"
                } else {
                    "not ready in time"
                };
                log::warn!("worker {}: {why}; killing it (SIGKILL)", w.pid);
                kill(w, libc::SIGKILL);
                w.killed_for = Some(why.into());
            }
        }
    }
}

/// The worker's exit status if it exited (reaped now).
pub(super) fn exited(w: &mut Worker) -> Option<std::process::ExitStatus> {
    match w.child.try_wait() {
        Ok(s) => s,
        Err(e) => {
            log::error!("worker {}: cannot wait for it: {e}", w.pid);
            None
        }
    }
}

/// Send `sig` to a worker not reaped yet (so its pid is still its own).
pub(super) fn kill(w: &Worker, sig: libc::c_int) {
    // SAFETY: kill has no memory preconditions; the pid is our unreaped child.
    if unsafe { libc::kill(w.pid as libc::pid_t, sig) } < 0 {
        let e = io::Error::last_os_error();
        log::warn!("worker {}: signal {sig}: {e}", w.pid);
    }
}
