//! Mapping a request path to a file or directory under a root: percent-decoding, normalising
//! `.` and `..`, trying the index files of a directory, and confining the result (symlinks
//! included) to the root; `Content-Type` by extension.
//!
//! Rules: a malformed escape, a NUL or a `..` that would climb above the root (plain or
//! encoded, `%2e%2e`, `%2f`) is `400`; a path whose real location (after following every
//! symlink) is outside the real root is `403`; what does not exist is `404`.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Index file served for a directory by default.
pub const INDEX: &str = "index.html";

/// What a request path names under a root.
#[derive(Debug)]
pub enum Resolved {
    /// A regular file: its real (canonical) path, confined to the root, and its metadata.
    File(PathBuf, Metadata),
    /// A directory asked for with its trailing slash, with none of the index files.
    Directory {
        /// The real (canonical) path of the directory.
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

/// Why a path is refused by [`confined`].
enum Refused {
    /// Its real location is outside the root.
    Outside,
    /// It cannot be canonicalised (it vanished, a dangling link).
    Missing,
}

impl From<Refused> for Resolved {
    fn from(r: Refused) -> Resolved {
        match r {
            Refused::Outside => Resolved::Forbidden,
            Refused::Missing => Resolved::NotFound,
        }
    }
}

/// The real path of `path` if it lies under `real_root`, symlinks followed.
fn confined(path: &Path, real_root: &Path) -> Result<PathBuf, Refused> {
    match path.canonicalize() {
        Ok(real) if real.starts_with(real_root) => Ok(real),
        Ok(_) => Err(Refused::Outside),
        Err(_) => Err(Refused::Missing),
    }
}

/// Resolve the path of `target` under `root`; a directory is answered by the first of
/// `index` that is a regular file.
pub fn resolve(root: &Path, target: &str, index: &[String]) -> Resolved {
    let raw = path_of(target);
    if !raw.starts_with('/') {
        return Resolved::BadRequest;
    }
    let Some(decoded) = percent_decode(raw) else {
        return Resolved::BadRequest;
    };
    if decoded.contains(&0) {
        return Resolved::BadRequest;
    }
    let mut segments: Vec<&[u8]> = Vec::new();
    for seg in decoded.split(|&c| c == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => {
                if segments.pop().is_none() {
                    return Resolved::BadRequest;
                }
            }
            s => segments.push(s),
        }
    }
    let mut full = root.to_path_buf();
    for s in &segments {
        full.push(OsStr::from_bytes(s));
    }
    let Ok(meta) = std::fs::metadata(&full) else {
        return Resolved::NotFound;
    };
    let Ok(real_root) = root.canonicalize() else {
        return Resolved::NotFound;
    };
    // Confinement: the real path must stay under the real root (a symlink may not lead out).
    let real = match confined(&full, &real_root) {
        Ok(real) => real,
        Err(r) => return r.into(),
    };
    if meta.is_file() {
        return Resolved::File(real, meta);
    }
    if !meta.is_dir() {
        return Resolved::Forbidden;
    }
    if !raw.ends_with('/') {
        return Resolved::Redirect(format!("{raw}/"));
    }
    for name in index {
        let candidate = real.join(name);
        match std::fs::metadata(&candidate) {
            Ok(m) if m.is_file() => {
                return match confined(&candidate, &real_root) {
                    Ok(file) => Resolved::File(file, m),
                    Err(r) => r.into(),
                };
            }
            _ => {}
        }
    }
    let mut url = String::from("/");
    for s in &segments {
        url.push_str(&String::from_utf8_lossy(s));
        url.push('/');
    }
    Resolved::Directory { dir: real, url }
}

/// The `Content-Type` for a file, by extension.
pub fn content_type(path: &Path) -> String {
    let mime = mime_guess::from_path(path)
        .first_raw()
        .unwrap_or("application/octet-stream");
    if mime.starts_with("text/") {
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

    #[test]
    fn confinement() {
        let root = std::env::temp_dir().join(format!("tether-files-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::create_dir_all(root.join("i")).unwrap();
        std::fs::write(root.join("d/x.txt"), "x").unwrap();
        std::fs::write(root.join("i/home.htm"), "h").unwrap();
        let ix = index();
        assert!(matches!(
            resolve(&root, "/d/x.txt?q=1", &ix),
            Resolved::File(..)
        ));
        assert!(matches!(
            resolve(&root, "/d/../d/x.txt", &ix),
            Resolved::File(..)
        ));
        assert!(matches!(
            resolve(&root, "/d%2f..%2fd/x.txt", &ix),
            Resolved::File(..)
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
                matches!(resolve(&root, bad, &ix), Resolved::BadRequest),
                "{bad}"
            );
        }
        assert!(matches!(resolve(&root, "/d", &ix), Resolved::Redirect(r) if r == "/d/"));
        assert!(matches!(
            resolve(&root, "/d/", &ix),
            Resolved::Directory { url, .. } if url == "/d/"
        ));
        assert!(matches!(
            resolve(&root, "/", &ix),
            Resolved::Directory { url, .. } if url == "/"
        ));
        let custom = vec!["index.html".to_string(), "home.htm".to_string()];
        assert!(matches!(
            resolve(&root, "/i/", &custom),
            Resolved::File(p, _) if p.ends_with("home.htm")
        ));
        assert!(matches!(resolve(&root, "/nope", &ix), Resolved::NotFound));
        let outside = root.with_extension("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("s.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("out")).unwrap();
        assert!(matches!(
            resolve(&root, "/out/s.txt", &ix),
            Resolved::Forbidden
        ));
        assert!(matches!(resolve(&root, "/out/", &ix), Resolved::Forbidden));
        // An index file that is a symlink out of the root is not served.
        std::fs::create_dir_all(root.join("e")).unwrap();
        std::os::unix::fs::symlink(outside.join("s.txt"), root.join("e/index.html")).unwrap();
        assert!(matches!(resolve(&root, "/e/", &ix), Resolved::Forbidden));
        // A symlink inside the root is followed.
        std::os::unix::fs::symlink(root.join("d/x.txt"), root.join("in.txt")).unwrap();
        assert!(matches!(
            resolve(&root, "/in.txt", &ix),
            Resolved::File(p, _) if p.ends_with("d/x.txt")
        ));
        std::fs::remove_dir_all(&root).unwrap();
        std::fs::remove_dir_all(&outside).unwrap();
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
