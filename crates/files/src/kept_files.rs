//! Small files kept in memory after a first request, per served root (`paths::Root`). A
//! hit costs one `fstatat(2)` of the path, against the root's descriptor, instead of
//! `openat2`, `fstat`, `pread` and `close`. An entry holds only while that path still
//! names the very version of the file it was read from: device, inode, size, and mtime and
//! ctime to the nanosecond, as `fstat` of the descriptor said before the read. Any write
//! to the file, a rename over it, a `chmod`, a symlink swapped in on the way: the version
//! differs, the entry is dropped, and the request takes the full way again
//! (`paths::resolve`, confined to the root).
//!
//! Kept: files asked for by their own path (not an index file of a directory, where a new
//! index file earlier in the list must win), of at most [`KEPT_MAX`] bytes, at most
//! [`KEPT_ENTRIES`] per root and [`KEPT_BYTES`] in all (past either, the cache starts
//! over). The cache is dropped with its root (a root is reopened when its directory is
//! replaced).

use std::collections::HashMap;
use std::ffi::CString;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// The largest file kept (the size `static_files` sends inline with its head anyway).
pub const KEPT_MAX: u64 = crate::INLINE_MAX;
/// Entries per root, at most.
const KEPT_ENTRIES: usize = 1024;
/// Bytes kept per root, at most.
const KEPT_BYTES: usize = 8 << 20;

/// What identifies one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Version {
    dev: u64,
    ino: u64,
    size: i64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Version {
    fn of(st: &libc::stat) -> Version {
        Version {
            dev: st.st_dev,
            ino: st.st_ino,
            size: st.st_size,
            mtime: (st.st_mtime, st.st_mtime_nsec),
            ctime: (st.st_ctime, st.st_ctime_nsec),
        }
    }
}

/// One kept file.
#[derive(Debug)]
pub struct Kept {
    /// The path it was asked by, under the real root (its extension gives the type).
    pub path: PathBuf,
    pub bytes: Bytes,
    pub modified: Option<SystemTime>,
    /// The path relative to the root, for `fstatat`.
    rel: CString,
    version: Version,
}

/// The entries of one root by request path, and their bytes in all.
#[derive(Debug, Default)]
struct Entries {
    map: HashMap<Box<str>, Arc<Kept>>,
    bytes: usize,
}

/// The kept files of one root.
#[derive(Debug, Default)]
pub struct KeptFiles {
    entries: Mutex<Entries>,
}

impl KeptFiles {
    /// The file kept for `target`, if the path under `dir` still names that version.
    pub fn get(&self, dir: &File, target: &str) -> Option<Arc<Kept>> {
        let kept = self.lock().map.get(target).cloned()?;
        if stat_at(dir, &kept.rel).is_some_and(|v| v == kept.version) {
            return Some(kept);
        }
        let mut e = self.lock();
        if let Some(gone) = e.map.remove(target) {
            e.bytes -= gone.bytes.len();
        }
        None
    }

    /// Read `file` (opened for `target` at `rel` under the root, `path` under the real
    /// root) and keep it, if it is small enough; `None`: serve it from the descriptor.
    pub fn keep(&self, target: &str, rel: &[u8], path: PathBuf, file: &File) -> Option<Arc<Kept>> {
        let st = fstat(file)?;
        let size = u64::try_from(st.st_size).ok()?;
        if size > KEPT_MAX || st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return None;
        }
        let mut buf = vec![0u8; size as usize];
        file.read_exact_at(&mut buf, 0).ok()?;
        let modified = u64::try_from(st.st_mtime)
            .ok()
            .map(|s| UNIX_EPOCH + Duration::new(s, st.st_mtime_nsec.clamp(0, 999_999_999) as u32));
        let kept = Arc::new(Kept {
            path,
            bytes: Bytes::from(buf),
            modified,
            rel: CString::new(rel).ok()?,
            version: Version::of(&st),
        });
        let mut e = self.lock();
        if e.map.len() >= KEPT_ENTRIES || e.bytes + kept.bytes.len() > KEPT_BYTES {
            e.map.clear();
            e.bytes = 0;
        }
        e.bytes += kept.bytes.len();
        if let Some(old) = e.map.insert(target.into(), kept.clone()) {
            e.bytes -= old.bytes.len();
        }
        Some(kept)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `fstat` of an open file.
fn fstat(file: &File) -> Option<libc::stat> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid descriptor and a buffer of the right type; read only on success.
    let rc = unsafe { libc::fstat(file.as_raw_fd(), st.as_mut_ptr()) };
    // SAFETY: `fstat` returned 0, so it filled `st`.
    (rc == 0).then(|| unsafe { st.assume_init() })
}

/// The version of the file `rel` names under `dir` now (symlinks followed).
fn stat_at(dir: &File, rel: &CString) -> Option<Version> {
    let mut st = std::mem::MaybeUninit::<libc::stat>::uninit();
    // SAFETY: a valid descriptor, a NUL-terminated path, a buffer of the right type; read
    // only on success.
    let rc = unsafe { libc::fstatat(dir.as_raw_fd(), rel.as_ptr(), st.as_mut_ptr(), 0) };
    // SAFETY: `fstatat` returned 0, so it filled `st`.
    (rc == 0).then(|| Version::of(unsafe { &st.assume_init() }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn dir() -> (PathBuf, File) {
        let d = std::env::temp_dir().join(format!(
            "tether-kept-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        let f = File::open(&d).expect("open dir");
        (d, f)
    }

    fn keep(k: &KeptFiles, d: &std::path::Path, name: &str) -> Option<Arc<Kept>> {
        let f = File::open(d.join(name)).expect("open");
        k.keep(&format!("/{name}"), name.as_bytes(), d.join(name), &f)
    }

    #[test]
    fn a_kept_file_holds_until_it_changes_in_any_way() {
        let (d, fd) = dir();
        let k = KeptFiles::default();
        std::fs::write(d.join("a.txt"), b"first").expect("write");
        let kept = keep(&k, &d, "a.txt").expect("kept");
        assert_eq!(&kept.bytes[..], b"first");
        assert!(k.get(&fd, "/a.txt").is_some());
        assert!(k.get(&fd, "/b.txt").is_none());
        // A chmod changes the ctime: the entry goes.
        let mut p = std::fs::metadata(d.join("a.txt"))
            .expect("meta")
            .permissions();
        p.set_mode(0o600);
        std::fs::set_permissions(d.join("a.txt"), p).expect("chmod");
        assert!(k.get(&fd, "/a.txt").is_none());
        // Kept again, then replaced by a rename (another inode, same size).
        keep(&k, &d, "a.txt").expect("kept");
        std::fs::write(d.join("new"), b"other").expect("write");
        std::fs::rename(d.join("new"), d.join("a.txt")).expect("rename");
        assert!(k.get(&fd, "/a.txt").is_none());
        // Removed: no entry either.
        keep(&k, &d, "a.txt").expect("kept");
        std::fs::remove_file(d.join("a.txt")).expect("rm");
        assert!(k.get(&fd, "/a.txt").is_none());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn big_files_and_directories_are_not_kept_and_the_cache_is_bounded() {
        let (d, _fd) = dir();
        let k = KeptFiles::default();
        std::fs::write(d.join("big"), vec![1u8; KEPT_MAX as usize + 1]).expect("write");
        assert!(keep(&k, &d, "big").is_none());
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        assert!(keep(&k, &d, "sub").is_none());
        for i in 0..KEPT_ENTRIES + 5 {
            std::fs::write(d.join(format!("f{i}")), b"x").expect("write");
            keep(&k, &d, &format!("f{i}")).expect("kept");
        }
        assert!(k.lock().map.len() <= KEPT_ENTRIES);
        let _ = std::fs::remove_dir_all(&d);
    }
}
