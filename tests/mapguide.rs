//! MapGuide RFC 3 end to end (issue 24): a fake mapagent (`tests/support_mapagent.py`: ids
//! made in each server's memory by `OPERATION=CREATESESSION` and answered as the whole
//! text/plain body; `SESSION=` read from the query string or a urlencoded POST body; `559`
//! for an id the server does not hold) behind two tether instances running the shipped
//! `examples/configs/mapguide.toml` (ports rewritten), sharing its key. Clients: Python's
//! `http.client` (HTTP/1.1) and `h2` (h2c) over keep-alive connections
//! (`tests/support_mapguide_client.py`), and curl for both protocols.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

const AGENT: &str = "/mapguide/mapagent/mapagent.fcgi";

fn agent(port: u16, name: &str) -> Proc {
    let script = repo().join("tests/support_mapagent.py");
    let port_s = port.to_string();
    python(&[script.as_os_str(), port_s.as_ref(), name.as_ref()], port)
}

/// The shipped config with these ports; `edit` changes its text further.
fn config(listen: u16, site1: u16, site2: u16, edit: impl Fn(String) -> String) -> String {
    let shipped = std::fs::read_to_string(repo().join("examples/configs/mapguide.toml"))
        .expect("read examples/configs/mapguide.toml");
    for text in [
        "127.0.0.1:8008",
        "127.0.0.1:8009",
        "127.0.0.1:8080",
        "fail_statuses",
    ] {
        assert!(
            shipped.contains(text),
            "the shipped config no longer has {text}"
        );
    }
    edit(
        shipped
            .replace("127.0.0.1:8008", &format!("127.0.0.1:{site1}"))
            .replace("127.0.0.1:8009", &format!("127.0.0.1:{site2}"))
            .replace("127.0.0.1:8080", &format!("127.0.0.1:{listen}")),
    )
}

/// One request of a batch: port, method, target, urlencoded body.
type Req = (u16, &'static str, String, Option<String>);

/// Run `reqs` through `tests/support_mapguide_client.py` (`h1` or `h2`): (status, body)
/// each, in order.
fn batch(proto: &str, reqs: &[Req]) -> Vec<(u16, String)> {
    let json = serde_json::to_string(reqs).expect("json");
    let mut child = Command::new("python3")
        .arg(repo().join("tests/support_mapguide_client.py"))
        .arg(proto)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 (bash scripts/setup.sh installs h2)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(json.as_bytes())
        .expect("write requests");
    let out = child.wait_with_output().expect("client");
    assert!(
        out.status.success(),
        "client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("client output")
}

fn create(port: u16) -> Req {
    (
        port,
        "GET",
        format!("{AGENT}?OPERATION=CREATESESSION&USERNAME=Anonymous"),
        None,
    )
}

/// A follow-up of session `tagged`: in the query string (GET) or a form body (POST).
fn follow(port: u16, tagged: &str, form: bool) -> Req {
    if form {
        let body = format!("OPERATION=GETDYNAMICMAPOVERLAYIMAGE&SESSION={tagged}&LOCALE=en");
        (port, "POST", AGENT.to_string(), Some(body))
    } else {
        let target = format!("{AGENT}?OPERATION=GETMAP&SESSION={tagged}&LOCALE=en");
        (port, "GET", target, None)
    }
}

/// What a mapagent was sent: every SESSION value.
fn seen(port: u16) -> Vec<String> {
    let (code, body) = get(&format!("http://127.0.0.1:{port}/stats"));
    assert_eq!(code, 200);
    let v: serde_json::Value = serde_json::from_slice(&body).expect("stats json");
    v["seen"]
        .as_array()
        .expect("seen")
        .iter()
        .filter_map(|s| s.as_str().map(str::to_string))
        .collect()
}

/// `s` with one character of its tag changed.
fn tampered(s: &str) -> String {
    let mut b = s.as_bytes().to_vec();
    b[20] = if b[20] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).expect("ascii")
}

#[test]
fn mapguide_sessions_go_home_through_two_instances_over_http1_and_http2() {
    let dir = TempDir::new("mapguide");
    let (s1, s2) = (free_port(), free_port());
    let _agents = (agent(s1, "site1"), agent(s2, "site2"));
    let (a, b) = (free_port(), free_port());
    let _ta = tether(&dir, &config(a, s1, s2, |c| c), &[a]);
    let dir_b = TempDir::new("mapguide-b");
    let _tb = tether(&dir_b, &config(b, s1, s2, |c| c), &[b]);
    let mut all_tagged = Vec::new();

    for proto in ["h1", "h2"] {
        // Ten sessions, created alternately through A and B: round robin over the sites,
        // each answered as `<tag>.<the site's own id>`.
        let creates: Vec<Req> = (0..10).map(|i| create([a, b][i % 2])).collect();
        let mut sessions = Vec::new();
        for (status, body) in batch(proto, &creates) {
            assert_eq!(status, 200, "{proto}: {body}");
            let (_, original) = body.split_once('.').expect("<tag>.<original>");
            let home = original.rsplit('_').next().expect("site").to_string();
            sessions.push((body.clone(), original.to_string(), home));
        }
        let homes: HashSet<&str> = sessions.iter().map(|s| s.2.as_str()).collect();
        assert_eq!(
            homes.len(),
            2,
            "{proto}: new sessions on both sites: {sessions:?}"
        );

        // 500 follow-ups: every instance, query and form alike, all home (the site answers
        // 559 for a session it does not hold), and the site sees its own id.
        let n = 500;
        let reqs: Vec<Req> = (0..n)
            .map(|i| follow([a, b][i % 2], &sessions[i % 10].0, (i / 2) % 2 == 1))
            .collect();
        let answers = batch(proto, &reqs);
        let mut home = 0;
        for (i, (status, body)) in answers.iter().enumerate() {
            let (_, original, site) = &sessions[i % 10];
            if (*status, body.as_str()) == (200, format!("{site} {original}").as_str()) {
                home += 1;
            } else {
                eprintln!("{proto} follow-up {i}: {status} {body}");
            }
        }
        assert_eq!(home, n, "{proto}: {home} of {n} follow-ups home");

        // A tampered tag is never honoured: balanced as an unknown id and forwarded as sent
        // (the sites do not hold it: 559), on both carriers.
        let bad: Vec<Req> = (0..4)
            .map(|i| follow([a, b][i % 2], &tampered(&sessions[i].0), i % 2 == 1))
            .collect();
        for (status, body) in batch(proto, &bad) {
            assert_eq!(status, 559, "{proto}: {body}");
            assert!(body.contains("expired or unknown"), "{body}");
        }
        all_tagged.extend(sessions.into_iter().map(|s| s.0));
    }

    // Real curl clients, form and query, HTTP/1.1 and h2c, through B.
    let tagged = &all_tagged[0];
    let original = tagged.split_once('.').expect("tagged").1;
    let site = original.rsplit('_').next().expect("site");
    for h2 in [false, true] {
        let url = format!("http://127.0.0.1:{b}{AGENT}");
        let form = format!("OPERATION=GETMAP&SESSION={tagged}");
        let mut args = vec!["-s", "-d", form.as_str(), url.as_str()];
        if h2 {
            args.insert(0, "--http2-prior-knowledge");
        }
        let out = curl(&args);
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            format!("{site} {original}"),
            "curl h2={h2}"
        );
    }

    // The sites never saw a tether tag: only their own ids and the tampered values.
    let seen: Vec<String> = [s1, s2].iter().flat_map(|p| seen(*p)).collect();
    assert!(seen.len() > 1000, "{}", seen.len());
    for t in &all_tagged {
        assert!(!seen.contains(t), "a site saw the tagged id {t}");
    }
    let tagged_like = seen.iter().filter(|s| s.contains('.')).count();
    assert_eq!(tagged_like, 8, "only the 8 tampered values carry a dot");
}

#[test]
fn a_559_does_not_eject_a_site_server_and_an_unknown_servers_tag_is_an_error() {
    let dir = TempDir::new("mapguide-559");
    let (s1, s2, s3) = (free_port(), free_port(), free_port());
    let _agents = (agent(s1, "site1"), agent(s2, "site2"), agent(s3, "site3"));
    let (a, d) = (free_port(), free_port());
    // A: the shipped config (`fail_statuses` leaves 559 out, `max_fails = 3`). D: the same
    // without `fail_statuses`, so every 5xx counts.
    let _ta = tether(&dir, &config(a, s1, s2, |c| c), &[a]);
    let dir_d = TempDir::new("mapguide-5xx");
    let plain = |c: String| {
        c.lines()
            .filter(|l| !l.starts_with("fail_statuses"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    let _td = tether(&dir_d, &config(d, s1, s2, plain), &[d]);
    for port in [a, d] {
        // Six expired sessions: three 559s for each site, in a row.
        let expired: Vec<Req> = (0..6)
            .map(|i| follow(port, &format!("gone-{i}"), i % 2 == 1))
            .collect();
        for (status, _) in batch("h1", &expired) {
            assert_eq!(status, 559);
        }
        let after = batch("h1", &[create(port), create(port)]);
        let statuses: Vec<u16> = after.iter().map(|r| r.0).collect();
        if port == a {
            // Both sites still take new sessions.
            assert_eq!(statuses, [200, 200], "{after:?}");
            let sites: HashSet<&str> = after
                .iter()
                .filter_map(|r| r.1.rsplit('_').next())
                .collect();
            assert_eq!(sites.len(), 2, "{after:?}");
        } else {
            // The contrast: with 559 counted as a failure both sites are out.
            assert_eq!(statuses, [503, 503], "{after:?}");
        }
    }

    // A session sealed (same key) for a server this pool does not have: 503, never a
    // silent move to a site that does not hold it.
    let (c, dir_c) = (free_port(), TempDir::new("mapguide-site3"));
    let third = |cfg: String| cfg.replace("id = \"site1\"", "id = \"site3\"");
    let _tc = tether(&dir_c, &config(c, s3, s2, third), &[c]);
    let mut site3 = None;
    for (status, body) in batch("h1", &(0..2).map(|_| create(c)).collect::<Vec<_>>()) {
        assert_eq!(status, 200);
        if body.ends_with("_en_site3") {
            site3 = Some(body);
        }
    }
    let site3 = site3.expect("a session on site3");
    for proto in ["h1", "h2"] {
        let answers = batch(proto, &[follow(a, &site3, false), follow(a, &site3, true)]);
        for (status, body) in answers {
            assert_eq!(status, 503, "{proto}: {body}");
        }
    }
}

#[test]
fn session_id_carrier_errors_have_positions() {
    let dir = TempDir::new("mapguide-check");
    let (s1, s2) = (free_port(), free_port());
    // (shipped line, replaced by, message, the line the error points at)
    let cases = [
        (
            "session_read = [\"query:SESSION\", \"form:SESSION\"]",
            "session_read = [\"query:SESSION\", \"url:SESSION\"]",
            "`session_read`: \"url:SESSION\" is not",
            "session_read = [\"query:SESSION\", \"url:SESSION\"]",
        ),
        (
            "session_write = [\"body\"]",
            "session_write = [\"header:X-Id\"]",
            "`session_body` needs \"body\" in `session_write`",
            "[upstream.session_body]",
        ),
        (
            "fail_statuses = [\"500-558\", \"560-599\"]",
            "fail_statuses = [\"5xx\", \"600\"]",
            "`fail_statuses`: \"600\" is not a status",
            "fail_statuses = [\"5xx\", \"600\"]",
        ),
        (
            "session_read = [\"query:SESSION\", \"form:SESSION\"]",
            "session_read = [\"query:SESSION\"]\nsession_cookie = \"SESSION\"",
            "not both",
            "session_cookie = \"SESSION\"",
        ),
    ];
    for (from, to, message, at) in cases {
        let cfg = config(free_port(), s1, s2, |c| c.replace(from, to));
        let path = dir.write("bad.toml", cfg.as_bytes());
        let out = Command::new(TETHER)
            .arg("check")
            .arg(&path)
            .output()
            .expect("tether check");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{to}: accepted");
        assert!(err.contains(message), "{to}: {err}");
        let line = 1 + cfg.lines().position(|l| l == at).expect("the line");
        assert!(
            err.contains(&format!("bad.toml:{line}:")),
            "{to}: line {line}: {err}"
        );
    }
}

/// `curl -s ARGS` through tether: (status, body bytes).
fn curl_status(args: &[&str]) -> (u16, Vec<u8>) {
    let mut all = vec!["-s", "-o", "-", "-w", "\n%{http_code}"];
    all.extend_from_slice(args);
    let out = curl(&all).stdout;
    let cut = out.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = String::from_utf8_lossy(&out[cut + 1..])
        .parse()
        .unwrap_or(0);
    (status, out[..cut].to_vec())
}

#[test]
fn bodies_over_the_limits_chunked_multipart_and_compressed_pass_untouched() {
    let dir = TempDir::new("mapguide-limits");
    let (s1, s2) = (free_port(), free_port());
    let _agents = (agent(s1, "site1"), agent(s2, "site2"));
    let a = free_port();
    let small = |c: String| {
        c.replace(
            "session_write = [\"body\"]",
            "session_write = [\"body\"]\nsession_form_max_bytes = 200",
        )
    };
    let ta = tether(&dir, &config(a, s1, s2, small), &[a]);
    let url = format!("http://127.0.0.1:{a}{AGENT}");
    let echo = format!("http://127.0.0.1:{a}/mapguide/echo");
    let (status, tagged) = curl_status(&[&format!("{url}?OPERATION=CREATESESSION")]);
    assert_eq!(status, 200);
    let tagged = String::from_utf8(tagged).expect("utf-8");
    assert!(tagged.contains('.'), "{tagged}");

    // A form over session_form_max_bytes: not read, forwarded as sent (the site gets the
    // tagged value it does not hold: 559), said once for two.
    let pad = "x".repeat(300);
    for _ in 0..2 {
        let form = format!("OPERATION=GETMAP&SESSION={tagged}&PAD={pad}");
        let (status, body) = curl_status(&["-d", &form, &url]);
        assert_eq!(status, 559, "{}", String::from_utf8_lossy(&body));
        assert!(String::from_utf8_lossy(&body).contains(&tagged));
    }
    assert!(ta.wait_log("over session_form_max_bytes"));
    // A chunked form and a multipart form reach the backend byte for byte.
    let form = format!("OPERATION=GETMAP&SESSION={tagged}");
    for _ in 0..2 {
        let (status, body) = curl_status(&["-H", "Transfer-Encoding: chunked", "-d", &form, &echo]);
        assert_eq!(
            (status, String::from_utf8_lossy(&body)),
            (200, form.clone().into())
        );
    }
    assert!(ta.wait_log("a chunked form body is not read"));
    let (status, body) = curl_status(&[
        "-F",
        "OPERATION=GETMAP",
        "-F",
        &format!("SESSION={tagged}"),
        &echo,
    ]);
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 200);
    assert!(
        body.contains("multipart") || body.contains("Content-Disposition"),
        "{body}"
    );
    assert!(body.contains(&tagged), "multipart untouched: {body}");

    // A client that waits for `100 Continue` before its form: tether says it (curl would
    // otherwise wait its --expect100-timeout, 5 s here) and the form is read.
    let started = std::time::Instant::now();
    let (status, body) = curl_status(&[
        "-H",
        "Expect: 100-continue",
        "--expect100-timeout",
        "5",
        "-d",
        &format!("OPERATION=GETMAP&SESSION={tagged}"),
        &url,
    ]);
    let original = tagged.split_once('.').expect("tagged").1;
    let site = original.rsplit('_').next().expect("site");
    assert_eq!(
        (status, String::from_utf8_lossy(&body)),
        (200, format!("{site} {original}").into())
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    // Answers tether does not rewrite: compressed, and over max_bytes (4096).
    let (status, gz) = curl_status(&[&format!("{url}?OPERATION=CREATESESSION&GZIP=1")]);
    assert_eq!(status, 200);
    assert_eq!(&gz[..2], &[0x1f, 0x8b], "still the site's gzip bytes");
    assert!(ta.wait_log("a compressed answer's body is not searched"));
    let (status, big) = curl_status(&[&format!("{url}?OPERATION=CREATESESSION&PAD=5000")]);
    assert_eq!(status, 200);
    let big = String::from_utf8_lossy(&big);
    assert_eq!(big.len(), big.trim_end().len() + 5000);
    assert!(
        !big.trim_end().contains('.'),
        "untagged: {}",
        big.trim_end()
    );
    assert!(ta.wait_log("over session_body.max_bytes"));
    for said in [
        "over session_form_max_bytes",
        "a chunked form body",
        "a compressed answer",
        "over session_body.max_bytes",
    ] {
        assert_eq!(ta.log_text().matches(said).count(), 1, "{said} said once");
    }
}

#[test]
fn an_id_at_a_json_pointer_is_tagged_and_goes_home() {
    let dir = TempDir::new("mapguide-json");
    let (s1, s2) = (free_port(), free_port());
    let _agents = (agent(s1, "site1"), agent(s2, "site2"));
    let a = free_port();
    let json = |c: String| {
        c.replace(
            "max_bytes = 4096",
            "max_bytes = 4096\njson_pointer = \"/session/id\"",
        )
    };
    let _ta = tether(&dir, &config(a, s1, s2, json), &[a]);
    for proto in ["h1", "h2"] {
        let target = format!("{AGENT}?OPERATION=CREATESESSION&FORMAT=json");
        let created = batch(
            proto,
            &[(a, "GET", target.clone(), None), (a, "GET", target, None)],
        );
        let mut sites = HashSet::new();
        for (status, body) in created {
            assert_eq!(status, 200, "{body}");
            let doc: serde_json::Value = serde_json::from_str(&body).expect("json");
            assert_eq!(doc["ok"], serde_json::Value::Bool(true), "{body}");
            let tagged = doc["session"]["id"].as_str().expect("id").to_string();
            let (_, original) = tagged.split_once('.').expect("tagged");
            let site = original.rsplit('_').next().expect("site").to_string();
            let answers = batch(
                proto,
                &[follow(a, &tagged, false), follow(a, &tagged, true)],
            );
            for (status, body) in answers {
                assert_eq!((status, body), (200, format!("{site} {original}")));
            }
            sites.insert(site);
        }
        assert_eq!(sites.len(), 2, "{proto}");
    }
}
