//! Where lines go: a file opened for appending (created `0644`-ish by the umask, reopened
//! by path for logrotate) or the process's stderr. Only the writer thread writes and
//! reopens; `LogWriter::open` opens the file once on the caller's thread (at start-up) so
//! that a bad path is an error there.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A log's destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Appended to; `reopen` opens the path again (after logrotate renamed it).
    File(PathBuf),
    /// The process's standard error; `reopen` does nothing.
    Stderr,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::File(p) => write!(f, "{}", p.display()),
            Target::Stderr => f.write_str("stderr"),
        }
    }
}

/// An open target.
pub(crate) enum Sink {
    File(File),
    Stderr,
}

fn open_file(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open log file {}: {e}", path.display()))
}

impl Sink {
    pub(crate) fn open(target: &Target) -> Result<Sink, String> {
        match target {
            Target::File(p) => open_file(p).map(Sink::File),
            Target::Stderr => Ok(Sink::Stderr),
        }
    }

    /// Open the path again; on failure the old file stays in use (nothing is lost).
    pub(crate) fn reopen(&mut self, target: &Target) -> Result<(), String> {
        if let (Sink::File(f), Target::File(p)) = (&mut *self, target) {
            *f = open_file(p)?;
        }
        Ok(())
    }

    /// Write all of `bytes` (blocks as long as the target does: the writer thread only).
    pub(crate) fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Sink::File(f) => f.write_all(bytes),
            Sink::Stderr => {
                let mut err = io::stderr().lock();
                err.write_all(bytes)?;
                err.flush()
            }
        }
    }
}
