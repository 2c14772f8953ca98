//! Unit tests of the TOML config: positions of errors, defaults, the checks of `mod.rs`.

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
    assert!(
        matches!(&r.hosts[0].routes[0].action, Action::Proxy(p) if p.pool.servers()[0].addr() == "127.0.0.1:3000".parse().unwrap())
    );
    let Target::Http(r) = &s.listeners[1].target else {
        panic!("http")
    };
    assert!(
        matches!(&r.hosts[0].routes[0].action, Action::Files(f) if f.root == std::path::Path::new("public"))
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
