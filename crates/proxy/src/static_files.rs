//! The `files` module of the http session: from a parsed request and a root directory to a
//! reply — a head (with any small body inline: status pages, listings, compressed bytes) and,
//! for a file body, the file range to stream after it. No sockets here: the session sends
//! the reply (`HttpSession::respond`), streaming the file with `sendfile(2)`.

use std::fs::File;
use std::path::PathBuf;

use bytes::Bytes;
use tether_http::{BodyKind, Method, RequestHead};

use crate::files::{self, Resolved};
use crate::response;

/// How a directory is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileOptions {
    pub root: PathBuf,
    /// Index files tried in a directory, in order.
    pub index: Vec<String>,
}

impl FileOptions {
    pub fn new(root: PathBuf) -> FileOptions {
        FileOptions {
            root,
            index: vec![files::INDEX.to_string()],
        }
    }
}

/// What to send.
pub struct FileReply {
    /// Status line, headers, blank line, and an inline body if any.
    pub head: Bytes,
    /// A file range to stream after the head: (file, offset, length).
    pub body: Option<(File, u64, u64)>,
    /// The connection cannot carry another request after this reply.
    pub close: bool,
}

impl FileReply {
    fn page(
        status: u16,
        server: &str,
        extra: &str,
        head_only: bool,
        keep_alive: bool,
    ) -> FileReply {
        let page = response::status_page_ka(status, server, extra, head_only, keep_alive);
        FileReply {
            head: page.into(),
            body: None,
            close: !keep_alive,
        }
    }
}

/// Answer `req` from `opts.root`. `keep_alive`: the client's connection may carry more.
pub fn serve(opts: &FileOptions, req: &RequestHead, server: &str, keep_alive: bool) -> FileReply {
    // A body on a file route is not read: the connection cannot continue after it.
    let keep_alive = keep_alive && matches!(req.body, BodyKind::None | BodyKind::Length(0));
    let head_only = req.method == Method::Head;
    if req.method != Method::Get && !head_only {
        return FileReply::page(405, server, "Allow: GET, HEAD\r\n", false, false);
    }
    let (file, meta, name) = match files::resolve(&opts.root, req.target()) {
        Resolved::File(name, meta) => match File::open(&name) {
            Ok(f) => (f, meta, name),
            Err(e) => {
                log::warn!("files: open {}: {e}", name.display());
                return FileReply::page(403, server, "", head_only, keep_alive);
            }
        },
        Resolved::Redirect(to) => {
            let extra = format!("Location: {to}\r\n");
            return FileReply::page(301, server, &extra, head_only, keep_alive);
        }
        Resolved::NotFound => return FileReply::page(404, server, "", head_only, keep_alive),
        Resolved::Forbidden => return FileReply::page(403, server, "", head_only, keep_alive),
        Resolved::BadRequest => return FileReply::page(400, server, "", head_only, false),
    };
    let mut head = response::head(200, server);
    head.push_str(&format!("Content-Type: {}\r\n", files::content_type(&name)));
    head.push_str(&format!("Content-Length: {}\r\n", meta.len()));
    if let Ok(t) = meta.modified() {
        head.push_str(&format!(
            "Last-Modified: {}\r\n",
            httpdate::fmt_http_date(t)
        ));
    }
    head.push_str(if keep_alive {
        "\r\n"
    } else {
        "Connection: close\r\n\r\n"
    });
    let body = (!head_only && meta.len() > 0).then_some((file, 0, meta.len()));
    FileReply {
        head: head.into(),
        body,
        close: !keep_alive,
    }
}
