//! Credentials and TLS with a real `redis-server`: an ACL user and password
//! ([`Access`]), and `rediss://` against a server whose certificate a test CA signed (made
//! with the `openssl` command), trusted through `ca_file`. A wrong password, or TLS
//! without the CA, is an outage (the store says down), not a silent success.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{free_port, lookup, wait_connected, wait_for, RedisServer};
use tether_store::{Access, Backend, Lookup, Options, RedisStore, Store};

const MINUTE: Duration = Duration::from_secs(60);

fn authed(server: &RedisServer, user: &str, password: &str) -> redis::Connection {
    let url = format!("redis://{user}:{password}@127.0.0.1:{}/0", server.port);
    let client = redis::Client::open(url).expect("client");
    let mut con = client
        .get_connection_with_timeout(Duration::from_secs(2))
        .expect("connect with a password");
    con.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    let _: String = redis::cmd("PING").query(&mut con).expect("PING");
    con
}

fn single(url: String, access: Access) -> Backend {
    Backend::Single { url, access }
}

#[test]
fn acl_user_and_password() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let mut admin = server.raw();
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("tether")
        .arg("on")
        .arg(">s3cret")
        .arg("~tether:*")
        .arg("&tether:*")
        .arg("+@all")
        .query(&mut admin)
        .expect("ACL SETUSER");
    // From now on the default user needs a password too: nothing gets in without one.
    let _: () = redis::cmd("ACL")
        .arg("SETUSER")
        .arg("default")
        .arg("resetpass")
        .arg(">adminpw")
        .query(&mut admin)
        .expect("ACL SETUSER default");
    let mut admin = authed(&server, "default", "adminpw");

    let access = Access {
        username: Some("tether".into()),
        password: Some("s3cret".into()),
        ..Access::default()
    };
    let store =
        RedisStore::open_backend(&single(server.url(), access), &Options::default()).expect("open");
    wait_connected(&store);
    store.put("cookie:acl", "s3", MINUTE);
    wait_for("the pin in redis", Duration::from_secs(5), || {
        redis::cmd("GET")
            .arg("tether:cookie:acl")
            .query::<Option<String>>(&mut admin)
            .expect("GET")
            .as_deref()
            == Some("s3")
    });

    let wrong = Access {
        username: Some("tether".into()),
        password: Some("nope".into()),
        ..Access::default()
    };
    let bad =
        RedisStore::open_backend(&single(server.url(), wrong), &Options::default()).expect("open");
    wait_for(
        "a wrong password is an outage",
        Duration::from_secs(5),
        || bad.stats().outages >= 1,
    );
    assert_eq!(bad.stats().up, Some(false));
    let (answer, _) = lookup(&bad, "cookie:acl", Duration::from_secs(2));
    assert_eq!(answer, Lookup::Down);
}

/// A CA and a server certificate for 127.0.0.1 in `dir`, made with `openssl`; `false`
/// (after saying why) when `openssl` is missing and CI is not set.
fn make_certs(dir: &Path) -> bool {
    let run = |args: &[&str]| {
        Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .map(|o| {
                assert!(
                    o.status.success(),
                    "openssl {args:?}: {}",
                    String::from_utf8_lossy(&o.stderr)
                )
            })
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"];
    let ca = [
        &["req", "-x509", "-nodes", "-days", "2"][..],
        &ec,
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=tether test CA",
        ],
    ]
    .concat();
    if run(&ca).is_err() {
        let ci = std::env::var("CI").unwrap_or_default();
        assert!(
            matches!(ci.as_str(), "" | "0" | "false"),
            "openssl is not installed, and CI is set"
        );
        eprintln!("SKIPPED: openssl is not installed");
        return false;
    }
    let csr = [
        &["req", "-nodes"][..],
        &ec,
        &[
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    ]
    .concat();
    run(&csr).expect("openssl req");
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .expect("ext.cnf");
    run(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-out",
        "server.pem",
        "-extfile",
        "ext.cnf",
    ])
    .expect("openssl x509");
    true
}

#[test]
fn rediss_with_a_ca_file() {
    common::logs();
    if !common::redis_available() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tether-store-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let _cleanup = RemoveOnDrop(dir.clone());
    if !make_certs(&dir) {
        return;
    }
    let file = |name: &str| dir.join(name).display().to_string();
    let tls_port = free_port();
    // The plain port is for the test's own checks; the store uses the TLS one.
    let server = RedisServer::start_with(
        free_port(),
        &[
            "--tls-port",
            &tls_port.to_string(),
            "--tls-cert-file",
            &file("server.pem"),
            "--tls-key-file",
            &file("server.key"),
            "--tls-ca-cert-file",
            &file("ca.pem"),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://127.0.0.1:{tls_port}/0");
    let access = Access {
        ca_file: Some(dir.join("ca.pem")),
        ..Access::default()
    };
    let store =
        RedisStore::open_backend(&single(url.clone(), access), &Options::default()).expect("open");
    wait_connected(&store);
    store.put("cookie:tls", "s5", MINUTE);
    wait_for("the pin sent over TLS", Duration::from_secs(5), || {
        server.get("tether:cookie:tls").as_deref() == Some("s5")
    });

    // Without the CA the server's certificate is not trusted: down.
    let untrusted = tether_store::open(&url, &Options::default()).expect("open");
    wait_for(
        "an untrusted certificate is an outage",
        Duration::from_secs(5),
        || untrusted.stats().outages >= 1,
    );
    assert_eq!(untrusted.stats().up, Some(false));
}

/// Removes the certificates' directory, whether the test passes or panics.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
