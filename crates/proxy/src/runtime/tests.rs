//! Unit tests of the build step: what `Runtime::build` makes of checked `Settings`, and that
//! the settings themselves are plain data compared by value.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::*;
use tether_config::acl::StatusFormat;
use tether_config::parse;

fn settings(text: &str) -> Settings {
    match parse(text, "t.toml") {
        Ok(s) => s,
        Err(e) => panic!("{e}"),
    }
}

fn build(s: &Settings) -> Runtime {
    match Runtime::build(s) {
        Ok(r) => r,
        Err(e) => panic!("{e}"),
    }
}

fn route(r: &Runtime, listener: usize, host: usize, route: usize) -> &Route {
    let router = r.listeners()[listener]
        .router
        .as_ref()
        .expect("an http listener");
    &router.hosts[host].routes[route]
}

fn proxied(r: &Runtime, listener: usize, index: usize) -> Arc<Upstream> {
    match &route(r, listener, 0, index).action {
        Action::Proxy(up) => up.clone(),
        other => panic!("not a proxy route: {other:?}"),
    }
}

const POOLS: &str = "\
[[upstream]]\nname = \"a\"\nservers = [\"127.0.0.1:3000\", \"127.0.0.1:3001\"]\n\
[[upstream]]\nname = \"unused\"\nservers = [\"127.0.0.1:3009\"]\n\
[[upstream]]\nname = \"b\"\nservers = [\"127.0.0.1:3002\"]\n\
[[server]]\nlisten = [\"127.0.0.1:8080\"]\n\
[[server.route]]\npath = \"/\"\nproxy = \"b\"\n\
[[server.route]]\npath = \"/a\"\nproxy = \"a\"\n\
[[server]]\nlisten = [\"127.0.0.1:8081\"]\n\
[[server.route]]\npath = \"/\"\nproxy = \"a\"\n";

#[test]
fn routes_naming_one_upstream_share_its_pool() {
    let r = build(&settings(POOLS));
    let names: Vec<&str> = r.pools().iter().map(|u| u.name()).collect();
    assert_eq!(
        names,
        ["b", "a"],
        "in the order routes name them; unused not built"
    );
    assert!(Arc::ptr_eq(&proxied(&r, 0, 1), &proxied(&r, 1, 0)));
    assert!(!Arc::ptr_eq(&proxied(&r, 0, 0), &proxied(&r, 0, 1)));
    assert_eq!(proxied(&r, 1, 0).pool.servers().len(), 2);
}

#[test]
fn settings_compare_by_value_and_each_build_has_its_own_state() {
    let a = settings(POOLS);
    let relaid = POOLS.replace("[[server]]\n", "\n# a comment\n[[server]]\n");
    assert_eq!(a, settings(&relaid), "layout and comments are not meaning");
    let other = POOLS.replace("127.0.0.1:3002", "127.0.0.1:3003");
    assert_ne!(a, settings(&other));
    assert_eq!(a.clone(), a);

    let (one, two) = (build(&a), build(&a));
    assert!(!Arc::ptr_eq(&one.pools()[0], &two.pools()[0]));
    assert!(one.pools()[1].pool.set_drain("127.0.0.1:3001", true));
    let drained = |r: &Runtime| {
        r.pools()[1]
            .pool
            .server("127.0.0.1:3001")
            .is_some_and(|s| s.is_draining())
    };
    assert!(drained(&one));
    assert!(!drained(&two), "a second build shares no server state");
}

#[test]
fn routes_are_built_as_written() {
    let text = "\
[[server]]\nlisten = [\"127.0.0.1:8080\"]\nhostnames = [\"Example.org\"]\n\
[[server.route]]\npath = \"/files\"\nroot = \"public\"\ngzip = true\nallow = [\"10.0.0.0/8\"]\n\
[[server.route]]\npath = \"/old\"\nredirect = \"https://example.org/new\"\nstatus = 301\n\
[[server.route]]\npath = \"/status\"\nstatus_page = \"json\"\nmax_body_size = 10\n\
[[server.route]]\npath = \"/ports\"\nport_rewrite = { min = 2000, max = 2001 }\n";
    let r = build(&settings(text));
    let router = r.listeners()[0].router.as_ref().expect("router");
    assert_eq!(router.hosts[0].hostnames, ["example.org"]);
    let files = route(&r, 0, 0, 0);
    assert!(matches!(&files.action, Action::Files(f) if f.gzip && f.root == Path::new("public")));
    assert!(!files.acl.permits(Some([11, 0, 0, 1].into())));
    assert!(files.acl.permits(Some([10, 0, 0, 1].into())));
    assert!(matches!(
        &route(&r, 0, 0, 1).action,
        Action::Redirect { status: 301, location } if location == "https://example.org/new"
    ));
    let status = route(&r, 0, 0, 2);
    assert!(matches!(status.action, Action::Status(StatusFormat::Json)));
    assert_eq!(status.max_body, Some(10));
    let ports = route(&r, 0, 0, 3);
    assert!(matches!(ports.action, Action::NotFound));
    let ports = ports.ports.as_ref().expect("port_rewrite");
    assert!(ports.upstream(2001).is_ok());
    assert!(ports.upstream(2002).is_err());
    let listener = router.route(Some("example.org"), "/files/x");
    assert_eq!(listener.map(|r| r.path.as_str()), Some("/files"));
}

#[test]
fn sealing_keys_survive_the_build() {
    let text = "\
[[upstream]]\nname = \"app\"\nbalance = \"cookie\"\nkeys = [\"a passphrase for the build test\"]\n\
servers = [\"127.0.0.1:3000\"]\n\
[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n";
    let s = settings(text);
    let r = build(&s);
    let Affinity::Cookie(c) = &r.pools()[0].affinity else {
        panic!("cookie affinity")
    };
    let same = tether_balance::Sealer::new(&["a passphrase for the build test"]).expect("key");
    let cookie = same.seal_cookie("127.0.0.1:3000", u64::MAX / 2);
    assert_eq!(
        c.sealer.open_cookie(&cookie, 1),
        Ok("127.0.0.1:3000".to_string())
    );
    assert_eq!(c.name, "tether_server");
}

#[test]
fn upstream_tls_has_a_client_per_server_and_unverified_is_warned() {
    let text = "\
[[upstream]]\nname = \"app\"\nservers = [\"https://127.0.0.1:3000\", \"https://localhost:3001\"]\n\
tls = { verify = false }\n\
[[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.route]]\npath = \"/\"\nproxy = \"app\"\n";
    let r = build(&settings(text));
    let up = &r.pools()[0];
    assert_eq!(up.tls.len(), 2);
    assert!(up.tls_unverified);
    let warnings = r.warnings();
    assert!(
        warnings.contains(
            &"upstream \"app\": TLS certificates are not verified (verify = false)".into()
        ),
        "{warnings:?}"
    );
}

/// A fresh directory under the system's temp dir, for files a config names.
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-runtime-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A self-signed certificate for `name` and its key, written into `dir`.
fn self_signed(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let key = rcgen::KeyPair::generate().expect("key");
    let params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    let cert = params.self_signed(&key).expect("certificate");
    let (c, k) = (
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}.key")),
    );
    std::fs::write(&c, cert.pem()).expect("write cert");
    std::fs::write(&k, key.serialize_pem()).expect("write key");
    (c, k)
}

#[test]
fn listener_tls_is_built_from_its_files_and_a_file_broken_since_is_placed() {
    let dir = temp_dir("tls");
    let (cert, key) = self_signed(&dir, "a.test");
    let text = format!(
        "[[listener]]\nlisten = \"127.0.0.1:8443\"\nprotocol = \"http\"\nroot = \".\"\n\
         tls = {{ certificates = [\n  {{ cert = \"{}\", key = \"{}\" }}] }}\n",
        cert.display(),
        key.display()
    );
    let s = settings(&text);
    let tls = s.listeners[0].front.tls.as_ref().expect("tls spec");
    assert_eq!(tls.certs[0].cert, cert);
    assert_eq!(tls.alpn, ["http/1.1"]);
    let r = build(&s);
    let built = r.listeners()[0].tls.as_ref().expect("tls built");
    assert_eq!(built.config.alpn_protocols, [b"http/1.1".to_vec()]);
    let certs = r.certificates();
    assert_eq!(certs.len(), 1);
    assert_eq!(certs[0].names, ["a.test"]);

    // The file breaks between the check and the build: the build says where it was named,
    // as the check now does.
    std::fs::write(&cert, "not a certificate\n").expect("overwrite");
    let e = match Runtime::build(&s) {
        Ok(_) => panic!("a broken certificate was built"),
        Err(e) => e,
    };
    let checked = parse(&text, "t.toml").expect_err("the check refuses it too");
    assert_eq!((e.line, e.col), (6, 3), "{e}");
    assert_eq!(e, checked);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn acme_is_built_with_its_challenge_and_names() {
    let dir = temp_dir("acme");
    let text = format!(
        "[acme]\ndirectory = \"https://127.0.0.1:1/dir\"\nagree_tos = true\nstorage = \"{}\"\n\
         [[server]]\nlisten = [\"127.0.0.1:8443\"]\nhostnames = [\"b.example.org\", \"a.example.org\"]\n\
         tls = {{ certificates = \"acme\" }}\n\
         [[server]]\nlisten = [\"127.0.0.1:8080\"]\n[[server.route]]\npath = \"/\"\nroot = \".\"\n",
        dir.display()
    );
    let s = settings(&text);
    let spec = s.acme.as_ref().expect("acme spec");
    assert_eq!(spec.names, ["b.example.org", "a.example.org"]);
    assert_eq!(spec.challenge, tether_acme::Challenge::TlsAlpn01);
    assert!(
        s.listeners[1].front.acme,
        "the plain http listener answers HTTP-01"
    );
    assert!(
        std::fs::read_dir(&dir).expect("dir").next().is_none(),
        "checking wrote nothing to the storage"
    );
    let r = build(&s);
    let acme = r.acme().expect("acme built");
    assert_eq!(acme.names(), ["a.example.org", "b.example.org"]);
    assert_eq!(acme.challenge(), tether_acme::Challenge::TlsAlpn01);
    let tls = r.listeners()[0].tls.as_ref().expect("tls");
    assert_eq!(tls.acme_names, ["b.example.org", "a.example.org"]);
    assert!(tls
        .config
        .alpn_protocols
        .contains(&crate::tls::ACME_TLS_ALPN.to_vec()));
    let _ = std::fs::remove_dir_all(&dir);
}
