//! Starting a worker process and listening to it.
//!
//! `spawn` re-executes this binary with `--worker`: the worker gets its own process group
//! (a Ctrl-C on the terminal reaches only the master, which then drains the worker),
//! `PR_SET_PDEATHSIG = SIGKILL` (the worker dies with the master, whatever kills it; the
//! signal follows the death of the forking *thread*, so only the master's main thread calls
//! `spawn`), and
//! the descriptors of the boot message without close-on-exec; the boot message goes to its
//! stdin. Three threads per worker then read:
//! - its stdout and stderr, line by line: kept in a ring for the crash mail (`Output`),
//!   copied to the master's own stdout/stderr when `show_worker_output`, appended to
//!   `worker_log` if set;
//! - the status pipe: each word becomes an `Event::Status` for the master's loop.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tether_config::Settings;

use super::Event;
use crate::boot::Boot;

/// Lines of a worker's output kept for the crash mail, at most.
const KEEP_LINES: usize = 500;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The last lines a worker wrote (stdout and stderr, interleaved as they came).
#[derive(Default)]
pub struct Output {
    lines: Mutex<VecDeque<String>>,
}

impl Output {
    fn push(&self, line: String) {
        let mut l = lock(&self.lines);
        if l.len() == KEEP_LINES {
            l.pop_front();
        }
        l.push_back(line);
    }

    /// The last `n` lines.
    pub fn last(&self, n: usize) -> Vec<String> {
        let l = lock(&self.lines);
        l.iter().skip(l.len().saturating_sub(n)).cloned().collect()
    }
}

/// A worker process the master started.
pub struct Worker {
    pub child: Child,
    pub pid: u32,
    pub generation: u64,
    pub started: Instant,
    /// When it said `ready` (every loop runs).
    pub ready_at: Option<Instant>,
    pub output: Arc<Output>,
    /// The config it runs.
    pub settings: Arc<Settings>,
    /// Heartbeats missed in a row.
    pub misses: u32,
    /// Why the master killed it, for the crash mail.
    pub killed_for: Option<String>,
    /// Asked to stop (drain): killed if still there at this time.
    pub stop_deadline: Option<Instant>,
    /// The threads copying its stdout and stderr.
    readers: Vec<JoinHandle<()>>,
}

impl Worker {
    /// After its exit: wait (at most a second) until its last lines are copied, so the
    /// crash mail and the logs have them.
    pub fn finish_output(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for r in std::mem::take(&mut self.readers) {
            if r.is_finished() {
                let _ = r.join();
            }
        }
    }
}

/// How the worker's output is shown.
#[derive(Clone)]
pub struct OutputOpts {
    pub show: bool,
    pub log_file: Option<PathBuf>,
}

/// Start a worker with `boot` (its `status_fd` is filled in here).
pub fn spawn(
    mut boot: Boot,
    settings: Arc<Settings>,
    opts: &OutputOpts,
    events: &Sender<Event>,
) -> io::Result<Worker> {
    let (status_read, status_write) = pipe()?;
    boot.status_fd = raw(&status_write);
    let fds = boot.fds();
    let master = std::process::id() as libc::pid_t;
    let mut cmd = Command::new(worker_exe()?);
    cmd.arg("--worker")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // SAFETY: the closure runs in the child between fork and exec and only makes
    // async-signal-safe system calls (fcntl, prctl, getppid) on memory allocated before
    // the fork; it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            for &fd in &fds {
                if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
            }
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) < 0 {
                return Err(io::Error::last_os_error());
            }
            // The master died before the line above: do not run orphaned.
            if libc::getppid() != master {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn()?;
    drop(status_write);
    let pid = child.id();
    let output = Arc::new(Output::default());
    let log_file = match &opts.log_file {
        Some(p) => match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
        {
            Ok(f) => Some(Arc::new(Mutex::new(f))),
            Err(e) => {
                log::error!("worker_log {}: {e}; not written", p.display());
                None
            }
        },
        None => None,
    };
    let mut readers = Vec::with_capacity(2);
    if let Some(out) = child.stdout.take() {
        readers.push(copy_lines(
            out,
            false,
            opts.show,
            output.clone(),
            log_file.clone(),
        )?);
    }
    if let Some(err) = child.stderr.take() {
        readers.push(copy_lines(err, true, opts.show, output.clone(), log_file)?);
    }
    read_status(File::from(status_read), pid, events.clone())?;
    if let Some(stdin) = child.stdin.take() {
        if let Err(e) = boot.write_to(stdin) {
            log::error!("worker {pid}: cannot send its boot message: {e}");
        }
    }
    Ok(Worker {
        child,
        pid,
        generation: boot.generation,
        started: Instant::now(),
        ready_at: None,
        output,
        settings,
        misses: 0,
        killed_for: None,
        stop_deadline: None,
        readers,
    })
}

/// This binary, for the worker. A binary replaced on disk since the master started (an
/// upgrade) is the one the next worker runs.
fn worker_exe() -> io::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let text = exe.to_string_lossy();
    Ok(match text.strip_suffix(" (deleted)") {
        Some(path) => PathBuf::from(path),
        None => exe,
    })
}

/// A pipe, both ends close-on-exec (the write end is made inheritable in the child only).
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: `fds` is valid for two descriptors.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 just returned these two descriptors; nothing else owns them.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn raw(fd: &OwnedFd) -> RawFd {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// Copy a worker's stream line by line to the ring, the master's stream and the log file.
fn copy_lines(
    from: impl Read + Send + 'static,
    stderr: bool,
    show: bool,
    output: Arc<Output>,
    log_file: Option<Arc<Mutex<File>>>,
) -> io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("worker-output".into())
        .spawn(move || {
            let mut r = BufReader::new(from);
            let mut line = Vec::new();
            loop {
                line.clear();
                match r.read_until(b'\n', &mut line) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                if show {
                    // A master that cannot write its own output goes on supervising.
                    let _ = if stderr {
                        io::stderr().lock().write_all(&line)
                    } else {
                        io::stdout().lock().write_all(&line)
                    };
                }
                if let Some(f) = &log_file {
                    let _ = lock(f).write_all(&line);
                }
                let text = String::from_utf8_lossy(&line);
                output.push(text.trim_end_matches(['\r', '\n']).to_string());
            }
        })
}

/// Turn each line of the status pipe into an event.
fn read_status(from: File, pid: u32, events: Sender<Event>) -> io::Result<()> {
    std::thread::Builder::new()
        .name("worker-status".into())
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(word) = line else { return };
                let word = word.trim().to_string();
                if events.send(Event::Status { pid, word }).is_err() {
                    return;
                }
            }
        })?;
    Ok(())
}
