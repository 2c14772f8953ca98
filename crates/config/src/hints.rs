//! "Did you mean" hints for config errors: the closest known word to a misspelt one
//! (`strsim`'s Levenshtein distance, at most a third of the word's length and never more
//! than 3), added to serde's "unknown field" and "unknown variant" messages, to unknown
//! upstream names and placeholders; and hints for the common TOML shape mistakes
//! (`[server]` written for `[[server]]`, a string where a list is expected).

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| {
            (
                strsim::levenshtein(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()),
                c,
            )
        })
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// The words between backquotes of `text` (serde lists what it expected that way).
fn quoted(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// `message` with a hint added where one helps: serde's ``unknown field `x`, expected one
/// of `a`, `b` `` (and `unknown variant`) gets ``did you mean `a`?``; a table written where
/// an array of tables is expected gets the `[[name]]` spelling; a string where a list is
/// expected gets the list spelling.
pub fn with_hint(message: &str) -> String {
    for kind in ["unknown field `", "unknown variant `"] {
        if let Some(rest) = message.strip_prefix(kind) {
            let Some((word, expected)) = rest.split_once('`') else {
                break;
            };
            if let Some(best) = closest(word, quoted(expected)) {
                return format!("{message} (did you mean `{best}`?)");
            }
            return message.to_string();
        }
    }
    if message.starts_with("invalid type: map, expected a sequence") {
        return format!(
            "{message} (a table written once where a list of tables is expected: write \
             [[name]] for each entry, e.g. [[server]], [[upstream]], [[server.route]])"
        );
    }
    if message.starts_with("invalid type: string") && message.contains("expected a sequence") {
        return format!("{message} (a list is expected: write [\"value\"] rather than \"value\")");
    }
    message.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_get_the_closest_known_word() {
        let m = "unknown field `upstreem`, expected one of `server`, `upstream`, `listener`";
        assert!(
            with_hint(m).ends_with("(did you mean `upstream`?)"),
            "{}",
            with_hint(m)
        );
        let m = "unknown field `zzz`, expected one of `server`, `upstream`";
        assert_eq!(with_hint(m), m, "nothing close: no hint");
        assert_eq!(
            closest("roud_robin", ["round_robin", "ip_hash"]),
            Some("round_robin")
        );
        assert_eq!(closest("x", ["round_robin"]), None);
    }

    #[test]
    fn shape_mistakes_say_how_to_write_it() {
        assert!(with_hint("invalid type: map, expected a sequence").contains("[[server]]"));
        let m = with_hint("invalid type: string \"a\", expected a sequence");
        assert!(m.contains("[\"value\"]"), "{m}");
    }
}
