//! The `session_id` balance's carriers, checked: where a request's session id is read
//! (`session_read`, or the single keys `session_cookie`, `session_query`, `session_header`,
//! `session_form`), where a response's new id is tagged (`session_write`, or what the
//! single keys imply), `[upstream.session_body]` (ids in the answer's body) and
//! `fail_statuses` (which answers count as passive failures).
//!
//! ```toml
//! balance = "session_id"
//! session_read = ["query:SESSION", "form:SESSION", "cookie:SESSION"]
//! session_write = ["set-cookie:SESSION", "body"]
//! [upstream.session_body]
//! when = { OPERATION = "CREATESESSION" }
//! ```

use std::collections::BTreeMap;
use std::ops::Range;

use serde::Deserialize;
use tether_balance::{is_valid_cookie_name, StatusSet};
use toml::Spanned;

use super::ConfigError;
use crate::spec::{BodyFind, BodyTagSpec, IdCarrier, IdWriter};

type At<'a> = &'a dyn Fn(Range<usize>, String) -> ConfigError;

/// Default largest urlencoded body read for a `form` carrier.
pub const FORM_MAX_DEFAULT: u64 = 64 * 1024;
/// The most `session_form_max_bytes` may be: an HTTP/2 stream's body is held in its
/// window (256 KiB) while it is read.
pub const FORM_MAX_LIMIT: u64 = 256 * 1024;
/// Default largest answer body searched for a new session id.
pub const BODY_MAX_DEFAULT: u64 = 4096;
/// The most `session_body.max_bytes` may be.
pub const BODY_MAX_LIMIT: u64 = 1024 * 1024;

/// `[upstream.session_body]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSessionBody {
    #[serde(default)]
    when: BTreeMap<String, String>,
    path: Option<Spanned<String>>,
    regex: Option<Spanned<String>>,
    json_pointer: Option<Spanned<String>>,
    max_bytes: Option<Spanned<u64>>,
}

/// A `fail_statuses` entry: `502` or `"5xx"`, `"500-558"`.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum RawStatus {
    Number(u16),
    Text(String),
}

/// The session id keys of one `[[upstream]]`, as written.
pub(super) struct RawCarriers<'a> {
    pub upstream: &'a Spanned<String>,
    pub cookie: Option<&'a Spanned<String>>,
    pub query: Option<&'a Spanned<String>>,
    pub header: Option<&'a Spanned<String>>,
    pub form: Option<&'a Spanned<String>>,
    pub response_header: Option<&'a Spanned<String>>,
    pub read: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub write: Option<&'a Spanned<Vec<Spanned<String>>>>,
    pub body: Option<&'a Spanned<RawSessionBody>>,
    pub form_max: Option<&'a Spanned<u64>>,
}

/// What the checked carriers are.
pub(super) struct Carriers {
    pub read: Vec<IdCarrier>,
    pub write: Vec<IdWriter>,
    pub body: Option<BodyTagSpec>,
    pub form_max: usize,
}

const SINGLE_WITH_LISTS: &str = "give the session id carriers either as `session_read` / \
                                 `session_write` lists or as single keys (`session_cookie`, \
                                 `session_query`, `session_header`, `session_form`, \
                                 `session_response_header`), not both";

/// Check the carriers of a `balance = "session_id"` upstream.
pub(super) fn check(r: &RawCarriers<'_>, at: At<'_>) -> Result<Carriers, ConfigError> {
    let singles = [r.cookie, r.query, r.header, r.form, r.response_header];
    if r.read.is_some() || r.write.is_some() {
        if let Some(s) = singles.iter().flatten().next() {
            return Err(at(s.span(), SINGLE_WITH_LISTS.into()));
        }
    }
    for s in singles.iter().flatten() {
        name(s.get_ref(), "", s.span(), at)?;
    }
    let read = match r.read {
        Some(list) => list
            .get_ref()
            .iter()
            .map(|e| carrier(e, at))
            .collect::<Result<Vec<_>, _>>()?,
        None => {
            let mut read = Vec::new();
            read.extend(r.cookie.map(|c| IdCarrier::Cookie(c.get_ref().clone())));
            read.extend(r.query.map(|c| IdCarrier::Query(c.get_ref().clone())));
            read.extend(r.header.map(|c| IdCarrier::Header(c.get_ref().clone())));
            read.extend(r.form.map(|c| IdCarrier::Form(c.get_ref().clone())));
            read
        }
    };
    if read.is_empty() {
        let span = r.read.map_or(r.upstream.span(), |l| l.span());
        return Err(at(
            span,
            "balance = \"session_id\" needs where the id is read: `session_read` (e.g. \
             [\"query:SESSION\", \"cookie:SESSION\"]) or one of `session_cookie`, \
             `session_query`, `session_header`, `session_form`"
                .into(),
        ));
    }
    let write = match r.write {
        Some(list) => {
            let write = list
                .get_ref()
                .iter()
                .map(|e| writer(e, at))
                .collect::<Result<Vec<_>, _>>()?;
            if let (Some(b), false) = (r.body, write.contains(&IdWriter::Body)) {
                return Err(at(
                    b.span(),
                    "`session_body` needs \"body\" in `session_write`".into(),
                ));
            }
            write
        }
        None => {
            let mut write = Vec::new();
            write.extend(r.cookie.map(|c| IdWriter::SetCookie(c.get_ref().clone())));
            write.extend(r.header.map(|c| IdWriter::Header(c.get_ref().clone())));
            write.extend(
                r.response_header
                    .map(|c| IdWriter::Header(c.get_ref().clone())),
            );
            if r.body.is_some() {
                write.push(IdWriter::Body);
            }
            write
        }
    };
    if let (Some(list), true, None) = (r.write, write.contains(&IdWriter::Body), r.body) {
        return Err(at(
            list.span(),
            "\"body\" in `session_write` needs an `[upstream.session_body]` table (which \
             requests' answers hold a new id: `when = { OPERATION = \"CREATESESSION\" }`)"
                .into(),
        ));
    }
    let body = r.body.map(|b| body(b, at)).transpose()?;
    let form_max = match r.form_max {
        None => FORM_MAX_DEFAULT,
        Some(v) if (1..=FORM_MAX_LIMIT).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            return Err(at(
                v.span(),
                format!("`session_form_max_bytes` must be within 1-{FORM_MAX_LIMIT}"),
            ))
        }
    };
    Ok(Carriers {
        read,
        write,
        body,
        form_max: form_max as usize,
    })
}

/// A name of a cookie, header or parameter: not empty, and a token for a cookie or header.
fn name(text: &str, kind: &str, span: Range<usize>, at: At<'_>) -> Result<(), ConfigError> {
    if text.is_empty() {
        return Err(at(span, "the session id name is empty".into()));
    }
    let ok = match kind {
        "cookie" | "set-cookie" | "header" => is_valid_cookie_name(text),
        _ => !text.contains(['&', '=', '?', '#', ' ']),
    };
    if !ok {
        return Err(at(span, format!("{text:?} is not a valid {kind} name")));
    }
    Ok(())
}

fn split(e: &Spanned<String>) -> (&str, &str) {
    let t = e.get_ref().as_str();
    t.split_once(':').unwrap_or((t, ""))
}

/// `"cookie:NAME"`, `"query:NAME"`, `"header:NAME"`, `"form:NAME"`.
fn carrier(e: &Spanned<String>, at: At<'_>) -> Result<IdCarrier, ConfigError> {
    let (kind, n) = split(e);
    let c = match kind {
        "cookie" => IdCarrier::Cookie(n.into()),
        "query" => IdCarrier::Query(n.into()),
        "header" => IdCarrier::Header(n.into()),
        "form" => IdCarrier::Form(n.into()),
        _ => {
            return Err(at(
                e.span(),
                format!(
                    "`session_read`: {:?} is not \"cookie:NAME\", \"query:NAME\", \
                     \"header:NAME\" or \"form:NAME\"",
                    e.get_ref()
                ),
            ))
        }
    };
    name(n, kind, e.span(), at)?;
    Ok(c)
}

/// `"set-cookie:NAME"`, `"header:NAME"`, `"body"`.
fn writer(e: &Spanned<String>, at: At<'_>) -> Result<IdWriter, ConfigError> {
    let (kind, n) = split(e);
    let w = match kind {
        "set-cookie" => IdWriter::SetCookie(n.into()),
        "header" => IdWriter::Header(n.into()),
        "body" if n.is_empty() => return Ok(IdWriter::Body),
        _ => {
            return Err(at(
                e.span(),
                format!(
                    "`session_write`: {:?} is not \"set-cookie:NAME\", \"header:NAME\" or \
                     \"body\"",
                    e.get_ref()
                ),
            ))
        }
    };
    name(n, kind, e.span(), at)?;
    Ok(w)
}

fn body(b: &Spanned<RawSessionBody>, at: At<'_>) -> Result<BodyTagSpec, ConfigError> {
    let raw = b.get_ref();
    let find = match (&raw.regex, &raw.json_pointer) {
        (Some(_), Some(p)) => {
            return Err(at(
                p.span(),
                "`session_body`: give `regex` or `json_pointer`, not both".into(),
            ))
        }
        (Some(r), None) => match regex::Regex::new(r.get_ref()) {
            Ok(re) if re.captures_len() >= 2 => BodyFind::Regex(r.get_ref().clone()),
            Ok(_) => {
                return Err(at(
                    r.span(),
                    "`session_body.regex` needs one capture group: the id, e.g. \
                     '\"session\":\"([^\"]+)\"'"
                        .into(),
                ))
            }
            Err(e) => return Err(at(r.span(), format!("`session_body.regex`: {e}"))),
        },
        (None, Some(p)) if p.get_ref().is_empty() || p.get_ref().starts_with('/') => {
            BodyFind::Pointer(p.get_ref().clone())
        }
        (None, Some(p)) => {
            return Err(at(
                p.span(),
                "`session_body.json_pointer` starts with '/' (RFC 6901), e.g. \"/session/id\""
                    .into(),
            ))
        }
        (None, None) => BodyFind::Whole,
    };
    let max_bytes = match &raw.max_bytes {
        None => BODY_MAX_DEFAULT,
        Some(v) if (1..=BODY_MAX_LIMIT).contains(v.get_ref()) => *v.get_ref(),
        Some(v) => {
            return Err(at(
                v.span(),
                format!("`session_body.max_bytes` must be within 1-{BODY_MAX_LIMIT}"),
            ))
        }
    };
    if let Some(p) = raw.path.as_ref().filter(|p| !p.get_ref().starts_with('/')) {
        return Err(at(
            p.span(),
            "`session_body.path` must start with '/'".into(),
        ));
    }
    Ok(BodyTagSpec {
        when: raw
            .when
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        path: raw.path.as_ref().map(|p| p.get_ref().clone()),
        find,
        max_bytes: max_bytes as usize,
    })
}

/// `fail_statuses`: which answers count as passive failures (default `["5xx"]`).
pub(super) fn fail_statuses(
    raw: Option<&Spanned<Vec<RawStatus>>>,
    at: At<'_>,
) -> Result<StatusSet, ConfigError> {
    let Some(list) = raw else {
        return Ok(StatusSet::default());
    };
    let mut set = StatusSet::empty();
    for s in list.get_ref() {
        let text = match s {
            RawStatus::Number(n) => n.to_string(),
            RawStatus::Text(t) => t.clone(),
        };
        let (min, max) = StatusSet::parse_entry(&text)
            .map_err(|m| at(list.span(), format!("`fail_statuses`: {m}")))?;
        set = set.with_range(min, max);
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use crate::spec::{AffinitySpec, BodyFind, IdCarrier, IdWriter, UpstreamSpec};

    const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

    fn upstream(extra: &str) -> Result<UpstreamSpec, String> {
        let text = format!(
            "[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:3000\"]\n\
             balance = \"session_id\"\nkeys = [\"{KEY}\"]\n{extra}\n\
             [[server]]\nlisten = [\"127.0.0.1:1\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n"
        );
        crate::parse(&text, "t.toml")
            .map(|s| s.upstreams[0].clone())
            .map_err(|e| e.to_string())
    }

    fn carriers(extra: &str) -> (Vec<IdCarrier>, Vec<IdWriter>, usize) {
        match upstream(extra).map(|u| u.affinity) {
            Ok(AffinitySpec::SessionId {
                read,
                write,
                form_max,
                ..
            }) => (read, write, form_max),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn single_keys_combine_in_a_fixed_order() {
        let (read, write, form_max) = carriers(
            "session_form = \"F\"\nsession_query = \"q\"\nsession_cookie = \"C\"\n\
             session_response_header = \"X-New\"",
        );
        assert_eq!(
            read,
            [
                IdCarrier::Cookie("C".into()),
                IdCarrier::Query("q".into()),
                IdCarrier::Form("F".into())
            ]
        );
        assert_eq!(
            write,
            [
                IdWriter::SetCookie("C".into()),
                IdWriter::Header("X-New".into())
            ]
        );
        assert_eq!(form_max, 64 * 1024);
    }

    #[test]
    fn lists_body_and_their_errors() {
        let (read, write, _) = carriers(
            "session_read = [\"form:SESSION\", \"query:SESSION\"]\nsession_write = [\"body\"]\n\
             [upstream.session_body]\nwhen = { OPERATION = \"CREATESESSION\" }\nregex = 'id=(\\w+)'",
        );
        assert_eq!(
            read,
            [
                IdCarrier::Form("SESSION".into()),
                IdCarrier::Query("SESSION".into())
            ]
        );
        assert_eq!(write, [IdWriter::Body]);
        let Ok(AffinitySpec::SessionId { body: Some(b), .. }) =
            upstream("session_query = \"S\"\n[upstream.session_body]\njson_pointer = \"/a/b\"")
                .map(|u| u.affinity)
        else {
            panic!("session_body")
        };
        assert_eq!(b.find, BodyFind::Pointer("/a/b".into()));
        assert_eq!(b.max_bytes, 4096);
        for (extra, want) in [
            (
                "",
                "t.toml:2:8: balance = \"session_id\" needs where the id is read",
            ),
            (
                "session_read = [\"body:S\"]",
                "t.toml:6:17: `session_read`: \"body:S\"",
            ),
            (
                "session_read = [\"cookie:a b\"]",
                "t.toml:6:17: \"a b\" is not a valid cookie name",
            ),
            (
                "session_query = \"S\"\nsession_write = [\"body\"]",
                "t.toml:6:17: give the session id carriers either as",
            ),
            (
                "session_read = [\"query:S\"]\nsession_write = [\"body\"]",
                "t.toml:7:17: \"body\" in `session_write` needs",
            ),
            (
                "session_query = \"S\"\n[upstream.session_body]\nregex = 'no capture'",
                "t.toml:8:9: `session_body.regex` needs one capture group",
            ),
            (
                "session_query = \"S\"\n[upstream.session_body]\nregex = '('",
                "t.toml:8:9: `session_body.regex`:",
            ),
            (
                "session_query = \"S\"\n[upstream.session_body]\njson_pointer = \"a\"",
                "t.toml:8:16: `session_body.json_pointer` starts with '/'",
            ),
            (
                "session_query = \"S\"\nsession_form_max_bytes = 300000",
                "t.toml:7:26: `session_form_max_bytes` must be within 1-262144",
            ),
            (
                "session_query = \"S\"\nfail_statuses = [\"4xx\", 99]",
                "t.toml:7:17: `fail_statuses`: \"99\"",
            ),
        ] {
            let e = upstream(extra).unwrap_err();
            assert!(e.starts_with(want), "{extra}: {e}");
        }
        let f = upstream("session_query = \"S\"\nfail_statuses = [\"500-558\", 560, \"599\"]");
        let statuses = f
            .map(|u| u.options.passive.fail_statuses)
            .expect("fail_statuses");
        assert!(statuses.contains(558) && statuses.contains(560) && !statuses.contains(559));
    }
}
