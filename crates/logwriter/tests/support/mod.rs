//! Test helpers: a temp directory, and a FIFO (made by the real `mkfifo`) whose read end
//! the test holds open without reading, so that a writer's `write(2)` blocks once the
//! kernel's pipe buffer (set to one page) is full — a log target nobody reads.
#![allow(dead_code)]

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "tether-logwriter-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A FIFO at `path` and its read end, opened non-blocking and not read (yet).
pub struct Fifo {
    pub path: PathBuf,
    reader: File,
}

impl Fifo {
    pub fn new(path: PathBuf) -> Fifo {
        let status = Command::new("mkfifo")
            .arg(&path)
            .status()
            .expect("mkfifo runs (coreutils)");
        assert!(status.success(), "mkfifo {}", path.display());
        let reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&path)
            .expect("open the FIFO's read end");
        // The smallest pipe (one page): whatever a writer queues beyond it stays stuck.
        // SAFETY: fcntl on a descriptor this File owns; no memory is passed.
        let size = unsafe { libc::fcntl(reader.as_raw_fd(), libc::F_SETPIPE_SZ, 4096) };
        assert!(
            size >= 4096,
            "F_SETPIPE_SZ: {}",
            std::io::Error::last_os_error()
        );
        Fifo { path, reader }
    }

    /// Read until the writing side closes (EOF), for at most `limit`; the bytes read.
    pub fn drain_to_eof(&mut self, limit: Duration) -> Option<Vec<u8>> {
        let deadline = Instant::now() + limit;
        let mut all = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return Some(all),
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("read the FIFO: {e}"),
            }
        }
    }
}

/// Poll `cond` every 10 ms for at most `limit`; true if it became true.
pub fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// `line N` for N in `range`, newline-terminated, as one text.
pub fn numbered(range: std::ops::Range<usize>) -> String {
    range.map(|i| format!("line {i}\n")).collect()
}
