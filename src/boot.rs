//! The boot message: what the master tells a worker it starts, as one JSON document on the
//! worker's stdin (then EOF). Nothing secret goes on the command line or in the environment.
//!
//! - the config text the master checked (not the path: a worker started after the file was
//!   edited still runs the config the master accepted) and its name for messages;
//! - the admin key;
//! - the listening sockets the worker inherits, by descriptor number: for each listener
//!   address one socket per event-loop thread (`SO_REUSEPORT`), and the admin listener.
//!   The master keeps them open, so a worker that dies or is replaced loses no connection
//!   waiting in their queues;
//! - the write end of the status pipe, on which the worker says `ready` and passes on the
//!   admin API's `reload`, `restart` and `shutdown` (one word per line);
//! - facts for `/admin/status` (master pid, generation, restarts).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::RawFd;

use serde::{Deserialize, Serialize};

/// Everything a worker needs from its master.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Boot {
    pub config_name: String,
    pub config_text: String,
    pub key: Option<String>,
    /// For each listener address, the inherited sockets (one per event-loop thread).
    pub sockets: Vec<BootSockets>,
    /// The admin listener's inherited socket.
    pub admin: Option<BootSockets>,
    /// The write end of the status pipe.
    pub status_fd: RawFd,
    pub master_pid: u32,
    /// 1 for the first worker, one more for each worker started since.
    pub generation: u64,
    /// Workers restarted after an unexpected exit so far.
    pub restarts: u64,
    /// When the master started, in milliseconds since the Unix epoch.
    pub master_started_ms: u64,
}

/// The inherited sockets of one address.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BootSockets {
    pub addr: SocketAddr,
    pub fds: Vec<RawFd>,
}

impl Boot {
    /// Write the message (the master side).
    pub fn write_to(&self, mut w: impl Write) -> io::Result<()> {
        let text = serde_json::to_vec(self).map_err(io::Error::other)?;
        w.write_all(&text)?;
        w.flush()
    }

    /// Read the message until EOF (the worker side).
    pub fn read_from(mut r: impl Read) -> io::Result<Boot> {
        let mut text = Vec::new();
        r.read_to_end(&mut text)?;
        serde_json::from_slice(&text)
            .map_err(|e| io::Error::other(format!("bad boot message from the master: {e}")))
    }

    /// Every descriptor the worker must inherit.
    pub fn fds(&self) -> Vec<RawFd> {
        let mut fds: Vec<RawFd> = self.sockets.iter().flat_map(|s| s.fds.clone()).collect();
        fds.extend(self.admin.iter().flat_map(|s| s.fds.clone()));
        fds.push(self.status_fd);
        fds
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let boot = Boot {
            config_name: "t.toml".into(),
            config_text: "[[listener]]\n".into(),
            key: Some("k".into()),
            sockets: vec![BootSockets {
                addr: "127.0.0.1:8001".parse().unwrap(),
                fds: vec![5, 6],
            }],
            admin: Some(BootSockets {
                addr: "127.0.0.1:8005".parse().unwrap(),
                fds: vec![7],
            }),
            status_fd: 9,
            master_pid: 1,
            generation: 2,
            restarts: 0,
            master_started_ms: 3,
        };
        let mut buf = Vec::new();
        boot.write_to(&mut buf).unwrap();
        assert_eq!(Boot::read_from(&buf[..]).unwrap(), boot);
        assert_eq!(boot.fds(), vec![5, 6, 7, 9]);
        assert!(Boot::read_from(&b"{"[..]).is_err());
    }
}
