//! Webots' session.json read as it is: Webots' defaults, its real sample files (default,
//! local with portRewrite, a TLS one with mail keys), recognition by its keys, unknown keys
//! and empty server lists refused with `path:line:col`, logDir expansion, the log writer.

mod support;

use std::io::Write;

use support::TempDir;
use tether_broker::{
    expand_path, load_session_json, looks_like_session_json, parse_session_json, SessionJson,
};

fn parse(text: &str) -> SessionJson {
    parse_session_json(text, "session.json").expect("valid session.json")
}

#[test]
fn webots_defaults() {
    let j = parse("{\n  \"port\": 1999,\n  \"simulationServers\": [\"localhost:2000\"]\n}\n");
    assert_eq!(j.server, "localhost");
    assert!(!j.ssl && !j.port_rewrite && !j.debug);
    assert_eq!(j.log_dir, "log");
    assert_eq!(j.mail_server_port, None);
    assert!(j.mail_settings().is_none());
    let c = j.broker_config();
    assert_eq!(c.entries(), ["localhost:2000"]);
    assert!(!c.ssl);
    assert_eq!(c.max_load, 95.0);
    assert_eq!(c.poll_interval_ms, 5000);
    assert_eq!(c.timeout_ms, 5000);
    assert_eq!(c.public_url.as_deref(), Some("http://localhost:1999"));
    assert!(c.mail.is_none());
    assert!(c.validate().is_ok());
}

#[test]
fn port_rewrite_means_wss_and_slash_urls() {
    // Webots' config/session/local.json.
    let j = parse(
        "{\n  \"port\": 1999,\n  \"server\": \"localhost\",\n  \"portRewrite\": true,\n  \
         \"simulationServers\": [\n    \"localhost/2000\"\n  ],\n  \"debug\": true\n}\n",
    );
    assert!(j.secure() && j.debug);
    let c = j.broker_config();
    assert!(c.ssl);
    assert_eq!(c.public_url.as_deref(), Some("https://localhost/1999"));
    let b = tether_broker::Broker::new(c, tether_mail::Mailer::log_only());
    b.record_load(0, tether_broker::Load::Up(0.0));
    assert_eq!(b.session_body(), "wss://localhost/2000");
}

#[test]
fn tls_key_pair_and_mail_keys() {
    // Shaped like Webots' config/session/cyberbotics1.json, plus a port and a login.
    let j = parse(
        r#"{
  "port": 1999,
  "server": "sessions.example.org",
  "administrator": "webmaster@example.org",
  "mailServer": "smtp.example.org",
  "mailServerPort": 587,
  "mailSender": "noreply@example.org",
  "mailSenderUser": "noreply",
  "mailSenderPassword": "secret",
  "simulationServers": ["sim1.example.org:2000", "sim1.example.org:3000"],
  "sslKey": "ssl/privkey.pem",
  "sslCertificate": "ssl/cert.pem",
  "logDir": "log/"
}"#,
    );
    assert!(
        j.secure(),
        "sslKey + sslCertificate means TLS, as in Webots"
    );
    let m = j.mail_settings().expect("mail on");
    assert_eq!((m.server.as_str(), m.port), ("smtp.example.org", 587));
    assert_eq!(m.user.as_deref(), Some("noreply"));
    assert_eq!(m.password.as_deref(), Some("secret"));
    assert_eq!(m.recipients, ["Administrator <webmaster@example.org>"]);
    assert!(
        !format!("{j:?}").contains("secret"),
        "Debug shows the password"
    );
    let c = j.broker_config();
    assert!(c.validate().is_ok());
    assert_eq!(
        c.public_url.as_deref(),
        Some("https://sessions.example.org:1999")
    );
    assert!(j.mail_disabled_reason().is_none());

    // An administrator without a mail server: mails off, as Webots says.
    let j =
        parse("{\"port\": 1, \"administrator\": \"a@b.org\", \"simulationServers\": [\"h:1\"]}");
    assert!(j.mail_settings().is_none());
    assert_eq!(
        j.mail_disabled_reason().as_deref(),
        Some("No mail server defined in configuration, disabling e-mail notifications to a@b.org.")
    );
    // mailServerPort 0 means SMTP's default, as Python's smtplib does.
    let j = parse(
        "{\"port\": 1, \"administrator\": \"a@b.org\", \"mailServer\": \"mx\", \"mailServerPort\": 0, \
         \"mailSender\": \"s@b.org\", \"simulationServers\": [\"h:1\"]}",
    );
    assert_eq!(j.mail_settings().map(|m| m.port), Some(25));
}

#[test]
fn unknown_key_is_refused_with_line_and_column() {
    let text = "{\n  \"port\": 1999,\n  \"simulationServer\": [\"localhost:2000\"]\n}\n";
    let e = parse_session_json(text, "conf/session.json").expect_err("refused");
    assert_eq!((e.line, e.col), (3, 20), "{e}");
    assert!(
        e.message.starts_with("unknown field `simulationServer`"),
        "{e}"
    );
    let shown = e.to_string();
    assert!(
        shown.starts_with("conf/session.json:3:20: unknown field `simulationServer`"),
        "{shown}"
    );
    assert!(
        !shown.contains(" at line "),
        "position printed twice: {shown}"
    );
}

#[test]
fn missing_and_empty_required_keys() {
    let e =
        parse_session_json("{\"simulationServers\": [\"h:1\"]}", "s.json").expect_err("no port");
    assert!(e.message.contains("missing field `port`"), "{e}");
    let e = parse_session_json("{\n\"port\": 1,\n  \"simulationServers\": []\n}", "s.json")
        .expect_err("empty list");
    assert_eq!((e.line, e.col), (3, 3), "{e}");
    assert!(e.message.contains("`simulationServers` is empty"), "{e}");
    let e = parse_session_json(
        "{\"port\": \"x\", \"simulationServers\": [\"h:1\"]}",
        "s.json",
    )
    .expect_err("bad type");
    assert_eq!(e.line, 1, "{e}");
    assert!(e.message.contains("invalid type"), "{e}");
}

#[test]
fn recognised_by_its_keys() {
    let v = |t: &str| serde_json::from_str::<serde_json::Value>(t).expect("json");
    assert!(looks_like_session_json(&v(
        "{\"port\": 1999, \"simulationServers\": []}"
    )));
    assert!(looks_like_session_json(&v(
        "{\"port\": 1999, \"logDir\": \"x\", \"simulationServer\": []}"
    )));
    // eXpServer's xps_config.json and other JSON are not.
    assert!(!looks_like_session_json(&v(
        "{\"server_name\": \"x\", \"workers\": 1, \"servers\": []}"
    )));
    assert!(!looks_like_session_json(&v("[1, 2]")));
    // Any of Webots' keys, more than eXpServer's: a session.json with a typo or a missing
    // key is reported against Webots' list (issue: `{"port":1999,"simulationServer":...}`).
    assert!(looks_like_session_json(&v("{\"port\": 1999}")));
    assert!(!looks_like_session_json(&v(
        "{\"port\": 1999, \"servers\": [], \"workers\": 1}"
    )));
}

#[test]
fn log_dir_expands_home_and_variables() {
    let home = std::env::var("HOME").unwrap_or_default();
    assert_eq!(expand_path("~/webots/log"), format!("{home}/webots/log"));
    assert_eq!(expand_path("$HOME/log"), format!("{home}/log"));
    assert_eq!(expand_path("${HOME}/log"), format!("{home}/log"));
    assert_eq!(
        expand_path("/x/$TETHER_SURELY_UNSET_VAR/y"),
        "/x/$TETHER_SURELY_UNSET_VAR/y"
    );
    assert_eq!(expand_path("a$"), "a$");
    assert_eq!(expand_path("${unclosed"), "${unclosed");
    let j = parse("{\"port\": 1, \"logDir\": \"~/wl\", \"simulationServers\": [\"h:1\"]}");
    assert_eq!(j.log_dir(), std::path::PathBuf::from(format!("{home}/wl")));
}

#[test]
fn load_from_a_file_and_log_where_webots_does() {
    let dir = TempDir::new("session-json");
    let path = dir.0.join("session.json");
    let log_dir = dir.0.join("logs");
    let text = format!(
        "{{\"port\": 1999, \"simulationServers\": [\"h:1\"], \"logDir\": \"{}\"}}",
        log_dir.display()
    );
    std::fs::write(&path, text).expect("write");
    let j = load_session_json(&path).expect("loads");
    let mut w = tether_broker::session_log_writer(&j.log_dir(), j.debug).expect("writer");
    writeln!(
        w,
        "2026-11-21 17:00:00 [INFO   ]  Session server running on port 1999 (no SSL)"
    )
    .expect("write");
    w.flush().expect("flush");
    let written = std::fs::read_to_string(log_dir.join("session/output.log")).expect("log");
    assert!(written.contains("Session server running"), "{written}");

    let e = load_session_json(&dir.0.join("absent.json")).expect_err("no file");
    assert_eq!((e.line, e.col), (1, 1));
    assert!(
        e.to_string().contains("absent.json:1:1: cannot read"),
        "{e}"
    );
}
