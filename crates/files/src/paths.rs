//! Mapping a request path to a file or directory under a root: percent-decoding, normalising
//! `.` and `..`, trying the index files of a directory, and confining the result (symlinks
//! included) to the root; `Content-Type` by extension.
//!
//! Rules: a malformed escape, a NUL or a `..` that would climb above the root (plain or
//! encoded, `%2e%2e`, `%2f`) is `400`; a path whose real location (after following every
//! symlink) is outside the real root is `403`; what does not exist is `404`.
//!
//! How (one path walk per request, as nginx does, instead of a `readlink` per component):
//! the root is opened once ([`Root`], kept by the route and checked again at most once a
//! second, so a root that is a symlink switched to a new release is followed). A request's
//! normalised path is opened relative to it with `openat2(RESOLVE_BENEATH |
//! RESOLVE_NO_MAGICLINKS)`: the kernel follows symlinks but refuses any that leads out of
//! the root, and there is no window between the check and the open. The opened descriptor's
//! `fstat` says what it is. Two cases take the old way (`canonicalize` the path and compare
//! it with the real root): a kernel without `openat2` (before 5.6, or a seccomp filter that
//! refuses it), and a symlink with an absolute target, which `RESOLVE_BENEATH` refuses even
//! when it points inside the root.

use std::ffi::{CString, OsStr};
use std::fs::{File, Metadata};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::kept_files::{Kept, KeptFiles};

/// Index file served for a directory by default.
pub const INDEX: &str = "index.html";

/// How long an opened root is trusted before its path is resolved again.
const ROOT_RECHECK: Duration = Duration::from_secs(1);

/// What a request path names under a root.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file, opened: the path it was asked by (under the root; its extension gives
    /// the `Content-Type`), the open file, and its metadata (`fstat` of that descriptor).
    File(PathBuf, File, Metadata),
    /// A directory asked for with its trailing slash, with none of the index files.
    Directory {
        /// The directory under the real root.
        dir: PathBuf,
        /// The decoded, normalised URL path, ending in `/` (`/`, `/docs/a b/`).
        url: String,
    },
    /// A directory asked for without its trailing slash: redirect here.
    Redirect(String),
    NotFound,
    Forbidden,
    BadRequest,
}

/// A served directory, opened: its real (canonical) path and a descriptor that request
/// paths are resolved beneath.
#[derive(Debug)]
pub struct Root {
    real: PathBuf,
    dir: File,
    /// Device and inode of the directory.
    id: (u64, u64),
    /// Whether `openat2` works here (probed when the root is opened).
    beneath: bool,
    /// Small files already served (`kept_files.rs`).
    kept: KeptFiles,
}

impl Root {
    /// Open `path` (following symlinks) as a root.
    pub fn open(path: &Path) -> io::Result<Root> {
        let real = path.canonicalize()?;
        let dir = open_dir(&real)?;
        let m = dir.metadata()?;
        let beneath = openat2_works(&dir);
        Ok(Root {
            real,
            dir,
            id: (m.dev(), m.ino()),
            beneath,
            kept: KeptFiles::default(),
        })
    }

    /// The small file kept for request path `target`, if still the same file.
    pub fn kept(&self, target: &str) -> Option<Arc<Kept>> {
        self.kept.get(&self.dir, target)
    }

    /// Keep the file `resolve` opened for `target` at `path` (under the real root), if
    /// small enough (`kept_files.rs`).
    pub fn keep(&self, target: &str, path: &Path, file: &File) -> Option<Arc<Kept>> {
        let rel = path.strip_prefix(&self.real).ok()?;
        (self.kept).keep(target, rel.as_os_str().as_bytes(), path.to_path_buf(), file)
    }

    /// The real (canonical) path of the root.
    pub fn real(&self) -> &Path {
        &self.real
    }
}

/// The root of a route, opened on first use and checked again at most once a second (a
/// `stat` of its path; reopened if that is another directory now). Cloning makes an empty
/// cache; all caches compare equal (they are not configuration).
#[derive(Default)]
pub struct RootCache {
    /// The root path as configured, when it was last checked, and what it opened.
    slot: Mutex<Option<(PathBuf, Instant, Arc<Root>)>>,
}

impl RootCache {
    /// The opened root for `path`; an error if it cannot be opened (it does not exist).
    pub fn get(&self, path: &Path) -> io::Result<Arc<Root>> {
        let now = Instant::now();
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((p, checked, root)) = slot.as_mut().filter(|(p, ..)| p == path) {
            if now.saturating_duration_since(*checked) < ROOT_RECHECK {
                return Ok(root.clone());
            }
            // Still the same directory (not a symlink switched to another, not replaced)?
            if std::fs::metadata(p).is_ok_and(|m| (m.dev(), m.ino()) == root.id) {
                *checked = now;
                return Ok(root.clone());
            }
        }
        *slot = None;
        let root = Arc::new(Root::open(path)?);
        *slot = Some((path.to_path_buf(), now, root.clone()));
        Ok(root)
    }
}

impl Clone for RootCache {
    fn clone(&self) -> RootCache {
        RootCache::default()
    }
}

impl PartialEq for RootCache {
    fn eq(&self, _: &RootCache) -> bool {
        true
    }
}

impl Eq for RootCache {}

impl std::fmt::Debug for RootCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RootCache")
    }
}

fn open_dir(path: &Path) -> io::Result<File> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: `c` is a valid NUL-terminated path; the result is checked before use.
    let fd = unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// `struct open_how` of `openat2(2)` (libc's is `non_exhaustive`).
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

/// Set once `openat2` is seen refused as a system call (ENOSYS, or a seccomp filter's EPERM):
/// every root then takes the old way.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Whether `openat2` can open `.` beneath `dir` (it cannot before Linux 5.6, or under a
/// seccomp filter that does not know it).
fn openat2_works(dir: &File) -> bool {
    if NO_OPENAT2.load(Ordering::Relaxed) {
        return false;
    }
    match openat2_beneath(dir, c".", libc::O_PATH) {
        Ok(_) => true,
        Err(e) => {
            log::info!("files: openat2 unavailable ({e}); confining paths with canonicalize");
            NO_OPENAT2.store(true, Ordering::Relaxed);
            false
        }
    }
}

/// Open `rel` beneath `dir`: symlinks are followed, but never out of `dir`.
fn openat2_beneath(dir: &File, rel: &std::ffi::CStr, flags: i32) -> io::Result<File> {
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: libc::RESOLVE_BENEATH | libc::RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: `rel` is NUL-terminated, `how` is a valid `open_how` of the size passed; the
    // descriptor returned is checked, then owned by the `File`.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            rel.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    Ok(unsafe { File::from_raw_fd(fd as i32) })
}

/// Flags a file to serve is opened with: `O_NONBLOCK` so that a FIFO under the root cannot
/// block the loop (nginx opens files the same way); `fstat` then refuses what is not a
/// regular file or a directory.
const OPEN_FLAGS: i32 = libc::O_RDONLY | libc::O_NONBLOCK | libc::O_NOCTTY;

/// What opening one path under the root gave.
enum Opened {
    Found(File, Metadata),
    Refused(Resolved),
}

/// Open `rel` (a normalised relative path, `.` for the root itself) under `root`.
fn open_under(root: &Root, rel: &[u8]) -> Opened {
    if root.beneath {
        let Ok(c) = CString::new(rel) else {
            return Opened::Refused(Resolved::BadRequest);
        };
        match openat2_beneath(&root.dir, &c, OPEN_FLAGS) {
            Ok(f) => return stat(f),
            // An absolute symlink (even one pointing inside the root) or one leading out:
            // the old check tells which.
            Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
            Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => {
                NO_OPENAT2.store(true, Ordering::Relaxed);
            }
            Err(e) => return Opened::Refused(refusal(&e)),
        }
    }
    open_confined(root, rel)
}

/// The old way: the real path (every symlink followed) must lie under the real root.
fn open_confined(root: &Root, rel: &[u8]) -> Opened {
    let path = root.real.join(OsStr::from_bytes(rel));
    match path.canonicalize() {
        Ok(real) if real.starts_with(&root.real) => {
            let c = match CString::new(real.as_os_str().as_bytes()) {
                Ok(c) => c,
                Err(_) => return Opened::Refused(Resolved::BadRequest),
            };
            // SAFETY: `c` is NUL-terminated; the descriptor is checked, then owned.
            let fd = unsafe { libc::open(c.as_ptr(), OPEN_FLAGS | libc::O_CLOEXEC) };
            if fd < 0 {
                return Opened::Refused(refusal(&io::Error::last_os_error()));
            }
            // SAFETY: a fresh descriptor that nothing else owns.
            stat(unsafe { File::from_raw_fd(fd) })
        }
        Ok(_) => Opened::Refused(Resolved::Forbidden),
        Err(_) => Opened::Refused(Resolved::NotFound),
    }
}

fn stat(f: File) -> Opened {
    match f.metadata() {
        Ok(m) => Opened::Found(f, m),
        Err(e) => Opened::Refused(refusal(&e)),
    }
}

/// The answer for a failed open or stat: permission is `403`, anything else `404`.
fn refusal(e: &io::Error) -> Resolved {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Resolved::Forbidden,
        _ => Resolved::NotFound,
    }
}

/// Percent-decode a path; `None` for a malformed escape.
pub fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(out)
}

/// Percent-encode one path segment: everything but the unreserved characters
/// (`A-Z a-z 0-9 - . _ ~`) is escaped, so the result is safe in an `href` as a relative URL.
pub fn percent_encode(segment: &[u8]) -> String {
    let mut out = String::with_capacity(segment.len());
    for &c in segment {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

/// The path part of a request target (no query, no fragment).
pub fn path_of(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// A request path, decoded and normalised.
struct Normal<'a> {
    /// The path part of the target, as sent.
    raw: &'a str,
    /// Its segments, `.` and `..` applied.
    segments: Vec<Vec<u8>>,
    /// The segments joined with `/` (empty for the root).
    rel: Vec<u8>,
}

/// `None` for a path that is a bad request (see the module doc).
fn normalize(target: &str) -> Option<Normal<'_>> {
    let raw = path_of(target);
    if !raw.starts_with('/') {
        return None;
    }
    let decoded = percent_decode(raw)?;
    if decoded.contains(&0) {
        return None;
    }
    let mut segments: Vec<Vec<u8>> = Vec::new();
    for seg in decoded.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            // Climbing above the root is a bad request.
            b".." => {
                segments.pop()?;
            }
            s => segments.push(s.to_vec()),
        }
    }
    let mut rel: Vec<u8> = Vec::with_capacity(decoded.len() + 16);
    for s in &segments {
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(s);
    }
    Some(Normal { raw, segments, rel })
}

/// For a root that cannot be opened: `BadRequest` for a path [`resolve`] would refuse as
/// such, else `None` (the answer is then `404`).
pub fn check_path(target: &str) -> Option<Resolved> {
    normalize(target).is_none().then_some(Resolved::BadRequest)
}

/// Resolve the path of `target` under `root`; a directory is answered by the first of
/// `index` that is a regular file.
pub fn resolve(root: &Root, target: &str, index: &[String]) -> Resolved {
    let Some(n) = normalize(target) else {
        return Resolved::BadRequest;
    };
    let (raw, segments, mut rel) = (n.raw, n.segments, n.rel);
    let at = |rel: &[u8]| root.real.join(OsStr::from_bytes(rel));
    let (file, meta) = match open_under(root, if rel.is_empty() { b"." } else { &rel }) {
        Opened::Found(f, m) => (f, m),
        Opened::Refused(r) => return r,
    };
    if meta.is_file() {
        return Resolved::File(at(&rel), file, meta);
    }
    drop(file);
    if !meta.is_dir() {
        return Resolved::Forbidden;
    }
    if !raw.ends_with('/') {
        return Resolved::Redirect(format!("{raw}/"));
    }
    let dir_len = rel.len();
    for name in index {
        rel.truncate(dir_len);
        if !rel.is_empty() {
            rel.push(b'/');
        }
        rel.extend_from_slice(name.as_bytes());
        match open_under(root, &rel) {
            Opened::Found(f, m) if m.is_file() => return Resolved::File(at(&rel), f, m),
            Opened::Refused(Resolved::Forbidden) => return Resolved::Forbidden,
            _ => {}
        }
    }
    rel.truncate(dir_len);
    let mut url = String::from("/");
    for s in &segments {
        url.push_str(&String::from_utf8_lossy(s));
        url.push('/');
    }
    Resolved::Directory { dir: at(&rel), url }
}

/// The MIME type of a file, by extension (`application/octet-stream` when unknown).
pub fn mime(path: &Path) -> &'static str {
    mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream")
}

/// Whether a MIME type is text (its `Content-Type` then says `charset=utf-8`).
pub fn is_text(mime: &str) -> bool {
    mime.starts_with("text/")
}

/// The `Content-Type` for a file, by extension.
pub fn content_type(path: &Path) -> String {
    let mime = mime(path);
    if is_text(mime) {
        format!("{mime}; charset=utf-8")
    } else {
        mime.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index() -> Vec<String> {
        vec![INDEX.to_string()]
    }

    #[test]
    fn decode() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some(&b"/a b"[..]));
        assert_eq!(percent_decode("/a%2"), None);
        assert_eq!(percent_decode("/a%zz"), None);
    }

    #[test]
    fn encode() {
        assert_eq!(percent_encode(b"a b&c.txt"), "a%20b%26c.txt");
        assert_eq!(percent_encode(b"x:y/\"<>"), "x%3Ay%2F%22%3C%3E");
        assert_eq!(percent_encode("é".as_bytes()), "%C3%A9");
        assert_eq!(
            percent_decode(&percent_encode(b"\xff a")).as_deref(),
            Some(&b"\xff a"[..])
        );
    }

    /// A scratch tree under the temp dir: `<name>` (the root) and `<name>.outside`.
    struct Tree {
        root: PathBuf,
        outside: PathBuf,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.root);
            let _ = std::fs::remove_dir_all(&self.outside);
        }
    }

    fn tree(tag: &str) -> Tree {
        let root = std::env::temp_dir().join(format!("tether-files-{tag}-{}", std::process::id()));
        let outside = root.with_extension("outside");
        let _ = std::fs::remove_dir_all(&root);
        let _ = std::fs::remove_dir_all(&outside);
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(root.join("i")).unwrap();
        std::fs::create_dir_all(root.join("e")).unwrap();
        std::fs::write(root.join("d/x.txt"), "x").unwrap();
        std::fs::write(root.join("i/home.htm"), "h").unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("s.txt"), "secret").unwrap();
        let link = |to: &dyn AsRef<Path>, at: PathBuf| std::os::unix::fs::symlink(to, at);
        link(&outside, root.join("out")).unwrap();
        link(&"../../tether-outside-nothing", root.join("d/dangling")).unwrap();
        // An index file that is a symlink out of the root.
        link(&outside.join("s.txt"), root.join("e/index.html")).unwrap();
        // Symlinks inside the root: absolute, relative, and relative through `..`.
        link(&root.join("d/x.txt"), root.join("abs.txt")).unwrap();
        link(&"d/x.txt", root.join("rel.txt")).unwrap();
        link(&"../d/x.txt", root.join("i/up.txt")).unwrap();
        // A relative symlink that climbs out.
        let up = format!(
            "../{}/s.txt",
            outside.file_name().unwrap().to_str().unwrap()
        );
        link(&up, root.join("climb.txt")).unwrap();
        let fifo = CString::new(root.join("fifo").as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o644) }, 0);
        Tree { root, outside }
    }

    /// The body of a resolved file.
    fn body(r: Resolved) -> String {
        match r {
            Resolved::File(_, mut f, m) => {
                assert!(m.is_file());
                let mut s = String::new();
                std::io::Read::read_to_string(&mut f, &mut s).unwrap();
                s
            }
            other => panic!("not a file: {other:?}"),
        }
    }

    fn confinement_holds(root: &Root) {
        let ix = index();
        for ok in [
            "/d/x.txt?q=1",
            "/d/../d/x.txt",
            "/d%2f..%2fd/x.txt",
            "/abs.txt",
            "/rel.txt",
            "/i/up.txt",
        ] {
            assert_eq!(body(resolve(root, ok, &ix)), "x", "{ok}");
        }
        assert!(matches!(
            resolve(root, "/rel.txt", &ix),
            Resolved::File(p, ..) if p.ends_with("rel.txt")
        ));
        for bad in [
            "/../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/d/../../x",
            "/a%00b",
            "x",
            "/%zz",
        ] {
            assert!(
                matches!(resolve(root, bad, &ix), Resolved::BadRequest),
                "{bad}"
            );
        }
        assert!(matches!(resolve(root, "/d", &ix), Resolved::Redirect(r) if r == "/d/"));
        assert!(matches!(
            resolve(root, "/d/", &ix),
            Resolved::Directory { url, dir } if url == "/d/" && dir == root.real().join("d")
        ));
        assert!(matches!(
            resolve(root, "/", &ix),
            Resolved::Directory { url, .. } if url == "/"
        ));
        let custom = vec!["index.html".to_string(), "home.htm".to_string()];
        assert!(matches!(
            resolve(root, "/i/", &custom),
            Resolved::File(p, ..) if p.ends_with("i/home.htm")
        ));
        assert!(matches!(resolve(root, "/nope", &ix), Resolved::NotFound));
        assert!(matches!(
            resolve(root, "/d/dangling", &ix),
            Resolved::NotFound
        ));
        for out in ["/out/s.txt", "/out/", "/climb.txt", "/e/"] {
            assert!(
                matches!(resolve(root, out, &ix), Resolved::Forbidden),
                "{out}"
            );
        }
        // Neither a file nor a directory: refused, and opening it did not block.
        assert!(matches!(resolve(root, "/fifo", &ix), Resolved::Forbidden));
    }

    #[test]
    fn confinement() {
        let t = tree("beneath");
        let root = Root::open(&t.root).unwrap();
        assert_eq!(root.real(), t.root.canonicalize().unwrap());
        confinement_holds(&root);
    }

    #[test]
    fn confinement_without_openat2() {
        let t = tree("canonical");
        let mut root = Root::open(&t.root).unwrap();
        root.beneath = false;
        confinement_holds(&root);
    }

    #[test]
    fn the_root_cache_follows_a_switched_symlink() {
        let t = tree("switch");
        let a = t.outside.join("a");
        let b = t.outside.join("b");
        std::fs::create_dir_all(&a).unwrap();
        std::fs::create_dir_all(&b).unwrap();
        std::fs::write(a.join("v.txt"), "a").unwrap();
        std::fs::write(b.join("v.txt"), "b").unwrap();
        let current = t.root.join("current");
        std::os::unix::fs::symlink(&a, &current).unwrap();
        let cache = RootCache::default();
        let ix = index();
        let first = cache.get(&current).unwrap();
        assert_eq!(body(resolve(&first, "/v.txt", &ix)), "a");
        assert!(Arc::ptr_eq(&first, &cache.get(&current).unwrap()), "kept");
        std::fs::remove_file(&current).unwrap();
        std::os::unix::fs::symlink(&b, &current).unwrap();
        std::thread::sleep(ROOT_RECHECK + Duration::from_millis(50));
        assert_eq!(
            body(resolve(&cache.get(&current).unwrap(), "/v.txt", &ix)),
            "b"
        );
        assert!(cache.get(&t.root.join("none")).is_err());
    }

    #[test]
    fn types() {
        assert_eq!(
            content_type(Path::new("a.html")),
            "text/html; charset=utf-8"
        );
        assert_eq!(content_type(Path::new("a.png")), "image/png");
        assert_eq!(
            content_type(Path::new("a.unknownext")),
            "application/octet-stream"
        );
    }
}
