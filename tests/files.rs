//! The `files` route end to end: the real binary with a `root` listener and real curl —
//! `Range` (206, suffix, 416), `ETag` / `Last-Modified` revalidation (304), HEAD, directory
//! listings (escaped names, links that work, `../`), and no gzip unless configured.
//! (gzip itself is tested through `FileOptions` in `crates/proxy/src/static_files.rs` until
//! the config has its keys.)

mod common;

use common::*;

/// `curl -D - -o BODY args`: (status, head, body).
fn fetch(args: &[&str]) -> (u16, String, Vec<u8>) {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let body_path =
        std::env::temp_dir().join(format!("tether-files-body-{}-{n}", std::process::id()));
    let body_arg = body_path.to_str().expect("utf-8 temp path");
    let mut all = vec!["-D", "-", "-o", body_arg];
    all.extend_from_slice(args);
    let out = curl(&all);
    let head = String::from_utf8_lossy(&out.stdout).to_string();
    let body = std::fs::read(&body_path).unwrap_or_default();
    let _ = std::fs::remove_file(&body_path);
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head, body)
}

struct Site {
    dir: TempDir,
    _tether: Proc,
    port: u16,
    base: String,
    blob: Vec<u8>,
}

fn site(tag: &str) -> Site {
    let dir = TempDir::new(tag);
    let blob = noise(100_000, 7);
    dir.write("www/blob.bin", &blob);
    dir.write("www/a.txt", b"0123456789abcdefghijklmnopqrstuvwxyz\n");
    dir.write("www/docs/a b&c.txt", b"spaced & ampersanded\n");
    dir.write("www/docs/sub/inner.txt", b"inner\n");
    dir.write("www/docs/<b>.html", b"<b>bold</b>\n");
    dir.write("www/docs/.hidden", b"hidden\n");
    dir.write("www/site/index.html", b"<h1>index</h1>\n");
    let port = free_port();
    let t = tether(&dir, &files_config(port, &dir.path().join("www")), &[port]);
    Site {
        dir,
        _tether: t,
        port,
        base: format!("http://127.0.0.1:{port}"),
        blob,
    }
}

#[test]
fn ranges_give_206_with_exact_bytes_and_416_past_the_end() {
    let s = site("files-range");
    let url = format!("{}/blob.bin", s.base);

    let (status, head, body) = fetch(&[&url]);
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "Accept-Ranges"), Some("bytes"), "{head}");
    assert!(body == s.blob);

    let (status, head, body) = fetch(&["-r", "10-19", &url]);
    assert_eq!(status, 206, "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes 10-19/100000"));
    assert_eq!(header(&head, "Content-Length"), Some("10"));
    assert_eq!(body, &s.blob[10..20]);

    let (status, head, body) = fetch(&["-r", "-300", &url]);
    assert_eq!(status, 206, "{head}");
    assert_eq!(
        header(&head, "Content-Range"),
        Some("bytes 99700-99999/100000")
    );
    assert_eq!(body, &s.blob[99_700..]);

    let (status, head, body) = fetch(&["-r", "99990-", &url]);
    assert_eq!(status, 206, "{head}");
    assert_eq!(body, &s.blob[99_990..]);

    let (status, head, _) = fetch(&["-r", "100000-", &url]);
    assert_eq!(status, 416, "{head}");
    assert_eq!(header(&head, "Content-Range"), Some("bytes */100000"));

    // Several ranges: the whole file, 200.
    let (status, head, body) = fetch(&["-r", "0-1,5-6", &url]);
    assert_eq!(status, 200, "{head}");
    assert!(body == s.blob);

    // Range on a small file (sent inline with the head) is exact too.
    let (status, _, body) = fetch(&["-r", "10-19", &format!("{}/a.txt", s.base)]);
    assert_eq!((status, body.as_slice()), (206, &b"abcdefghij"[..]));

    // If-Range with a stale validator: the whole file.
    let (status, _, body) = fetch(&["-r", "0-9", "-H", "If-Range: \"stale\"", &url]);
    assert_eq!(status, 200);
    assert!(body == s.blob);
}

#[test]
fn etag_and_last_modified_give_304() {
    let s = site("files-304");
    let url = format!("{}/a.txt", s.base);
    let (status, head, _) = fetch(&[&url]);
    assert_eq!(status, 200, "{head}");
    let etag = header(&head, "ETag").expect("ETag").to_string();
    let lm = header(&head, "Last-Modified")
        .expect("Last-Modified")
        .to_string();
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");

    let inm = format!("If-None-Match: {etag}");
    let (status, head, body) = fetch(&["-H", &inm, &url]);
    assert_eq!(status, 304, "{head}");
    assert!(body.is_empty());
    assert_eq!(header(&head, "ETag"), Some(etag.as_str()));
    assert_eq!(header(&head, "Last-Modified"), Some(lm.as_str()));

    let weak = format!("If-None-Match: \"nope\", W/{etag}");
    assert_eq!(fetch(&["-H", &weak, &url]).0, 304);
    assert_eq!(fetch(&["-H", "If-None-Match: \"nope\"", &url]).0, 200);

    let ims = format!("If-Modified-Since: {lm}");
    let (status, _, body) = fetch(&["-H", &ims, &url]);
    assert_eq!((status, body.len()), (304, 0));
    let old = "If-Modified-Since: Sat, 01 Jan 2000 00:00:00 GMT";
    let (status, _, body) = fetch(&["-H", old, &url]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"0123456789abcdefghijklmnopqrstuvwxyz\n"[..])
    );

    // A 304 keeps the connection: two requests on one connection, curl reuses it.
    let out = curl(&[
        "-v",
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
        "-H",
        &inm,
        &url,
        &url,
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Re-using existing") || err.contains("Reusing existing"),
        "{err}"
    );
}

#[test]
fn no_gzip_unless_configured() {
    let s = site("files-nogzip");
    let url = format!("{}/a.txt", s.base);
    for args in [vec![url.as_str()], vec!["--compressed", url.as_str()]] {
        let (status, head, body) = fetch(&args);
        assert_eq!(status, 200, "{head}");
        assert_eq!(header(&head, "Content-Encoding"), None, "{head}");
        assert_eq!(body, b"0123456789abcdefghijklmnopqrstuvwxyz\n");
    }
}

#[test]
fn head_on_a_file_and_on_a_listing() {
    let s = site("files-head");
    let out = curl(&["-I", &format!("{}/blob.bin", s.base)]);
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(header(&h, "Content-Length"), Some("100000"), "{h}");
    assert!(header(&h, "ETag").is_some(), "{h}");
    assert!(h.ends_with("\r\n\r\n"), "{h}");

    let (_, get_head, page) = fetch(&[&format!("{}/docs/", s.base)]);
    let out = curl(&["-I", &format!("{}/docs/", s.base)]);
    let h = String::from_utf8_lossy(&out.stdout);
    assert!(h.starts_with("HTTP/1.1 200 OK\r\n"), "{h}");
    assert_eq!(
        header(&h, "Content-Type"),
        Some("text/html; charset=utf-8"),
        "{h}"
    );
    let len = page.len().to_string();
    assert_eq!(header(&h, "Content-Length"), Some(len.as_str()), "{h}");
    assert_eq!(header(&get_head, "Content-Length"), Some(len.as_str()));
    assert!(h.ends_with("\r\n\r\n"), "{h}");
}

#[test]
fn a_directory_without_index_gets_a_listing_whose_links_work() {
    let s = site("files-listing");
    let (status, head, page) = fetch(&[&format!("{}/docs/", s.base)]);
    let page = String::from_utf8_lossy(&page).to_string();
    assert_eq!(status, 200, "{head}");
    assert!(page.contains("<title>Index of /docs/</title>"), "{page}");
    assert!(page.contains("<table>"), "{page}");
    assert!(
        page.contains("<a href=\"a%20b%26c.txt\">a b&amp;c.txt</a>"),
        "{page}"
    );
    assert!(
        page.contains("<a href=\"%3Cb%3E.html\">&lt;b&gt;.html</a>"),
        "{page}"
    );
    assert!(page.contains("<a href=\"sub/\">sub/</a>"), "{page}");
    assert!(page.contains("<a href=\"../\">../</a>"), "{page}");
    assert!(!page.contains("hidden"), "{page}");
    // Size and time columns: the file's size in bytes, `-` for a directory.
    assert!(page.contains(">21</td>"), "{page}");
    assert!(page.contains(">-</td>"), "{page}");
    assert!(page.contains(" GMT</td>"), "{page}");
    // Directories first.
    assert!(page.find("sub/").unwrap_or(usize::MAX) < page.find("a%20b").unwrap_or(0));

    // Follow the escaped link the way a browser would: relative to the listing's URL.
    let href = page
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.starts_with("a%20b"))
        .expect("link")
        .to_string();
    let (status, _, body) = fetch(&[&format!("{}/docs/{href}", s.base)]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"spaced & ampersanded\n"[..])
    );
    let (status, _, body) = fetch(&[&format!("{}/docs/sub/", s.base)]);
    let sub = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(sub.contains("<a href=\"inner.txt\">inner.txt</a>"), "{sub}");

    // The root listing has no `../`; a directory with an index serves the index.
    let (status, _, body) = fetch(&[&format!("{}/", s.base)]);
    let root = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        root.contains("Index of /</title>") && !root.contains("../"),
        "{root}"
    );
    assert!(root.contains("<a href=\"site/\">site/</a>"), "{root}");
    let (status, _, body) = fetch(&[&format!("{}/site/", s.base)]);
    assert_eq!((status, body.as_slice()), (200, &b"<h1>index</h1>\n"[..]));
}

#[test]
fn confinement_holds_with_listings() {
    let s = site("files-confine");
    let dir = &s.dir;
    dir.write("outside/secret.txt", b"outside the root\n");
    std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("www/out"))
        .expect("symlink");
    let (status, _, body) = fetch(&[&format!("{}/out/", s.base)]);
    assert_eq!(status, 403);
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
    assert_eq!(fetch(&[&format!("{}/out/secret.txt", s.base)]).0, 403);
    for path in [
        "/docs/../../outside/",
        "/docs/%2e%2e/%2e%2e/outside/secret.txt",
    ] {
        let out = raw(
            s.port,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
        );
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 400 "), "{path}: {text}");
        assert!(!text.contains("outside the root"), "{path}");
    }
}

#[test]
fn kept_small_files_follow_every_change_on_disk() {
    // Small files are kept in memory after a first request (`kept_files.rs`); each change
    // on disk must show at the next request: a rewrite of the same size, a rename over it,
    // a chmod that makes it unreadable, a removal, and a directory on its path swapped for
    // a symlink out of the root.
    let s = site("files-kept");
    let dir = &s.dir;
    let url = |p: &str| format!("{}{p}", s.base);
    dir.write("www/k/v.txt", b"version 1\n");
    for _ in 0..3 {
        assert_eq!(fetch(&[&url("/k/v.txt")]).2, b"version 1\n");
    }
    // Same size, new bytes (mtime and ctime change).
    dir.write("www/k/v.txt", b"version 2\n");
    let (status, head, body) = fetch(&[&url("/k/v.txt")]);
    assert_eq!(
        (status, body.as_slice()),
        (200, &b"version 2\n"[..]),
        "{head}"
    );
    // A rename over it (another inode).
    dir.write("www/k/next", b"version 3\n");
    std::fs::rename(
        dir.path().join("www/k/next"),
        dir.path().join("www/k/v.txt"),
    )
    .expect("rename");
    assert_eq!(fetch(&[&url("/k/v.txt")]).2, b"version 3\n");
    // A range and a HEAD of a kept file answer as for any other.
    let (status, head, body) = fetch(&["-r", "8-9", &url("/k/v.txt")]);
    assert_eq!((status, body.as_slice()), (206, &b"3\n"[..]), "{head}");
    let (status, head, _) = fetch(&["-I", &url("/k/v.txt")]);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 10"),
        "{head}"
    );
    // Unreadable: 403 (root can read anything: only check when not running as root).
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let f = dir.path().join("www/k/v.txt");
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).expect("chmod");
        assert_eq!(fetch(&[&url("/k/v.txt")]).0, 403);
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        assert_eq!(fetch(&[&url("/k/v.txt")]).2, b"version 3\n");
    }
    // Removed: 404.
    std::fs::remove_file(dir.path().join("www/k/v.txt")).expect("rm");
    assert_eq!(fetch(&[&url("/k/v.txt")]).0, 404);
    // The directory `k` replaced by a symlink to a directory outside the root holding a
    // file of the same name: refused, never served from the old entry or the new file.
    dir.write("www/k/v.txt", b"version 4\n");
    assert_eq!(fetch(&[&url("/k/v.txt")]).2, b"version 4\n");
    dir.write("outside/v.txt", b"secret 04\n");
    std::fs::remove_dir_all(dir.path().join("www/k")).expect("rm -r");
    std::os::unix::fs::symlink(dir.path().join("outside"), dir.path().join("www/k"))
        .expect("symlink");
    let (status, _, body) = fetch(&[&url("/k/v.txt")]);
    assert_eq!(status, 403);
    assert!(!String::from_utf8_lossy(&body).contains("secret"));
}
