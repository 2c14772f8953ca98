//! Where a session server logs, as Webots does it: `<logDir>/session/output.log`, rotated
//! when it would reach 500 kB into `output.log.1` … `output.log.10` (the oldest dropped),
//! or standard output in `debug` mode. Both are a `std::io::Write` that the binary hands to
//! its logger (e.g. `env_logger::Target::Pipe`). Writes are gathered into whole lines
//! before the size check (a logger may write one record in several pieces), so a file is
//! only rotated between lines, and a record never straddles two files.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Webots' limits: 500 000 bytes per file, 10 old files.
pub const MAX_BYTES: u64 = 500_000;
pub const BACKUPS: usize = 10;

/// A log file that renames itself to `.1` (and `.1` to `.2`, …) when full.
#[derive(Debug)]
pub struct RotatingFile {
    path: PathBuf,
    max_bytes: u64,
    backups: usize,
    file: File,
    size: u64,
    /// The start of a line not yet ended by `\n`.
    partial: Vec<u8>,
}

/// A line longer than this is written without waiting for its end.
const MAX_PARTIAL: usize = 64 * 1024;

impl RotatingFile {
    /// Open (append) `path` with Webots' limits, creating its directory.
    pub fn open(path: &Path) -> io::Result<RotatingFile> {
        RotatingFile::with_limits(path, MAX_BYTES, BACKUPS)
    }

    /// Open with other limits. `backups == 0` never rotates (as Python's handler).
    pub fn with_limits(path: &Path, max_bytes: u64, backups: usize) -> io::Result<RotatingFile> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(RotatingFile {
            path: path.to_path_buf(),
            max_bytes,
            backups,
            file,
            size,
            partial: Vec::new(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn numbered(&self, n: usize) -> PathBuf {
        let mut name = self.path.clone().into_os_string();
        name.push(format!(".{n}"));
        PathBuf::from(name)
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for n in (1..self.backups).rev() {
            let from = self.numbered(n);
            if from.exists() {
                fs::rename(&from, self.numbered(n + 1))?;
            }
        }
        fs::rename(&self.path, self.numbered(1))?;
        self.file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl RotatingFile {
    /// Write whole lines, rotating first when they would fill the file.
    fn write_block(&mut self, block: &[u8]) -> io::Result<()> {
        let full = self.size > 0 && self.size + block.len() as u64 >= self.max_bytes;
        if full && self.backups > 0 {
            self.rotate()?;
        }
        self.file.write_all(block)?;
        self.size += block.len() as u64;
        Ok(())
    }
}

impl Write for RotatingFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.partial.extend_from_slice(buf);
        let end = match self.partial.iter().rposition(|b| *b == b'\n') {
            Some(i) => i + 1,
            None if self.partial.len() > MAX_PARTIAL => self.partial.len(),
            None => return Ok(buf.len()),
        };
        let block: Vec<u8> = self.partial.drain(..end).collect();
        self.write_block(&block)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.partial.is_empty() {
            let block = std::mem::take(&mut self.partial);
            self.write_block(&block)?;
        }
        self.file.flush()
    }
}

impl Drop for RotatingFile {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

/// Webots' log destination: standard output when `debug`, else the rotating
/// `<log_dir>/session/output.log` (its directory created).
pub fn session_log_writer(log_dir: &Path, debug: bool) -> io::Result<Box<dyn Write + Send>> {
    if debug {
        return Ok(Box::new(io::stdout()));
    }
    let file = RotatingFile::open(&log_dir.join("session").join("output.log"))?;
    Ok(Box::new(file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("tether-log-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    #[test]
    fn rotates_into_numbered_files_and_drops_the_oldest() {
        let dir = temp("rotate");
        let path = dir.join("session").join("output.log");
        let mut f = RotatingFile::with_limits(&path, 100, 3).expect("open");
        for i in 0..10 {
            // 60 bytes per line: every line after the first of a file rotates it.
            writeln!(f, "{i:059}").expect("write");
        }
        f.flush().expect("flush");
        let read = |p: PathBuf| fs::read_to_string(p).unwrap_or_default();
        assert_eq!(read(path.clone()), format!("{:059}\n", 9));
        assert_eq!(read(f.numbered(1)), format!("{:059}\n", 8));
        assert_eq!(read(f.numbered(3)), format!("{:059}\n", 6));
        assert!(!f.numbered(4).exists(), "only 3 backups are kept");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn appends_to_an_existing_file_and_counts_its_size() {
        let dir = temp("append");
        let path = dir.join("output.log");
        fs::create_dir_all(&dir).expect("dir");
        fs::write(&path, "x".repeat(90)).expect("seed");
        let mut f = RotatingFile::with_limits(&path, 100, 2).expect("open");
        f.write_all(b"0123456789\n").expect("write");
        assert_eq!(fs::read_to_string(f.numbered(1)).expect(".1").len(), 90);
        assert_eq!(fs::read_to_string(&path).expect("new"), "0123456789\n");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn session_writer_creates_the_directory() {
        let dir = temp("session");
        let mut w = session_log_writer(&dir, false).expect("writer");
        w.write_all(b"hello\n").expect("write");
        w.flush().expect("flush");
        let text = fs::read_to_string(dir.join("session/output.log")).expect("log file");
        assert_eq!(text, "hello\n");
        let _ = fs::remove_dir_all(&dir);
    }
}
