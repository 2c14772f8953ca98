//! `include = ["conf.d/*.toml"]`: a TOML config made of several files, read as if the
//! included files' tables were written in the including file. Each file's variables are
//! filled first (`env.rs`); then the text parsed is every file's top-level keys (the main
//! file's first, then each included file's, in sorted order) followed by every file's
//! tables in the same order, so arrays of tables (`[[server]]`, `[[upstream]]`) append and
//! a key or table set twice is TOML's own duplicate-key error — reported at the second
//! place, naming the first. Every position maps back to its file's own `line:col`.
//! Included files cannot include others.

use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use crate::env::{self, Expanded};
use crate::{line_col, ConfigError};

/// One file as read: its name, its text, its variables filled.
struct File {
    name: String,
    original: String,
    expanded: Expanded,
}

/// A piece of the combined text: which file, and where in that file's expanded text.
struct Piece {
    start: usize,
    len: usize,
    file: usize,
    from: usize,
}

/// The text to parse, and where each part of it came from.
pub struct Combined {
    pub text: String,
    files: Vec<File>,
    pieces: Vec<Piece>,
}

impl Combined {
    /// The file, line and column of `offset` in the combined text.
    pub fn locate(&self, offset: usize) -> (String, usize, usize) {
        let piece = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.start <= offset)
            .or(self.pieces.first());
        let Some(p) = piece else {
            return (String::new(), 1, 1);
        };
        let f = &self.files[p.file];
        let within = (offset - p.start.min(offset)).min(p.len);
        let at = f.expanded.original(p.from + within);
        let (line, col) = line_col(&f.original, at);
        (f.name.clone(), line, col)
    }

    /// A config error at `span` of the combined text.
    pub fn error(&self, span: Range<usize>, message: String) -> ConfigError {
        let (path, line, col) = self.locate(span.start);
        ConfigError {
            path,
            line,
            col,
            message,
        }
    }

    /// TOML's duplicate-key message at `span`, naming where the key was first set.
    pub fn duplicate_hint(&self, span: &Range<usize>, message: &str) -> String {
        // The key: named in the message, else the word TOML's span starts at.
        let at_span = self.text.get(span.start..).unwrap_or("");
        let word: String = at_span
            .trim_start_matches('[')
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
            .collect();
        let key = message.split('`').nth(1).unwrap_or(&word);
        if key.is_empty() {
            return message.to_string();
        }
        let before = &self.text[..span.start.min(self.text.len())];
        let mut offset = 0;
        let mut first = None;
        for line in before.split_inclusive('\n') {
            let t = line.trim_start();
            let starts = t.strip_prefix(key).is_some_and(|r| {
                let r = r.trim_start();
                r.starts_with('=') || r.starts_with('.')
            }) || t.starts_with(&format!("[{key}]"));
            if starts {
                first = Some(offset + (line.len() - t.len()));
            }
            offset += line.len();
        }
        match first {
            Some(at) => {
                let (path, line, col) = self.locate(at);
                let named = if message.contains('`') {
                    String::new()
                } else {
                    format!(" `{key}`")
                };
                format!("{message}{named} (first set at {path}:{line}:{col})")
            }
            None => message.to_string(),
        }
    }
}

#[derive(Deserialize)]
struct Includes {
    #[serde(default)]
    include: Option<Spanned<Vec<String>>>,
}

/// Where the top-level keys of `text` end: the first line that opens a table, outside a
/// multi-line string.
fn head_len(text: &str) -> usize {
    let mut offset = 0;
    let mut in_multi: Option<&str> = None;
    for line in text.split_inclusive('\n') {
        let t = line.trim_start();
        if in_multi.is_none() && t.starts_with('[') {
            return offset;
        }
        for q in ["\"\"\"", "'''"] {
            let n = line.matches(q).count();
            if n % 2 == 1 {
                in_multi = match in_multi {
                    Some(open) if open == q => None,
                    None => Some(q),
                    other => other,
                };
            }
        }
        offset += line.len();
    }
    text.len()
}

fn read(name: &str, original: String) -> Result<File, ConfigError> {
    let expanded = env::expand(&original, |n| std::env::var(n).ok()).map_err(|(at, message)| {
        let (line, col) = line_col(&original, at);
        ConfigError {
            path: name.to_string(),
            line,
            col,
            message,
        }
    })?;
    Ok(File {
        name: name.to_string(),
        original,
        expanded,
    })
}

/// The files `patterns` name (relative to `base`), each pattern's matches in sorted order.
fn resolve(patterns: &[String], base: &Path) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    for p in patterns {
        let full = base.join(p);
        let text = full.to_string_lossy().into_owned();
        let is_glob = p.contains(['*', '?', '[']);
        let mut found: Vec<PathBuf> = glob::glob(&text)
            .map_err(|e| format!("`include`: {p:?} is not a valid pattern: {e}"))?
            .filter_map(Result::ok)
            .filter(|f| f.is_file())
            .collect();
        found.sort();
        if found.is_empty() && !is_glob {
            return Err(format!("`include`: no file {}", full.display()));
        }
        out.extend(found);
    }
    Ok(out)
}

/// Read `main_text` (the file `name`) and the files it includes into one text to parse.
pub fn combine(main_text: &str, name: &str) -> Result<Combined, ConfigError> {
    let main = read(name, main_text.to_string())?;
    let includes = toml::from_str::<Includes>(&main.expanded.text)
        .ok()
        .and_then(|i| i.include);
    let mut files = vec![main];
    if let Some(list) = includes {
        let base = Path::new(name).parent().unwrap_or(Path::new("."));
        let paths = resolve(list.get_ref(), base).map_err(|m| {
            let (line, col) = line_col(
                &files[0].original,
                files[0].expanded.original(list.span().start),
            );
            ConfigError {
                path: name.to_string(),
                line,
                col,
                message: m,
            }
        })?;
        for p in paths {
            let shown = p.display().to_string();
            let text = std::fs::read_to_string(&p).map_err(|e| ConfigError {
                path: shown.clone(),
                line: 1,
                col: 1,
                message: format!("cannot read (included from {name}): {e}"),
            })?;
            let f = read(&shown, text)?;
            if let Ok(Includes {
                include: Some(inner),
            }) = toml::from_str::<Includes>(&f.expanded.text)
            {
                let (line, col) = line_col(&f.original, f.expanded.original(inner.span().start));
                return Err(ConfigError {
                    path: shown,
                    line,
                    col,
                    message: "`include` in an included file: only the main config includes".into(),
                });
            }
            files.push(f);
        }
    }
    let mut text = String::new();
    let mut pieces = Vec::new();
    let heads: Vec<usize> = files.iter().map(|f| head_len(&f.expanded.text)).collect();
    for pass in [true, false] {
        for (i, f) in files.iter().enumerate() {
            let (from, to) = if pass {
                (0, heads[i])
            } else {
                (heads[i], f.expanded.text.len())
            };
            if from == to {
                continue;
            }
            pieces.push(Piece {
                start: text.len(),
                len: to - from,
                file: i,
                from,
            });
            text.push_str(&f.expanded.text[from..to]);
            if !text.ends_with('\n') {
                text.push('\n');
            }
        }
    }
    Ok(Combined {
        text,
        files,
        pieces,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_keys_before_tables() {
        assert_eq!(head_len("a = 1\nb = 2\n[[server]]\nx = 1\n"), 12);
        assert_eq!(head_len("a = \"\"\"\n[not a table]\n\"\"\"\n[t]\n"), 26);
        assert_eq!(head_len("a = 1\n"), 6);
    }
}
