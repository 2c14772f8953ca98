//! The master's pid file (`pid_file`, default [`default_path`]) and the commands that use
//! it, like nginx's `-s`: `tether reload` (SIGHUP), `tether reopen` (SIGUSR1), `tether quit`
//! (SIGTERM: graceful, what systemd sends) and `tether stop` (SIGQUIT: fast).
//!
//! The file is written once the listeners are bound (a tether refused an address writes
//! none), replaced if it names another process (logged), and removed on exit only while it
//! still names this process. A command that finds no file, or a file naming a process that
//! is gone (a stale file), says so and fails.

use std::io;
use std::path::{Path, PathBuf};

use tether_config::Settings;

/// `/run/tether.pid` for root; otherwise `$XDG_RUNTIME_DIR/tether.pid`, else
/// `/tmp/tether-<uid>.pid`.
pub fn default_path() -> PathBuf {
    // SAFETY: getuid(2) has no failure mode and touches no memory.
    let uid = unsafe { libc::getuid() };
    if uid == 0 {
        return PathBuf::from("/run/tether.pid");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() => Path::new(&dir).join("tether.pid"),
        _ => PathBuf::from(format!("/tmp/tether-{uid}.pid")),
    }
}

/// The pid file of `settings`.
pub fn path_of(settings: &Settings) -> PathBuf {
    settings.pid_file.clone().unwrap_or_else(default_path)
}

/// The pid file of the running process; removed when dropped (if it still names us).
pub struct PidFile {
    path: PathBuf,
}

impl PidFile {
    /// Write this process' pid to `settings`' pid file. A failure is logged, not fatal:
    /// tether serves without one, and the signals still work.
    pub fn create(settings: &Settings) -> Option<PidFile> {
        let path = path_of(settings);
        if let Some(other) = read_pid(&path).ok().filter(|p| alive(*p)) {
            if other != std::process::id() {
                // INFO, not WARN: two tethers on different addresses may share the default
                // path (tests do); the newest one is the one the commands reach.
                log::info!(
                    "pid file {} named running process {other}; it now names this one",
                    path.display()
                );
            }
        }
        match std::fs::write(&path, format!("{}\n", std::process::id())) {
            Ok(()) => Some(PidFile { path }),
            Err(e) => {
                log::warn!("cannot write the pid file {}: {e}", path.display());
                None
            }
        }
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        if read_pid(&self.path).ok() == Some(std::process::id()) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn read_pid(path: &Path) -> io::Result<u32> {
    let text = std::fs::read_to_string(path)?;
    text.trim().parse().map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} does not hold a pid: {:?}", path.display(), text.trim()),
        )
    })
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    if pid <= 0 || unsafe { libc::kill(pid, 0) } != 0 {
        return false;
    }
    // A zombie (exited, not yet reaped by its parent) is gone too.
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let state = stat
        .rsplit_once(") ")
        .and_then(|(_, rest)| rest.chars().next());
    state != Some('Z')
}

/// Send `sig` (named `name` in messages) to the master named by the pid file of
/// `settings`; the message to print on success.
pub fn signal(settings: &Settings, sig: libc::c_int, name: &str) -> Result<String, String> {
    let path = path_of(settings);
    let pid = read_pid(&path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!(
            "no pid file at {}: is tether running? (`pid_file` in the config names another)",
            path.display()
        ),
        _ => format!("cannot read the pid file {}: {e}", path.display()),
    })?;
    if !alive(pid) {
        return Err(format!(
            "the pid file {} names process {pid}, which is not running (a stale pid file: \
             tether was killed or the machine restarted)",
            path.display()
        ));
    }
    // SAFETY: kill(2) on a pid read from the pid file, checked alive just above.
    if unsafe { libc::kill(pid as i32, sig) } != 0 {
        return Err(format!(
            "cannot send {name} to {pid}: {}",
            io::Error::last_os_error()
        ));
    }
    Ok(format!(
        "sent {name} to tether (pid {pid}, from {})",
        path.display()
    ))
}
