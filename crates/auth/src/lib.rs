//! tether-auth: HTTP Basic authentication against htpasswd files.
//!
//! - [`Htpasswd`] (`htpasswd.rs`) reads and checks a file: bcrypt, SHA-crypt (`$5$`, `$6$`)
//!   and argon2 hashes are accepted; MD5-crypt, `{SHA}`, DES crypt and plaintext entries are
//!   refused when the file is loaded, each with `path:line: message` and a hint.
//!   The schemes themselves live in `scheme.rs`.
//! - [`Verifier`] (`verifier.rs`) answers "may this `Authorization` header in?". Answers
//!   that need no hashing (no header, a malformed one, a recent success found in the cache,
//!   `cache.rs`) come back at once; every password hash is verified on a helper thread
//!   (`pool.rs`) and the answer comes back through a callback, so the event loop never pays
//!   for a bcrypt, right password or wrong. User names with recent failures wait in a back
//!   lane of the queue (`failures.rs`), so guessing one user's password does not hold up
//!   the other users' logins.
//! - `credentials.rs` decodes the `Authorization: Basic` value and builds the
//!   `WWW-Authenticate` value of a `401` ([`www_authenticate`]).
//!
//! The crate knows nothing of sockets or of the loop: the proxy turns the callback into a
//! `mio::Waker` wake-up (see the README).

mod cache;
mod credentials;
mod failures;
mod htpasswd;
mod pool;
mod scheme;
mod verifier;

pub use credentials::www_authenticate;
pub use htpasswd::{Htpasswd, LoadError, Problem};
pub use verifier::{Options, Stats, Verifier};

/// The answer to one [`Verifier::check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthResult {
    /// The credentials match the entry of `user`: let the request through.
    Ok {
        /// The user name from the file (for the access log, `$remote_user`).
        user: String,
    },
    /// No credentials, malformed ones, an unknown user or a wrong password: answer `401`
    /// with a `WWW-Authenticate` header ([`www_authenticate`]).
    Denied,
    /// The verification queue is full: answer `503` (and perhaps `Retry-After`).
    Busy,
}

/// Receives the answer of a [`Verifier::check`] that returned `None`. It runs once, on a
/// helper thread: it must be quick and must not block (queue the answer, wake the loop).
pub type Done = Box<dyn FnOnce(AuthResult) + Send>;
