//! What a config may mean by mistake but is not refused for: a files `root` (a route's, or
//! an http listener's) that does not exist now. It may appear later (a deploy that mounts
//! it), so `tether check` prints it and the worker logs it once at WARN at start; every
//! request to such a route would otherwise be a silent `404`.
//!
//! The TOML text is read a second time, leniently (unknown keys ignored: the check proper
//! has refused them already), for the positions of the `root` values.

use std::ops::Range;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::{line_col, ConfigError};

#[derive(Deserialize, Default)]
struct Lenient {
    #[serde(default)]
    listener: Vec<WithRoot>,
    #[serde(default)]
    server: Vec<LenientServer>,
}

#[derive(Deserialize, Default)]
struct LenientServer {
    #[serde(default)]
    route: Vec<WithRoot>,
}

#[derive(Deserialize, Default)]
struct WithRoot {
    root: Option<Spanned<String>>,
}

/// The warnings of a TOML config `text` (named `name` in messages), each at the position of
/// the value it is about. JSON configs (eXpServer's, Webots') give none.
pub fn warnings(text: &str, name: &str) -> Vec<ConfigError> {
    if text.trim_start().starts_with('{') {
        return Vec::new();
    }
    let Ok(raw) = toml::from_str::<Lenient>(text) else {
        return Vec::new();
    };
    let roots = raw
        .listener
        .iter()
        .chain(raw.server.iter().flat_map(|s| s.route.iter()))
        .filter_map(|r| r.root.as_ref());
    let at = |span: Range<usize>, message: String| {
        let (line, col) = line_col(text, span.start);
        ConfigError {
            path: name.to_string(),
            line,
            col,
            message,
        }
    };
    roots
        .filter_map(|root| {
            let path = Path::new(root.get_ref());
            let problem = match std::fs::metadata(path) {
                Ok(m) if m.is_dir() => return None,
                Ok(_) => "is not a directory",
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => "does not exist",
                Err(_) => "cannot be read",
            };
            Some(at(
                root.span(),
                format!(
                    "warning: files root {:?} {problem}: every request to it answers 404 \
                     until it appears",
                    root.get_ref()
                ),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_root_is_warned_at_its_value() {
        let dir = std::env::temp_dir();
        let text = format!(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\nroot = {:?}\n\n[[server]]\nlisten = [\"127.0.0.1:2\"]\n\
             [[server.route]]\npath = \"/a\"\nroot = \"/nonexistent/tether/root\"\n",
            dir.display().to_string()
        );
        let w = warnings(&text, "t.toml");
        assert_eq!(w.len(), 1, "{w:?}");
        assert_eq!((w[0].line, w[0].col), (9, 8));
        assert!(w[0].message.contains("does not exist"), "{}", w[0].message);
        assert!(warnings("{\"x\": 1}", "x.json").is_empty());
    }
}
