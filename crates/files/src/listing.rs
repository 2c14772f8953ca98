//! The HTML listing of a directory without an index file (nginx's `autoindex`, eXpServer's
//! directory browsing): a `<table>` with one row per entry — a link, the size in bytes (`-`
//! for a directory) and the modification time — directories first, then by name.
//!
//! Names are HTML-escaped in the text and percent-encoded in the `href` (relative to the
//! directory's URL, which ends in `/`). Entries starting with `.` are not listed, as in
//! nginx. Following a link goes back through `paths::resolve`, so a listed symlink that
//! leads out of the root is still refused.

use std::fmt::Write as _;

use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::time::SystemTime;
use tether_http::html_escape;

use crate::paths::percent_encode;

/// One row of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The file name as bytes (not necessarily UTF-8).
    pub name: Vec<u8>,
    pub is_dir: bool,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// Read the entries of `dir` (hidden ones skipped), sorted directories first, then by name.
/// An entry whose metadata cannot be read (a dangling symlink) is listed as a file of size 0
/// with no time.
pub fn entries(dir: &Path) -> io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let name = e.file_name().as_bytes().to_vec();
        if name.first() == Some(&b'.') {
            continue;
        }
        // Follow symlinks for the type and size, as the link will when it is followed.
        let (is_dir, size, modified) = match std::fs::metadata(e.path()) {
            Ok(m) => (m.is_dir(), m.len(), m.modified().ok()),
            Err(_) => (false, 0, None),
        };
        out.push(Entry {
            name,
            is_dir,
            size: if is_dir { 0 } else { size },
            modified,
        });
    }
    sort(&mut out);
    Ok(out)
}

/// Directories first, then by name (bytewise).
pub fn sort(entries: &mut [Entry]) {
    entries.sort_by(|a, b| b.is_dir.cmp(&a.is_dir).then_with(|| a.name.cmp(&b.name)));
}

/// The listing page of the directory at URL path `url` (decoded, ending in `/`).
pub fn render(url: &str, entries: &[Entry], server: &str) -> String {
    let title = format!("Index of {}", html_escape(url));
    let mut page = String::with_capacity(512 + entries.len() * 160);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n<title>{title}</title>\n\
         <style>td{{padding:0 1em 0 0}} td.size{{text-align:right}}</style>\n</head>\n<body>\n\
         <h1>{title}</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Last modified</th></tr>\n"
    );
    if url != "/" {
        page.push_str(
            "<tr><td><a href=\"../\">../</a></td><td class=\"size\">-</td><td></td></tr>\n",
        );
    }
    for e in entries {
        let slash = if e.is_dir { "/" } else { "" };
        let href = percent_encode(&e.name);
        let text = html_escape(&String::from_utf8_lossy(&e.name));
        let size = if e.is_dir {
            "-".to_string()
        } else {
            e.size.to_string()
        };
        let when = e.modified.map(httpdate::fmt_http_date).unwrap_or_default();
        let _ = writeln!(
            page,
            "<tr><td><a href=\"{href}{slash}\">{text}{slash}</a></td><td class=\"size\">{size}</td><td>{when}</td></tr>"
        );
    }
    let _ = write!(
        page,
        "</table>\n<hr><address>{}</address>\n</body>\n</html>\n",
        html_escape(server)
    );
    page
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn entry(name: &str, is_dir: bool, size: u64) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            is_dir,
            size,
            modified: Some(UNIX_EPOCH + Duration::from_secs(784111777)),
        }
    }

    #[test]
    fn escapes() {
        assert_eq!(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#39;");
    }

    #[test]
    fn sorted_dirs_first() {
        let mut v = vec![
            entry("b.txt", false, 1),
            entry("z", true, 0),
            entry("a.txt", false, 1),
            entry("c", true, 0),
        ];
        sort(&mut v);
        let names: Vec<_> = v.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, [&b"c"[..], b"z", b"a.txt", b"b.txt"]);
    }

    #[test]
    fn page() {
        let v = vec![entry("sub", true, 0), entry("a b&c.txt", false, 1234)];
        let p = render("/x <y>/", &v, "tether");
        assert!(p.contains("<title>Index of /x &lt;y&gt;/</title>"), "{p}");
        assert!(p.contains("<a href=\"../\">../</a>"), "{p}");
        assert!(
            p.contains("<a href=\"sub/\">sub/</a></td><td class=\"size\">-</td>"),
            "{p}"
        );
        assert!(
            p.contains("<a href=\"a%20b%26c.txt\">a b&amp;c.txt</a></td><td class=\"size\">1234</td><td>Sun, 06 Nov 1994 08:49:37 GMT</td>"),
            "{p}"
        );
        assert!(p.find("sub/").unwrap() < p.find("a%20b").unwrap());
        let root = render("/", &v, "tether");
        assert!(!root.contains("../"), "{root}");
        assert!(root.contains("<title>Index of /</title>"));
    }

    #[test]
    fn reads_a_directory() {
        let dir = std::env::temp_dir().join(format!("tether-listing-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("f.txt"), "12345").unwrap();
        std::fs::write(dir.join(".hidden"), "x").unwrap();
        std::os::unix::fs::symlink(dir.join("gone"), dir.join("dangling")).unwrap();
        let v = entries(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        let rows: Vec<_> = v
            .iter()
            .map(|e| {
                (
                    String::from_utf8_lossy(&e.name).to_string(),
                    e.is_dir,
                    e.size,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                ("sub".to_string(), true, 0),
                ("dangling".to_string(), false, 0),
                ("f.txt".to_string(), false, 5)
            ]
        );
        assert!(entries(&dir).is_err());
    }
}
