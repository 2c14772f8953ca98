//! tether-files: the file module in eXpServer's sense. From a parsed request and a root
//! directory to a reply — a head (with any small body inline) and, for a file body, the
//! range of an open file to stream after it. It knows nothing of sessions or sockets: the
//! HTTP/1.1 and HTTP/2 sessions (`tether-proxy`) call [`static_files::serve`] and send what
//! it answers.
//!
//! - `paths`: a request path to a file under a root (normalised, confined, symlinks
//!   checked), MIME types;
//! - `kept_files`: small files kept in memory per root while they stay the same version;
//! - `listing`: the HTML listing of a directory without an index file;
//! - `static_files`: one request, in order — method, resolve, listing, validators, Range,
//!   gzip — and the options of a files route ([`FileOptions`]).
//!
//! `static_files`, `kept_files` and `listing` are one concept (a files route) and import
//! each other; `paths` imports only `kept_files`.

pub mod kept_files;
pub mod listing;
pub mod paths;
pub mod static_files;

pub use static_files::FileOptions;
