//! tether-config builds nothing: it must never depend on the event loop's crates. This test
//! asks cargo for tether-config's own dependency tree (normal dependencies, the features
//! tether-config itself turns on) and refuses the crates that run sockets and loops.

use std::process::Command;

/// Never reachable from tether-config, directly or through another crate: the loop, the
/// sessions, sockets, and the broker's and mail's network clients (tether-config reads
/// their settings types with their `runtime` / `smtp` features off).
const FORBIDDEN_ANYWHERE: &[&str] = &[
    "tether-core",
    "tether-proxy",
    "mio",
    "tokio",
    "socket2",
    "ureq",
    "tungstenite",
];
/// Never a direct dependency either.
const FORBIDDEN_DIRECT: &[&str] = &["socket2"];

/// The package names of `cargo tree -p tether-config -e normal`, to `depth` if given.
fn tree(depth: Option<u32>) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["tree", "--offline", "-p", "tether-config", "-e", "normal"])
        .args(["--prefix", "none", "--format", "{p}"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if let Some(d) = depth {
        cmd.args(["--depth", &d.to_string()]);
    }
    let out = cmd.output().expect("cargo tree runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

#[test]
fn tether_config_depends_on_no_loop_crate() {
    let all = tree(None);
    assert!(
        all.len() > 10,
        "cargo tree listed the dependencies: {all:?}"
    );
    assert_eq!(all[0], "tether-config");
    for f in FORBIDDEN_ANYWHERE {
        assert!(!all.iter().any(|p| p == f), "tether-config reaches {f}");
    }
    let direct = tree(Some(1));
    for f in FORBIDDEN_DIRECT {
        assert!(
            !direct.iter().any(|p| p == f),
            "tether-config depends on {f}"
        );
    }
    // The list is tether-config's own: toml is one of its direct dependencies.
    assert!(direct.iter().any(|p| p == "toml"), "{direct:?}");
}
