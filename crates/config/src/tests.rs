//! Unit tests of the config: positions of errors (TOML and eXpServer JSON), defaults, the
//! checks of `mod.rs` and `xps.rs`.

use super::*;

#[test]
fn default_config_is_valid() {
    let s = Settings::default_config().expect("default config");
    assert_eq!(s.listeners.len(), 3);
    assert_eq!(s.listeners[2].listen, "127.0.0.1:8004".parse().unwrap());
    assert_eq!(s.workers, 1);
    let Target::Http(r) = &s.listeners[0].target else {
        panic!("http")
    };
    let ActionSpec::Proxy(id) = &r.hosts[0].routes[0].action else {
        panic!("proxy")
    };
    assert_eq!(
        s.upstreams[id.0].servers[0].addr,
        "127.0.0.1:3000".parse().unwrap()
    );
    let Target::Http(r) = &s.listeners[1].target else {
        panic!("http")
    };
    assert!(
        matches!(&r.hosts[0].routes[0].action, ActionSpec::Files(f) if f.root == std::path::Path::new("public"))
    );
}

#[test]
fn unknown_key_has_position() {
    let e = parse(
        "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\nupstraem = \"x\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.col), (4, 1), "{e}");
    assert!(e.message.contains("upstraem"), "{e}");
}

#[test]
fn unknown_top_level_key() {
    let e = parse("server_nam = \"x\"\n", "t.toml").unwrap_err();
    assert_eq!((e.line, e.col), (1, 1), "{e}");
}

#[test]
fn bad_address_points_at_value() {
    let e = parse(
        "[[listener]]\nlisten = \"nope\"\nprotocol = \"tcp\"\nupstream = \"127.0.0.1:1\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.col), (2, 10), "{e}");
}

#[test]
fn two_targets_rejected() {
    let e = parse(
        "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nupstream = \"127.0.0.1:2\"\nroot = \"x\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert!(e.message.contains("exactly one"), "{e}");
}

#[test]
fn line_col_counts_chars() {
    assert_eq!(line_col("ab\ncé\nx", 7), (3, 1));
    assert_eq!(line_col("ab\ncéd", 6), (2, 3));
}

#[test]
fn header_timeout_defaults_and_per_listener() {
    let s = parse(
        "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nroot = \".\"\n\
         [[listener]]\nlisten = \"127.0.0.1:2\"\nprotocol = \"http\"\nroot = \".\"\n\
         header_timeout_ms = 1500\n\
         [[server]]\nlisten = [\"127.0.0.1:3\"]\nheader_timeout_ms = 2500\n",
        "t.toml",
    )
    .expect("valid");
    let t: Vec<u128> = s
        .listeners
        .iter()
        .map(|l| l.header_timeout.as_millis())
        .collect();
    assert_eq!(t, [10_000, 1_500, 2_500]);
    assert_eq!(s.max_connections_per_ip, None);
}

#[test]
fn max_connections_per_ip_above_zero() {
    let listener = "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"http\"\nroot = \".\"\n";
    let s = parse(&format!("max_connections_per_ip = 8\n{listener}"), "t.toml").expect("valid");
    assert_eq!(s.max_connections_per_ip, Some(8));
    let e = parse(&format!("max_connections_per_ip = 0\n{listener}"), "t.toml").unwrap_err();
    assert_eq!((e.line, e.col), (1, 26), "{e}");
}

#[test]
fn no_listener_and_duplicates_have_positions() {
    let e = Settings::from_text("", "e.toml").unwrap_err();
    assert_eq!(
        e.to_string(),
        "e.toml:1:1: no listener ([[listener]], [[server]] or [metrics])"
    );
    let e = Settings::from_text("{\"servers\": [], \"metrics\": false}", "x.json").unwrap_err();
    assert!(e.to_string().starts_with("x.json:1:1: no listener"), "{e}");
    let e = parse(
        "[metrics]\nlisten = \"127.0.0.1:5\"\n[admin]\nlisten = \"127.0.0.1:5\"\n",
        "t.toml",
    )
    .unwrap_err();
    assert_eq!((e.line, e.col), (4, 10), "{e}");
    assert!(e.message.contains("admin listener shares"), "{e}");
}

/// An eXpServer config with one server on 127.0.0.1:8001, `routes` spliced in as written
/// (each starting on line 6), and no metrics listener.
fn xps_with_routes(routes: &str) -> String {
    format!(
        "{{\n  \"servers\": [\n    {{\n      \"listeners\": [{{\"host\": \"127.0.0.1\", \"port\": 8001}}],\n      \"routes\": [\n{routes}\n      ]\n    }}\n  ],\n  \"metrics\": false\n}}\n"
    )
}

fn xps_err(text: &str) -> ConfigError {
    match Settings::from_text(text, "x.json") {
        Ok(_) => panic!("accepted: {text}"),
        Err(e) => e,
    }
}

#[test]
fn xps_route_errors_point_at_the_value_at_fault() {
    let ok = "        {\"req_path\": \"/\", \"type\": \"file_serve\", \"dir_path\": \".\"},";
    let cases = [
        // `type`: the value of the third route's "type".
        (
            "        {\"req_path\": \"/b\", \"type\": \"proxy\"}",
            (8, 36),
            "servers[0].routes[2]: `type`: \"proxy\" is not file_serve",
        ),
        // A key spelled with an escape is the same key.
        (
            "        {\"req_path\": \"/b\", \"ty\\u0070e\": \"proxy\"}",
            (8, 41),
            "servers[0].routes[2]: `type`",
        ),
        // A missing key: the route object that lacks it.
        (
            "        {\"req_path\": \"/b\",\n         \"type\": \"file_serve\"}",
            (8, 9),
            "servers[0].routes[2]: a file_serve route needs `dir_path`",
        ),
        // The second entry of `upstreams`.
        (
            "        {\"req_path\": \"/b\", \"type\": \"reverse_proxy\",\n         \"upstreams\": [\"127.0.0.1:3000\",\n                       \"backend\"]}",
            (10, 24),
            "servers[0].routes[2]: \"backend\" has no port",
        ),
        (
            "        {\"req_path\": \"/b\", \"type\": \"reverse_proxy\", \"upstreams\": []}",
            (8, 66),
            "servers[0].routes[2]: `upstreams` is empty",
        ),
        (
            "        {\"req_path\": \"b\", \"type\": \"redirect\", \"redirect_url\": \"/\"}",
            (8, 22),
            "servers[0].routes[2]: `req_path` must start with '/'",
        ),
        (
            "        {\"req_path\": \"/b\", \"type\": \"redirect\", \"redirect_url\": \"/\",\n         \"http_status_code\": 200}",
            (9, 30),
            "servers[0].routes[2]: `http_status_code` of a redirect must be 3xx",
        ),
        // The second entry of `ip_whitelist`, then of `ip_blacklist`.
        (
            "        {\"req_path\": \"/b\", \"type\": \"file_serve\", \"dir_path\": \".\",\n         \"ip_whitelist\": [\"127.0.0.1\", \"10.0.0.0/33\"]}",
            (9, 40),
            "servers[0].routes[2]: bad prefix length in \"10.0.0.0/33\"",
        ),
        (
            "        {\"req_path\": \"/b\", \"type\": \"file_serve\", \"dir_path\": \".\",\n         \"ip_blacklist\": [\"::1\",\n                          \"nope\"]}",
            (10, 27),
            "servers[0].routes[2]: not an address: \"nope\"",
        ),
    ];
    for (bad, (line, col), want) in cases {
        let text = xps_with_routes(&format!("{ok}\n{ok}\n{bad}"));
        let e = xps_err(&text);
        assert_eq!((e.line, e.col), (line, col), "{e}\n{text}");
        assert!(e.message.starts_with(want), "{e}");
        assert!(
            e.to_string().starts_with(&format!("x.json:{line}:{col}: ")),
            "{e}"
        );
    }
    // The same routes without the mistake are accepted.
    let text = xps_with_routes(&format!("{ok}\n{}", ok.trim_end_matches(',')));
    assert!(Settings::from_text(&text, "x.json").is_ok(), "{text}");
}

#[test]
fn xps_listener_errors_point_at_the_listener() {
    // An unresolvable host (`.invalid` never resolves, RFC 6761): that listener's "host".
    let text = "{\"servers\": [\n  {\"listeners\": [\n    {\"host\": \"127.0.0.1\", \"port\": 8001},\n    {\"host\": \"nope.invalid\", \"port\": 8002}]}],\n \"metrics\": false}\n";
    let e = xps_err(text);
    assert_eq!((e.line, e.col), (4, 14), "{e}");
    assert!(
        e.message
            .starts_with("servers[0].listeners[1]: cannot resolve"),
        "{e}"
    );
    // One server naming an address twice: the second listener's "port".
    let text = "{\"servers\": [\n  {\"listeners\": [\n    {\"host\": \"127.0.0.1\", \"port\": 8001},\n    {\"host\": \"127.0.0.1\", \"port\": 8002},\n    {\"host\": \"127.0.0.1\",\n     \"port\": 8001}]}],\n \"metrics\": false}\n";
    let e = xps_err(text);
    assert_eq!((e.line, e.col), (6, 14), "{e}");
    assert_eq!(
        e.message,
        "servers[0].listeners[2]: 127.0.0.1:8001 is already servers[0].listeners[0]"
    );
    // Two servers on one address are virtual hosts of one listener, as before.
    let text = "{\"servers\": [\n  {\"listeners\": [{\"host\": \"127.0.0.1\", \"port\": 8001}], \"hostnames\": [\"a\"]},\n  {\"listeners\": [{\"host\": \"127.0.0.1\", \"port\": 8001}], \"hostnames\": [\"b\"]}],\n \"metrics\": false}\n";
    let s = Settings::from_text(text, "x.json").expect("virtual hosts");
    assert_eq!(s.listeners.len(), 1);
    let Target::Http(r) = &s.listeners[0].target else {
        panic!("http")
    };
    assert_eq!(r.hosts.len(), 2);
}

#[test]
fn xps_metrics_error_points_at_its_host() {
    let text = "{\"servers\": [{\"listeners\": [{\"host\": \"127.0.0.1\", \"port\": 8001}]}],\n \"metrics\": {\"port\": 8004,\n             \"host\": \"nope.invalid\"}}\n";
    let e = xps_err(text);
    assert_eq!((e.line, e.col), (3, 22), "{e}");
    assert!(e.message.starts_with("metrics: cannot resolve"), "{e}");
}

#[test]
fn xps_syntax_errors_keep_serde_json_positions() {
    let e = xps_err("{\"servers\": [\n  {\"listeners\": [],\n   \"routez\": []}]}\n");
    assert_eq!((e.line, e.col), (3, 11), "{e}");
    assert!(e.message.contains("unknown field `routez`"), "{e}");
    let e = xps_err("{\"servers\": [\n  {\"listeners\": [}]}\n");
    assert_eq!(e.line, 2, "{e}");
}
