//! Files made by the real tools: Debian's `htpasswd` (bcrypt `-B`, SHA-256-crypt `-2`,
//! SHA-512-crypt `-5`, and the refused `-m`, `-s`, `-p`, `-d`), `openssl passwd -1`, and
//! python's argon2-cffi (argon2id, argon2i, argon2d). Each accepted scheme is checked with
//! the right and a wrong password through a real `Verifier`.

mod support;

use std::sync::Arc;

use support::{argon2_cffi, basic, check_wait, have, htpasswd, output, TempDir};
use tether_auth::{AuthResult, Htpasswd, Options, Verifier};

#[test]
fn accepted_schemes_right_and_wrong_passwords() {
    if !have(&["htpasswd", "argon2-cffi"]) {
        return;
    }
    // (user, password, line)
    let users: Vec<(&str, &str, String)> = vec![
        (
            "bcrypt5",
            "b5-pw",
            htpasswd(&["-B", "-C", "5"], "bcrypt5", "b5-pw"),
        ),
        (
            "bcrypt10",
            "b10-pw",
            htpasswd(&["-B", "-C", "10"], "bcrypt10", "b10-pw"),
        ),
        ("sha256", "s2-pw", htpasswd(&["-2"], "sha256", "s2-pw")),
        ("sha512", "s5-pw", htpasswd(&["-5"], "sha512", "s5-pw")),
        (
            "sha512r",
            "s5r-pw",
            htpasswd(&["-5", "-r", "12000"], "sha512r", "s5r-pw"),
        ),
        (
            "colon",
            "pä:ss wörd",
            htpasswd(&["-B"], "colon", "pä:ss wörd"),
        ),
        (
            "argon2id",
            "a-id",
            format!("argon2id:{}", argon2_cffi("ID", "a-id")),
        ),
        (
            "argon2i",
            "a-i",
            format!("argon2i:{}", argon2_cffi("I", "a-i")),
        ),
        (
            "argon2d",
            "a-d",
            format!("argon2d:{}", argon2_cffi("D", "a-d")),
        ),
    ];
    // The tools made what we think they made.
    assert!(users[0].2.starts_with("bcrypt5:$2y$05$"), "{}", users[0].2);
    assert!(users[2].2.starts_with("sha256:$5$"), "{}", users[2].2);
    assert!(
        users[4].2.starts_with("sha512r:$6$rounds=12000$"),
        "{}",
        users[4].2
    );
    assert!(
        users[6].2.starts_with("argon2id:$argon2id$v=19$"),
        "{}",
        users[6].2
    );

    let dir = TempDir::new("schemes");
    let lines: Vec<String> = users.iter().map(|(_, _, line)| line.clone()).collect();
    let path = dir.write("users", &lines);
    let file = Arc::new(Htpasswd::load(&path).unwrap_or_else(|e| panic!("{e}")));
    assert_eq!(file.len(), users.len());

    let verifier = Verifier::new(&Options::default()).expect("verifier");
    for (user, password, _) in &users {
        assert_eq!(
            check_wait(&verifier, &file, &basic(user, password)),
            AuthResult::Ok {
                user: user.to_string()
            },
            "{user}: the right password"
        );
        let wrong = format!("{password}x");
        assert_eq!(
            check_wait(&verifier, &file, &basic(user, &wrong)),
            AuthResult::Denied,
            "{user}: a wrong password"
        );
        // Another user's right password is wrong here.
        assert_eq!(
            check_wait(&verifier, &file, &basic(user, "b5-pw")),
            if *user == "bcrypt5" {
                AuthResult::Ok {
                    user: "bcrypt5".to_string(),
                }
            } else {
                AuthResult::Denied
            },
            "{user}: bcrypt5's password"
        );
    }
    // Two per user verified, plus one for the repeated right password of bcrypt5... which
    // the cache answered: every other check needed a hash.
    let stats = verifier.stats();
    assert_eq!(stats.cache_hits, 1, "{stats:?}");
    assert_eq!(stats.verifications, 3 * users.len() as u64 - 1, "{stats:?}");
}

#[test]
fn refused_schemes_are_reported_with_their_lines() {
    if !have(&["htpasswd", "openssl"]) {
        return;
    }
    let dir = TempDir::new("refused");
    let lines = vec![
        "# made by the test".to_string(),
        htpasswd(&["-B", "-C", "4"], "good", "pw"),
        htpasswd(&["-m"], "md5", "pw"),
        htpasswd(&["-s"], "sha1", "pw"),
        htpasswd(&["-p"], "plain", "hunter2-secret"),
        htpasswd(&["-d"], "des", "pw"),
        format!("glibcmd5:{}", output("openssl", &["passwd", "-1", "pw"])),
        String::new(),
        "no colon here".to_string(),
        htpasswd(&["-5"], "good", "again"),
    ];
    let path = dir.write("users", &lines);
    let err = Htpasswd::load(&path).expect_err("refused entries");
    let shown = err.to_string();
    let p = path.display();
    let expected = [
        format!("{p}:3: user \"md5\": `$apr1$` (MD5-crypt) is refused: re-create the entry with `htpasswd -B` (bcrypt) or `htpasswd -5` (SHA-512-crypt)"),
        format!("{p}:4: user \"sha1\": `{{SHA}}` (unsalted SHA-1) is refused: re-create the entry with `htpasswd -B`"),
        format!("{p}:5: user \"plain\": this looks like a plaintext password (`htpasswd -p`), which is refused: re-create the entry with `htpasswd -B`"),
        format!("{p}:6: user \"des\": this looks like a DES crypt hash (`htpasswd -d`), which is refused: re-create the entry with `htpasswd -B`"),
        format!("{p}:7: user \"glibcmd5\": `$1$` (MD5-crypt) is refused: re-create the entry with `htpasswd -B`"),
        format!("{p}:9: malformed line: expected `user:hash`"),
        format!("{p}:10: duplicate user \"good\" (first on line 2): keep one of the entries"),
    ];
    let got: Vec<&str> = shown.lines().collect();
    assert_eq!(got.len(), expected.len(), "{shown}");
    for (line, want) in got.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "got:  {line}\nwant: {want}..."
        );
    }
    assert!(
        !shown.contains("hunter2-secret"),
        "a plaintext password leaked: {shown}"
    );
}

#[test]
fn a_reload_reads_the_changed_file() {
    if !have(&["htpasswd"]) {
        return;
    }
    let dir = TempDir::new("reload");
    let path = dir.path().join("users");
    let path_s = path.to_str().expect("UTF-8 temp path");
    output("htpasswd", &["-cbB", "-C", "4", path_s, "alice", "old"]);
    let old = Arc::new(Htpasswd::load(&path).unwrap_or_else(|e| panic!("{e}")));
    let verifier = Verifier::new(&Options::default()).expect("verifier");
    assert!(matches!(
        check_wait(&verifier, &old, &basic("alice", "old")),
        AuthResult::Ok { .. }
    ));

    // `htpasswd -b` changes the password in place; the config reload loads the file again.
    output("htpasswd", &["-bB", "-C", "4", path_s, "alice", "new"]);
    let new = Arc::new(Htpasswd::load(&path).unwrap_or_else(|e| panic!("{e}")));
    // The cached success for the old password does not carry over to the new load.
    assert_eq!(
        check_wait(&verifier, &new, &basic("alice", "old")),
        AuthResult::Denied
    );
    assert!(matches!(
        check_wait(&verifier, &new, &basic("alice", "new")),
        AuthResult::Ok { .. }
    ));
    // The old load, still held by requests under way, keeps answering as it did.
    assert!(matches!(
        check_wait(&verifier, &old, &basic("alice", "old")),
        AuthResult::Ok { .. }
    ));
}
