//! `${NAME}` and `${NAME:-default}` in a TOML config, filled from the environment once when
//! the file is read (so keys and passwords stay out of the file); `$$` is a literal `$`.
//! Only names that start with a letter or `_` are variables: `$1`, `${1}` and `$name` are a
//! rewrite target's regex captures and `{name}` a per-request placeholder, both left alone.
//! A variable that is not set and has no default is an error at its position.
//!
//! Substitution changes lengths, so [`Expanded::original`] maps an offset in the expanded
//! text back to the file's, for `path:line:col` messages.

/// The text with its variables filled, and where each change was made.
pub struct Expanded {
    pub text: String,
    /// (offset in the expanded text, offset in the original, length there, length here).
    edits: Vec<(usize, usize, usize, usize)>,
}

impl Expanded {
    /// The offset in the original text of `offset` in the expanded one (inside a
    /// substituted value: where the variable was written).
    pub fn original(&self, offset: usize) -> usize {
        let mut shift: isize = 0;
        for &(at, orig, old_len, new_len) in &self.edits {
            if offset < at {
                break;
            }
            if offset < at + new_len {
                return orig;
            }
            shift += old_len as isize - new_len as isize;
        }
        (offset as isize + shift).max(0) as usize
    }
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_'
}

fn is_name(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Fill the variables of `text` from `lookup` (the environment in use); an error is the
/// original offset and a message.
pub fn expand(
    text: &str,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Expanded, (usize, String)> {
    if !text.contains('$') {
        return Ok(Expanded {
            text: text.to_string(),
            edits: Vec::new(),
        });
    }
    let mut out = String::with_capacity(text.len());
    let mut edits = Vec::new();
    let mut i = 0;
    while let Some(rel) = text[i..].find('$') {
        let at = i + rel;
        out.push_str(&text[i..at]);
        let rest = &text[at..];
        if rest.starts_with("$$") {
            edits.push((out.len(), at, 2, 1));
            out.push('$');
            i = at + 2;
            continue;
        }
        let body = rest
            .strip_prefix("${")
            .filter(|b| b.starts_with(is_name_start));
        let Some(body) = body else {
            out.push('$');
            i = at + 1;
            continue;
        };
        let Some(end) = body.find('}') else {
            return Err((at, "`${` without its closing `}`".into()));
        };
        let inner = &body[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (inner, None),
        };
        if !name.chars().all(is_name) {
            return Err((
                at,
                format!("`${{{inner}}}`: a variable name is letters, digits and `_`"),
            ));
        }
        let value = match (lookup(name), default) {
            (Some(v), _) => v,
            (None, Some(d)) => d.to_string(),
            (None, None) => {
                return Err((
                    at,
                    format!(
                        "`${{{name}}}` is not set in the environment (set it, or give a \
                         default: `${{{name}:-value}}`)"
                    ),
                ))
            }
        };
        let old_len = 2 + end + 1;
        edits.push((out.len(), at, old_len, value.len()));
        out.push_str(&value);
        i = at + old_len;
    }
    out.push_str(&text[i..]);
    Ok(Expanded { text: out, edits })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "KEY" => Some("s3cret".into()),
            "PORT" => Some("8080".into()),
            _ => None,
        }
    }

    #[test]
    fn variables_defaults_and_literal_dollars() {
        let e = expand(
            "a = \"${KEY}\" b = \"${NOPE:-x y}\" c = \"$$1\" d = \"$1 ${1} $name {host}\"",
            env,
        )
        .expect("expands");
        assert_eq!(
            e.text,
            "a = \"s3cret\" b = \"x y\" c = \"$1\" d = \"$1 ${1} $name {host}\""
        );
    }

    #[test]
    fn a_missing_variable_is_an_error_at_its_place() {
        let (at, m) = expand("x = 1\nk = \"${MISSING}\"", env)
            .err()
            .expect("error");
        assert_eq!(at, 11);
        assert!(m.contains("MISSING") && m.contains(":-"), "{m}");
        assert!(expand("k = \"${KEY\"", env).is_err());
    }

    #[test]
    fn offsets_map_back_to_the_file() {
        let text = "a = \"${PORT}\"\nb = zz";
        let e = expand(text, env).expect("expands");
        let zz = e.text.find("zz").expect("zz");
        assert_eq!(e.original(zz), text.find("zz").expect("zz"));
        let in_value = e.text.find("8080").expect("value");
        assert_eq!(e.original(in_value + 2), text.find("${PORT}").expect("var"));
    }
}
