//! Build metadata for `tether --version`: the crate version and the git hash of the tree.
use std::process::Command;

fn main() {
    let hash = git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    let dirty = Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| !o.stdout.is_empty())
        .unwrap_or(false);
    let suffix = if dirty && hash != "unknown" {
        "-dirty"
    } else {
        ""
    };
    println!("cargo:rustc-env=TETHER_GIT_HASH={hash}{suffix}");
    // Watch the files a commit or a checkout changes, wherever git keeps them (in a worktree
    // `.git` is a file). A watched path that does not exist reruns this script on every
    // build, so only existing ones are named.
    let mut watched = vec![git_path("HEAD"), git_path("index")];
    if let Some(branch) = git(&["rev-parse", "--symbolic-full-name", "HEAD"]) {
        if branch.starts_with("refs/") {
            watched.push(git_path(&branch));
        }
    }
    for path in watched.into_iter().flatten() {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}

/// What `git ARGS` prints, trimmed; `None` when git is missing or fails.
fn git(args: &[&str]) -> Option<String> {
    Command::new("git")
        .args(args)
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// Where git keeps `name` (`HEAD`, `index`, a ref) for this checkout or worktree.
fn git_path(name: &str) -> Option<String> {
    git(&["rev-parse", "--git-path", name])
}
