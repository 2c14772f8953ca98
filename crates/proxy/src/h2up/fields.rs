//! A request as the header list an HTTP/2 upstream gets (RFC 9113 §8.2.2, §8.3.1): the
//! pseudo fields first (`:method`, `:scheme`, `:authority` from `Host`, `:path`), then the
//! regular fields lowercased, without the connection-specific ones (`connection` and what
//! it names, `keep-alive`, `proxy-connection`, `transfer-encoding`, `upgrade`, `host`), `te`
//! kept only as `trailers` (gRPC needs it); `X-Forwarded-For`/`-Proto` as for HTTP/1.1, and
//! the affinity's edits (target, replaced values, added fields) applied. And back: a
//! response's fields as an HTTP/1.1 client may get them.

use bytes::Bytes;
use tether_http::RequestHead;

use crate::http::forward::Edits;

/// Whether `name` (lowercase) never crosses into HTTP/2 (RFC 9113 §8.2.2).
fn connection_specific(name: &[u8], named: &[&[u8]]) -> bool {
    matches!(
        name,
        b"connection"
            | b"keep-alive"
            | b"proxy-connection"
            | b"transfer-encoding"
            | b"upgrade"
            | b"host"
            | b"http2-settings"
    ) || named.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// The upstream header list of `req`. `authority`: what `:authority` says when the request
/// has no `Host` (the server's address).
pub(crate) fn request_fields(
    req: &RequestHead,
    client_ip: &str,
    https: bool,
    authority: &str,
    edits: Option<&Edits>,
) -> Vec<(Bytes, Bytes)> {
    let target = edits
        .and_then(|e| e.target.as_deref())
        .unwrap_or(req.target());
    let host = req.header("host").map(Bytes::copy_from_slice);
    let mut out: Vec<(Bytes, Bytes)> = vec![
        (
            Bytes::from_static(b":method"),
            Bytes::copy_from_slice(req.method_str().as_bytes()),
        ),
        (
            Bytes::from_static(b":scheme"),
            Bytes::from_static(if https { b"https" } else { b"http" }),
        ),
        (
            Bytes::from_static(b":authority"),
            host.unwrap_or_else(|| Bytes::copy_from_slice(authority.as_bytes())),
        ),
        (
            Bytes::from_static(b":path"),
            Bytes::copy_from_slice(target.as_bytes()),
        ),
    ];
    let connection = req.header("connection").unwrap_or(b"");
    let named: Vec<&[u8]> = connection
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .filter(|t| !t.is_empty())
        .collect();
    let mut xff: Option<&[u8]> = None;
    for (name, value) in req.headers() {
        let lower = name.to_ascii_lowercase();
        let n = lower.as_bytes();
        if connection_specific(n, &named) {
            continue;
        }
        match n {
            b"te" => {
                if value.trim_ascii().eq_ignore_ascii_case(b"trailers") {
                    out.push((Bytes::from_static(b"te"), Bytes::from_static(b"trailers")));
                }
                continue;
            }
            b"x-forwarded-for" => {
                xff = Some(value);
                continue;
            }
            b"x-forwarded-proto" | b"x-real-ip" | b"x-forwarded-host" => continue,
            _ => {}
        }
        let value = edits
            .and_then(|e| {
                e.replace
                    .iter()
                    .find(|(rn, old, _)| rn.eq_ignore_ascii_case(name) && old == value)
            })
            .map_or(value, |(_, _, new)| new.as_slice());
        out.push((Bytes::from(lower), Bytes::copy_from_slice(value)));
    }
    if let Some(e) = edits {
        for line in e.add.split("\r\n") {
            if let Some((n, v)) = line.split_once(':') {
                let n = n.trim().to_ascii_lowercase();
                if !n.is_empty() {
                    out.push((Bytes::from(n), Bytes::copy_from_slice(v.trim().as_bytes())));
                }
            }
        }
    }
    let forwarded = match xff {
        Some(prior) if !prior.is_empty() => {
            let mut v = prior.to_vec();
            v.extend_from_slice(b", ");
            v.extend_from_slice(client_ip.as_bytes());
            Bytes::from(v)
        }
        _ => Bytes::copy_from_slice(client_ip.as_bytes()),
    };
    out.push((Bytes::from_static(b"x-forwarded-for"), forwarded));
    let proto: &'static [u8] = if https { b"https" } else { b"http" };
    out.push((
        Bytes::from_static(b"x-forwarded-proto"),
        Bytes::from_static(proto),
    ));
    out
}

/// The response fields an HTTP/2 upstream sent, as a client gets them (HTTP/2 fields carry
/// nothing connection-specific; a stray one is dropped).
pub(crate) fn response_fields(fields: Vec<(Bytes, Bytes)>) -> Vec<(Bytes, Bytes)> {
    fields
        .into_iter()
        .filter(|(n, _)| !connection_specific(n, &[]))
        .collect()
}

/// Apply the affinity's edits to a response's fields: values replaced, fields added.
pub(crate) fn apply_edits(fields: &mut Vec<(Bytes, Bytes)>, edits: &Edits) {
    for (name, value) in fields.iter_mut() {
        let found = edits.replace.iter().find(|(n, old, _)| {
            n.as_bytes().eq_ignore_ascii_case(name) && old.as_slice() == &value[..]
        });
        if let Some((_, _, new)) = found {
            *value = Bytes::copy_from_slice(new);
        }
    }
    for line in edits.add.split("\r\n") {
        if let Some((n, v)) = line.split_once(':') {
            let n = n.trim().to_ascii_lowercase();
            if !n.is_empty() {
                fields.push((Bytes::from(n), Bytes::copy_from_slice(v.trim().as_bytes())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tether_http::{parse_request, Limits, Parsed};

    fn head(text: &str) -> RequestHead {
        match parse_request(text.as_bytes(), &Limits::default()) {
            Ok(Parsed::Complete(h)) => h,
            _ => panic!("a head"),
        }
    }

    #[test]
    fn host_becomes_authority_and_hop_by_hop_fields_go() {
        let h = head(
            "POST /pkg.Svc/Call HTTP/1.1\r\nHost: api.example\r\nConnection: keep-alive, x-drop\r\n\
             X-Drop: 1\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\
             Content-Type: application/grpc\r\nX-Forwarded-For: 10.0.0.1\r\n\r\n",
        );
        let f = request_fields(&h, "127.0.0.1", false, "127.0.0.1:9", None);
        let text: Vec<(String, String)> = f
            .iter()
            .map(|(n, v)| {
                (
                    String::from_utf8_lossy(n).into_owned(),
                    String::from_utf8_lossy(v).into_owned(),
                )
            })
            .collect();
        let want = |n: &str, v: &str| (n.to_string(), v.to_string());
        assert_eq!(text[0], want(":method", "POST"));
        assert_eq!(text[2], want(":authority", "api.example"));
        assert_eq!(text[3], want(":path", "/pkg.Svc/Call"));
        assert!(text.contains(&want("te", "trailers")));
        assert!(text.contains(&want("content-type", "application/grpc")));
        assert!(text.contains(&want("x-forwarded-for", "10.0.0.1, 127.0.0.1")));
        for gone in ["connection", "x-drop", "transfer-encoding", "host"] {
            assert!(!text.iter().any(|(n, _)| n == gone), "{gone} in {text:?}");
        }
    }

    #[test]
    fn no_host_names_the_server_and_te_other_than_trailers_goes() {
        let h = head("GET / HTTP/1.0\r\nTE: gzip\r\n\r\n");
        let f = request_fields(&h, "1.2.3.4", true, "10.0.0.9:80", None);
        assert_eq!(&f[1].1[..], b"https");
        assert_eq!(&f[2].1[..], b"10.0.0.9:80");
        assert!(!f.iter().any(|(n, _)| &n[..] == b"te"));
    }
}
