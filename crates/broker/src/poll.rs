//! One `/load` request: `GET http(s)://<entry>/load` with ureq (blocking, on a poller
//! thread, never an event loop), a whole-request timeout, no proxy from the environment,
//! no redirects, at most 64 bytes of body. Refused, unreachable, timed out, an HTTP error
//! status or a body that is not a finite number all mean the server is down; the error
//! text says which, for the log and the mail.

use std::time::Duration;

use crate::state::Load;

/// The HTTP client the poller shares between its threads; `roots` replace the built-in
/// ones for `https://` polls.
pub(crate) fn agent(
    timeout: Duration,
    roots: Option<Vec<ureq::tls::Certificate<'static>>>,
) -> ureq::Agent {
    let mut tls = ureq::tls::TlsConfig::builder();
    if let Some(roots) = roots {
        tls = tls.root_certs(ureq::tls::RootCerts::from(roots));
    }
    let config = ureq::Agent::config_builder()
        .tls_config(tls.build())
        .timeout_global(Some(timeout))
        .http_status_as_error(true)
        .max_redirects(0)
        .proxy(None)
        .user_agent("tether-broker")
        .build();
    ureq::Agent::new_with_config(config)
}

/// `http(s)://<entry>/load`.
pub(crate) fn load_url(scheme: &str, entry: &str) -> String {
    format!("{scheme}://{entry}/load")
}

/// Ask one server for its load.
pub(crate) fn fetch_load(agent: &ureq::Agent, url: &str) -> Load {
    let mut response = match agent.get(url).call() {
        Ok(r) => r,
        Err(e) => return Load::Down(describe(&e)),
    };
    let text = response.body_mut().with_config().limit(64).read_to_string();
    match text {
        Ok(t) => parse_load(&t),
        Err(e) => Load::Down(describe(&e)),
    }
}

/// A body that is a finite number (surrounding whitespace allowed) is the load.
pub fn parse_load(body: &str) -> Load {
    match body.trim().parse::<f64>() {
        Ok(l) if l.is_finite() => Load::Up(l),
        _ => {
            let shown: String = body.trim().chars().take(40).collect();
            Load::Down(format!("not a number: {shown:?}"))
        }
    }
}

fn describe(e: &ureq::Error) -> String {
    let text = match e {
        ureq::Error::StatusCode(code) => format!("HTTP status {code}"),
        ureq::Error::Timeout(_) => "timed out".into(),
        ureq::Error::BodyExceedsLimit(_) => "not a number: body too long".into(),
        ureq::Error::Io(io) => io.to_string(),
        other => other.to_string(),
    };
    with_certificate_hint(text)
}

/// rustls refuses a server certificate that is itself a CA (`CaUsedAsEndEntity`): what a
/// one-line `openssl req -x509` makes, and what `ca` then holds when it is the front door's
/// own certificate. Say what to do instead.
fn with_certificate_hint(text: String) -> String {
    if text.contains("CaUsedAsEndEntity") {
        return format!(
            "{text}: the server's certificate is itself a CA certificate (a self-signed one \
             made with `openssl req -x509` is); TLS clients accept a CA only as the issuer. \
             Make a CA and a server certificate signed by it, give the server the latter and \
             the broker's `ca` the CA (docs/broker.md, \"Certificates for the front door\")"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ca_used_as_the_server_certificate_says_what_to_do() {
        let m = with_certificate_hint("invalid peer certificate: CaUsedAsEndEntity".into());
        assert!(
            m.contains("Make a CA") && m.contains("docs/broker.md"),
            "{m}"
        );
        assert_eq!(with_certificate_hint("timed out".into()), "timed out");
    }

    #[test]
    fn numbers_and_not_numbers() {
        assert_eq!(parse_load("42"), Load::Up(42.0));
        assert_eq!(parse_load(" 12.5\n"), Load::Up(12.5));
        assert!(matches!(parse_load("nan"), Load::Down(_)));
        assert!(matches!(parse_load("inf"), Load::Down(_)));
        assert!(matches!(parse_load(""), Load::Down(_)));
        let Load::Down(why) = parse_load("busy") else {
            panic!("busy is not a load");
        };
        assert_eq!(why, "not a number: \"busy\"");
    }

    #[test]
    fn url_keeps_the_entry_as_written() {
        assert_eq!(
            load_url("http", "localhost:2000"),
            "http://localhost:2000/load"
        );
        assert_eq!(
            load_url("https", "host.example.org/2000"),
            "https://host.example.org/2000/load"
        );
    }
}
