//! `--db postgres://…` that cannot work: a malformed URL, a server that is not there, a
//! database that does not exist. Each gets a message that names the URL without its
//! password and says what to check; nothing starts half-way.

mod support;

use std::process::Command;

use support::*;

/// Runs `meterkast ARGS`; (exit code, stderr).
fn meterkast(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_meterkast"))
        .args(args)
        .env_remove("MK_DB")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn capture() -> std::path::PathBuf {
    let dir = tmpdir("pg-errors");
    let p = dir.join("one.txt");
    std::fs::write(&p, telegram("E1", 1_780_000_000, 1000)).unwrap();
    p
}

fn assert_clear(args: &[&str], wants: &[&str]) {
    let (code, err) = meterkast(args);
    assert_ne!(code, 0, "{args:?} succeeded");
    assert!(!err.contains("s3cret"), "the password shows: {err}");
    assert!(!err.contains("panicked"), "{err}");
    for w in wants {
        assert!(err.contains(w), "{args:?}: no {w:?} in: {err}");
    }
}

#[test]
fn bad_urls_and_absent_servers_are_named_without_the_password() {
    let file = capture();
    let file = file.to_str().unwrap();
    // Nothing listens on port 1.
    let url = "postgres://mk:s3cret@127.0.0.1:1/meters";
    assert_clear(
        &["import", "--db", url, file],
        &["cannot connect", "127.0.0.1:1", "mk:***@", "server running"],
    );
    assert_clear(
        &[
            "run",
            "--db",
            url,
            "--source",
            "tcp://127.0.0.1:9",
            "--http",
            "127.0.0.1:0",
        ],
        &["cannot connect", "127.0.0.1:1"],
    );
    assert_clear(
        &["import", "--db", "postgres://mk:s3cret@host:port/db", file],
        &["postgres://", "postgres://user:password@host:5432/database"],
    );
    assert_clear(
        &[
            "import",
            "--db",
            "postgres://mk:s3cret@h/db?schema=a;drop",
            file,
        ],
        &["schema=a;drop", "lower-case"],
    );
    assert_clear(
        &["import", "--db", "mysql://root:s3cret@h/db", file],
        &["mysql://", "postgres://user@host/database"],
    );
}

#[test]
#[ignore = "needs PostgreSQL on 127.0.0.1:5432 (started if down)"]
fn a_database_that_does_not_exist_is_named() {
    pg::ensure_running();
    let file = capture();
    let url = format!(
        "postgres://postgres:s3cret@127.0.0.1:5432/mk_absent_{}",
        std::process::id()
    );
    assert_clear(
        &["import", "--db", &url, file.to_str().unwrap()],
        &[
            "does not exist",
            "createdb",
            "postgres:***@127.0.0.1:5432/mk_absent_",
        ],
    );
}
