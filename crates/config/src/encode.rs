//! `encode`: compression of proxied answers (gzip, brotli, zstd), on a `[[server]]` (its
//! proxy routes inherit it) or a `[[server.route]]` (its own, or `false` to turn the
//! server's off):
//!
//! ```toml
//! encode = true                                  # the defaults below
//! encode = { types = ["application/json", "text/*"], min_length = 1024,
//!            gzip = 6, br = 4, zstd = 3, prefer = ["zstd", "br", "gzip"] }
//! ```
//!
//! Checked into a `tether_compress::Policy` (plain data); a level out of its coding's range,
//! an unknown coding, a bad type or an unknown key is an error at the `encode` value.

use std::ops::Range;

use serde::Deserialize;
use tether_compress::{Coding, Levels, Policy};
use toml::Spanned;

use super::ConfigError;

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// The table form, every key optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTable {
    types: Option<Vec<String>>,
    min_length: Option<u64>,
    gzip: Option<u32>,
    br: Option<u32>,
    zstd: Option<u32>,
    prefer: Option<Vec<String>>,
}

/// What an `encode` key says: `None` off, `Some(policy)` on.
pub(crate) fn check(raw: &Spanned<toml::Value>, at: At<'_>) -> Result<Option<Policy>, ConfigError> {
    let span = raw.span();
    let table = match raw.get_ref() {
        toml::Value::Boolean(false) => return Ok(None),
        toml::Value::Boolean(true) => return Ok(Some(Policy::default())),
        toml::Value::Table(t) => t.clone(),
        other => {
            return Err(at(
                span,
                format!(
                    "`encode` is true, false or a table {{ types, min_length, gzip, br, zstd, \
                     prefer }}, not a {}",
                    other.type_str()
                ),
            ))
        }
    };
    let t = RawTable::deserialize(toml::Value::Table(table))
        .map_err(|e| at(span.clone(), format!("`encode`: {}", e.message())))?;
    let mut policy = Policy::default();
    if let Some(types) = t.types {
        if types.is_empty() {
            return Err(at(
                span,
                "`encode.types` is empty (write `encode = false` to turn compression off)".into(),
            ));
        }
        for ty in &types {
            let ok = ty == "*"
                || ty
                    .split_once('/')
                    .is_some_and(|(a, b)| !a.is_empty() && !b.is_empty() && !ty.contains(' '));
            if !ok {
                return Err(at(
                    span,
                    format!("`encode.types`: {ty:?} is not a media type (\"text/html\", \"text/*\", \"application/*+json\", \"*\")"),
                ));
            }
        }
        policy.types = types;
    }
    if let Some(n) = t.min_length {
        policy.min_length = n;
    }
    let mut levels = Levels::default();
    for (key, coding, value) in [
        ("gzip", Coding::Gzip, t.gzip),
        ("br", Coding::Brotli, t.br),
        ("zstd", Coding::Zstd, t.zstd),
    ] {
        let Some(v) = value else { continue };
        let range = coding.level_range();
        if !range.contains(&v) {
            return Err(at(
                span,
                format!(
                    "`encode.{key}`: level {v} is outside {}-{}",
                    range.start(),
                    range.end()
                ),
            ));
        }
        match coding {
            Coding::Gzip => levels.gzip = v,
            Coding::Brotli => levels.brotli = v,
            Coding::Zstd => levels.zstd = v,
        }
    }
    policy.levels = levels;
    if let Some(prefer) = t.prefer {
        let mut offered = Vec::new();
        for name in &prefer {
            let coding = match name.as_str() {
                "gzip" => Coding::Gzip,
                "br" => Coding::Brotli,
                "zstd" => Coding::Zstd,
                _ => {
                    return Err(at(
                        span,
                        format!("`encode.prefer`: {name:?} is not \"zstd\", \"br\" or \"gzip\""),
                    ))
                }
            };
            if offered.contains(&coding) {
                return Err(at(span, format!("`encode.prefer`: {name:?} twice")));
            }
            offered.push(coding);
        }
        if offered.is_empty() {
            return Err(at(span, "`encode.prefer` is empty".into()));
        }
        policy.offered = offered;
    }
    Ok(Some(policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(text: &str) -> Result<Option<Policy>, String> {
        #[derive(Deserialize)]
        struct Doc {
            encode: Spanned<toml::Value>,
        }
        let doc: Doc = toml::from_str(text).map_err(|e| e.to_string())?;
        let at = |span: Range<usize>, message: String| ConfigError {
            path: "t".into(),
            line: 1,
            col: span.start + 1,
            message,
        };
        check(&doc.encode, &at).map_err(|e| e.to_string())
    }

    #[test]
    fn forms() {
        assert_eq!(run("encode = false").unwrap(), None);
        assert_eq!(run("encode = true").unwrap(), Some(Policy::default()));
        let p = run("encode = { types = [\"application/json\"], min_length = 10, gzip = 1, br = 11, zstd = 19, prefer = [\"gzip\"] }")
            .unwrap()
            .unwrap();
        assert_eq!(p.types, vec!["application/json".to_string()]);
        assert_eq!(p.min_length, 10);
        assert_eq!((p.levels.gzip, p.levels.brotli, p.levels.zstd), (1, 11, 19));
        assert_eq!(p.offered, vec![Coding::Gzip]);
    }

    #[test]
    fn errors() {
        for (text, want) in [
            ("encode = { gzip = 10 }", "level 10 is outside 1-9"),
            ("encode = { zstd = 0 }", "level 0 is outside 1-22"),
            ("encode = { prefer = [\"deflate\"] }", "\"deflate\" is not"),
            ("encode = { gzp = 1 }", "unknown field `gzp`"),
            ("encode = { types = [\"json\"] }", "not a media type"),
            ("encode = 3", "not a integer"),
        ] {
            let e = run(text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }
}
