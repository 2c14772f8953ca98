//! An htpasswd file, read and checked: `user:hash` lines, `#` comments and blank lines.
//!
//! Every problem is found at load time (at config check, not at the first request) and
//! reported as `path:line: message` with a hint: refused schemes (`scheme.rs`), malformed
//! lines, duplicate users, a file without users.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::scheme::{self, Scheme};

/// Gives each loaded file its own number, part of the cache key: a success cached for one
/// file (or an older copy of it) never lets a request in under another.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// One user's stored hash.
#[derive(Clone)]
pub(crate) struct Entry {
    pub(crate) scheme: Scheme,
    pub(crate) hash: String,
}

/// The users of one htpasswd file. Build it with [`Htpasswd::load`] (or
/// [`Htpasswd::parse`]) per config build and share it as `Arc<Htpasswd>` between the
/// routes that name the file; a reload builds a new one. Its `Debug` shows the path and
/// the user count, never a hash.
pub struct Htpasswd {
    path: String,
    id: u64,
    users: HashMap<String, Entry>,
    /// Checked instead when the user is unknown, so that an unknown user costs the same
    /// verification as a known one (no user enumeration by timing): the first entry.
    dummy: Entry,
}

/// One problem of a file: its line (1-based; 0 when about the whole file) and a message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub message: String,
}

/// Why a file was refused: every problem found, in line order. `Display` gives one
/// `path:line: message` per line (`path: message` for the whole file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoadError {
    pub path: String,
    pub problems: Vec<Problem>,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            if p.line == 0 {
                write!(f, "{}: {}", self.path, p.message)?;
            } else {
                write!(f, "{}:{}: {}", self.path, p.line, p.message)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for LoadError {}

impl fmt::Debug for Htpasswd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Htpasswd")
            .field("path", &self.path)
            .field("users", &self.users.len())
            .finish_non_exhaustive()
    }
}

impl Htpasswd {
    /// Reads and checks the file at `path`. Reads the disk: call it where the config is
    /// built, not on the event loop's thread.
    pub fn load(path: impl AsRef<Path>) -> Result<Htpasswd, LoadError> {
        let path = path.as_ref();
        let shown = path.display().to_string();
        match std::fs::read(path) {
            Ok(bytes) => Self::parse_bytes(&bytes, &shown),
            Err(e) => Err(LoadError {
                path: shown,
                problems: vec![Problem {
                    line: 0,
                    message: format!("cannot read the htpasswd file: {e}"),
                }],
            }),
        }
    }

    /// Checks `text` as the content of an htpasswd file; `path` only names it in messages.
    pub fn parse(text: &str, path: &str) -> Result<Htpasswd, LoadError> {
        Self::parse_bytes(text.as_bytes(), path)
    }

    fn parse_bytes(bytes: &[u8], path: &str) -> Result<Htpasswd, LoadError> {
        let mut problems = Vec::new();
        let mut users: HashMap<String, Entry> = HashMap::new();
        let mut first_line: HashMap<String, usize> = HashMap::new();
        let mut dummy = None;
        for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
            let line = i + 1;
            let mut problem = |message: String| problems.push(Problem { line, message });
            let Ok(text) = std::str::from_utf8(raw) else {
                problem("the line is not UTF-8".to_string());
                continue;
            };
            let text = text.trim();
            if text.is_empty() || text.starts_with('#') {
                continue;
            }
            let Some((user, hash)) = text.split_once(':') else {
                problem(
                    "malformed line: expected `user:hash` (make entries with `htpasswd -B`)"
                        .to_string(),
                );
                continue;
            };
            if user.is_empty() {
                problem("malformed line: the user name is empty".to_string());
                continue;
            }
            if let Some(first) = first_line.get(user) {
                problem(format!(
                    "duplicate user {user:?} (first on line {first}): keep one of the entries"
                ));
                continue;
            }
            first_line.insert(user.to_string(), line);
            match scheme::classify(hash) {
                Ok(scheme) => {
                    let entry = Entry {
                        scheme,
                        hash: hash.to_string(),
                    };
                    if dummy.is_none() {
                        dummy = Some(entry.clone());
                    }
                    users.insert(user.to_string(), entry);
                }
                Err(message) => problem(format!("user {user:?}: {message}")),
            }
        }
        let Some(dummy) = dummy.filter(|_| problems.is_empty()) else {
            if problems.is_empty() {
                problems.push(Problem {
                    line: 0,
                    message: format!(
                        "no users: add one with `htpasswd -B {path} USER` (a route with no \
                         users would refuse everyone)"
                    ),
                });
            }
            return Err(LoadError {
                path: path.to_string(),
                problems,
            });
        };
        Ok(Htpasswd {
            path: path.to_string(),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            users,
            dummy,
        })
    }

    /// The path the file was loaded from (as given to `load` or `parse`).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// How many users the file has (at least one).
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Always false: a file without users is refused at load.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether the file has an entry for `user`.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The number that tells this load apart from every other one in the process.
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// The entry to verify for `user`, and whether the user exists. An unknown user gets
    /// the dummy entry, verified all the same and then denied.
    pub(crate) fn entry(&self, user: &str) -> (&Entry, bool) {
        match self.users.get(user) {
            Some(entry) => (entry, true),
            None => (&self.dummy, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BCRYPT: &str = "$2y$04$jjKYdTuOKN8IjO0ce/16k.X5pSKeZ3VpDMIQzIRP0yg679GS5xLZC";

    #[test]
    fn comments_blank_lines_and_crlf() {
        let text = format!("# staff\n\nalice:{BCRYPT}\r\n  bob:{BCRYPT}  \n");
        let file = Htpasswd::parse(&text, "users").expect("valid");
        assert_eq!(file.len(), 2);
        assert!(file.contains("alice") && file.contains("bob"));
        assert!(!file.contains("carol"));
        assert_eq!(file.path(), "users");
    }

    #[test]
    fn every_problem_with_its_line() {
        let text = format!(
            "alice:{BCRYPT}\nnocolon\n:{BCRYPT}\nalice:{BCRYPT}\nmd5:$apr1$ZUCkOhCO$Yj5pZp0QiOUccE9Y9JBIf.\nplain:secret\n"
        );
        let err = Htpasswd::parse(&text, "/etc/tether/users").expect_err("bad");
        let lines: Vec<usize> = err.problems.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 4, 5, 6], "{err}");
        let shown = err.to_string();
        let shown: Vec<&str> = shown.lines().collect();
        assert!(
            shown[0].starts_with("/etc/tether/users:2: malformed line"),
            "{}",
            shown[0]
        );
        assert!(shown[1].contains(":3: malformed line: the user name is empty"));
        assert!(shown[2].contains(":4: duplicate user \"alice\" (first on line 1)"));
        assert!(shown[3].contains(":5: user \"md5\": `$apr1$` (MD5-crypt) is refused: re-create the entry with `htpasswd -B`"));
        assert!(shown[4].contains(":6: user \"plain\": this looks like a plaintext password"));
        assert!(!shown[4].contains("secret"));
    }

    #[test]
    fn no_users_is_an_error() {
        let err = Htpasswd::parse("# nobody yet\n", "users").expect_err("empty");
        assert_eq!(err.to_string().lines().count(), 1);
        assert!(err
            .to_string()
            .starts_with("users: no users: add one with `htpasswd -B users USER`"));
    }

    #[test]
    fn not_utf8_and_unreadable() {
        let err = Htpasswd::parse_bytes(b"a\xff:x\n", "f").expect_err("bad");
        assert_eq!(err.to_string(), "f:1: the line is not UTF-8");
        let err = Htpasswd::load("/nonexistent/tether/users").expect_err("missing");
        assert!(
            err.to_string()
                .starts_with("/nonexistent/tether/users: cannot read the htpasswd file: "),
            "{err}"
        );
    }

    #[test]
    fn each_load_is_a_new_identity() {
        let text = format!("alice:{BCRYPT}\n");
        let a = Htpasswd::parse(&text, "f").expect("valid");
        let b = Htpasswd::parse(&text, "f").expect("valid");
        assert_ne!(a.id(), b.id());
        let shown = format!("{a:?}");
        assert_eq!(shown, "Htpasswd { path: \"f\", users: 1, .. }");
        assert!(a.entry("alice").1);
        assert!(!a.entry("mallory").1);
    }
}
