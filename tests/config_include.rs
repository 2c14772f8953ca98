//! `include = ["conf.d/*.toml"]`, end to end with the real binary: the included files'
//! servers and upstreams join the main file's (sorted order, arrays of tables append), a
//! key set in two files is an error naming both places, and an error inside an included
//! file points at that file's own line and column.

mod common;

use std::process::Command;

use common::*;

fn check(cfg: &std::path::Path) -> (bool, String) {
    let out = Command::new(TETHER)
        .args(["check", cfg.to_str().expect("utf-8")])
        .output()
        .expect("tether check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn included_files_add_their_servers_and_report_their_own_positions() {
    let dir = TempDir::new("config-include");
    let (p1, p2) = (free_port(), free_port());
    let main = format!(
        "server_name = \"main\"\ninclude = [\"conf.d/*.toml\"]\n\n[[server]]\nlisten = [\"127.0.0.1:{p1}\"]\n\n[[server.route]]\npath = \"/\"\nredirect = \"https://one.example/\"\n"
    );
    dir.write(
        "conf.d/20-two.toml",
        format!(
            "max_connections = 100\n\n[[server]]\nlisten = [\"127.0.0.1:{p2}\"]\n\n[[server.route]]\npath = \"/\"\nredirect = \"https://two.example/\"\n"
        )
        .as_bytes(),
    );
    dir.write("conf.d/notes.txt", b"not a config: not matched by *.toml\n");
    let cfg = dir.write("tether.toml", main.as_bytes());
    let (ok, out) = check(&cfg);
    assert!(ok && out.contains("(2 listeners)"), "{out}");

    let _t = tether(&dir, &main, &[p1, p2]);
    for (port, want) in [(p1, "https://one.example/"), (p2, "https://two.example/")] {
        let out = curl(&[
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{redirect_url}",
            &format!("http://127.0.0.1:{port}/"),
        ]);
        assert_eq!(String::from_utf8_lossy(&out.stdout), want);
    }

    // An error inside an included file: that file's own line:col.
    dir.write(
        "conf.d/30-bad.toml",
        b"[[upstream]]\nname = \"app\"\nservers = [\"127.0.0.1:1\"]\nbalanse = \"x\"\n",
    );
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    assert!(
        out.contains("conf.d/30-bad.toml:4:1: unknown field `balanse`"),
        "{out}"
    );
    assert!(out.contains("did you mean `balance`"), "{out}");
    std::fs::remove_file(dir.path().join("conf.d/30-bad.toml")).expect("rm");

    // A key set twice: the second place, naming the first.
    dir.write("conf.d/40-dup.toml", b"server_name = \"again\"\n");
    let (ok, out) = check(&cfg);
    assert!(!ok, "{out}");
    assert!(out.contains("conf.d/40-dup.toml:1:1"), "{out}");
    assert!(
        out.contains("first set at") && out.contains("tether.toml:1:1"),
        "{out}"
    );
}
