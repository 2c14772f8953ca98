//! Mapping a request target to a file under a root: percent-decoding, normalising `.` and
//! `..`, and confining the result (symlinks included) to the root.

use std::ffi::OsStr;
use std::fs::Metadata;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Index file served for a directory.
pub const INDEX: &str = "index.html";

/// What a request target names under a root.
#[derive(Debug)]
pub enum Resolved {
    File(PathBuf, Metadata),
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

/// The path part of a request target (no query, no fragment).
pub fn path_of(target: &str) -> &str {
    let end = target.find(['?', '#']).unwrap_or(target.len());
    &target[..end]
}

/// Resolve `target` under `root`.
pub fn resolve(root: &Path, target: &str) -> Resolved {
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
    // Confinement: the real path must stay under the real root (a symlink may not lead out).
    match (full.canonicalize(), root.canonicalize()) {
        (Ok(real), Ok(real_root)) if real.starts_with(&real_root) => {}
        (Ok(_), Ok(_)) => return Resolved::Forbidden,
        _ => return Resolved::NotFound,
    }
    if meta.is_dir() {
        if !raw.ends_with('/') {
            return Resolved::Redirect(format!("{raw}/"));
        }
        let index = full.join(INDEX);
        return match std::fs::metadata(&index) {
            Ok(m) if m.is_file() => Resolved::File(index, m),
            _ => Resolved::NotFound,
        };
    }
    if meta.is_file() {
        Resolved::File(full, meta)
    } else {
        Resolved::Forbidden
    }
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

    #[test]
    fn decode() {
        assert_eq!(percent_decode("/a%20b").as_deref(), Some(&b"/a b"[..]));
        assert_eq!(percent_decode("/a%2"), None);
        assert_eq!(percent_decode("/a%zz"), None);
    }

    #[test]
    fn confinement() {
        let root = std::env::temp_dir().join(format!("tether-files-{}", std::process::id()));
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/x.txt"), "x").unwrap();
        assert!(matches!(resolve(&root, "/d/x.txt?q=1"), Resolved::File(..)));
        assert!(matches!(
            resolve(&root, "/d/../d/x.txt"),
            Resolved::File(..)
        ));
        assert!(matches!(
            resolve(&root, "/../etc/passwd"),
            Resolved::BadRequest
        ));
        assert!(matches!(
            resolve(&root, "/%2e%2e/etc/passwd"),
            Resolved::BadRequest
        ));
        assert!(matches!(resolve(&root, "/d"), Resolved::Redirect(r) if r == "/d/"));
        assert!(matches!(resolve(&root, "/d/"), Resolved::NotFound));
        assert!(matches!(resolve(&root, "/nope"), Resolved::NotFound));
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        assert!(matches!(
            resolve(&root, "/out/hostname"),
            Resolved::Forbidden | Resolved::NotFound
        ));
        std::fs::remove_dir_all(&root).unwrap();
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
