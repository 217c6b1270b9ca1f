//! The binary as an operator runs it: import, seed, migrate, and configuration errors.

use std::process::{Output, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::both;
use crate::helpers::TestDb;

const DATASET: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/src/dataset/movies.json");

async fn marquee(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_marquee"));
    cmd.args(args).env("DATABASE_URL", &db.url).env("REDIS_URL", "off").env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().await.expect("marquee runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

async fn count(db: &TestDb) -> i64 {
    db.connect().await.0.count().await.unwrap()
}

both!(import_reports_and_is_idempotent, |backend| async move {
    let db = TestDb::new(backend).await;
    let first = marquee(&db, &["import", DATASET], &[]).await;
    assert!(first.status.success(), "{}", stderr(&first));
    let text = stderr(&first);
    assert!(text.contains("imported 3200 new, updated 0, unchanged 0, rejected 1"), "{text}");
    assert!(text.contains("rejected row 3054: no title"), "{text}");
    let again = marquee(&db, &["import", DATASET], &[]).await;
    assert!(again.status.success());
    assert!(stderr(&again).contains("imported 0 new, updated 0, unchanged 3200, rejected 1"), "{}", stderr(&again));
    assert_eq!(count(&db).await, 3200);
});

both!(a_broken_file_is_an_error_and_changes_nothing, |backend| async move {
    let db = TestDb::new(backend).await;
    assert!(marquee(&db, &["import", DATASET], &[]).await.status.success());
    let dir = std::env::temp_dir();
    for (name, content, says) in [
        ("not-json", "{\"Title\": \"Heat\",", "not JSON"),
        ("not-array", "{\"Title\": \"Heat\"}", "not a JSON array"),
        ("not-objects", "[{\"Title\": \"Heat\", \"Release Date\": \"Dec 15 1995\"}, 7]", "element 2"),
    ] {
        let path = dir.join(format!("{}-{name}.json", crate::helpers::unique("marquee_cli_")));
        std::fs::write(&path, content).unwrap();
        let out = marquee(&db, &["import", path.to_str().unwrap()], &[]).await;
        let _ = std::fs::remove_file(&path);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains(says), "{name}: {}", stderr(&out));
        assert!(stderr(&out).contains("nothing was imported"));
    }
    assert_eq!(count(&db).await, 3200, "the database is untouched");
    let missing = marquee(&db, &["import", "/nonexistent/file.json"], &[]).await;
    assert!(!missing.status.success());
});

both!(seed_adds_deterministic_movies_once, |backend| async move {
    let db = TestDb::new(backend).await;
    let out = marquee(&db, &["seed", "--count", "1200"], &[]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("seeded 1200 new films of 1200"), "{}", stderr(&out));
    let again = marquee(&db, &["seed", "--count", "1200"], &[]).await;
    assert!(stderr(&again).contains("seeded 0 new films of 1200"), "{}", stderr(&again));
    assert_eq!(count(&db).await, 1200);
    let (repo, _) = db.connect().await;
    let (_, page) = repo.page(marquee::movies::PageNumber::new(30).unwrap(), 24).await.unwrap();
    assert_eq!(page.len(), 24);
});

#[tokio::test]
async fn bad_configuration_stops_at_start_naming_the_variable() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await;
    for (var, value) in
        [("PAGE_SIZE", "0"), ("PAGE_TTL_SECS", "soon"), ("REDIS_URL", "localhost:6379"), ("DATABASE_URL", "mysql://x")]
    {
        let out = marquee(&db, &["migrate"], &[(var, value)]).await;
        assert_eq!(out.status.code(), Some(2), "{var}={value}");
        let text = stderr(&out);
        assert_eq!(text.lines().count(), 1, "one line: {text}");
        assert!(text.contains(var), "{text}");
    }
    let ok = marquee(&db, &["migrate"], &[]).await;
    assert!(ok.status.success(), "{}", stderr(&ok));
}

// A log written to a file or a pipe is read by tools, not a terminal: no colour codes in it (even
// with NO_COLOR unset, which is how the test runs the binary).
#[tokio::test]
async fn logs_to_a_pipe_have_no_colour_codes() {
    let db = TestDb::new(crate::helpers::Backend::Sqlite).await;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_marquee"))
        .arg("serve")
        .env("DATABASE_URL", &db.url)
        .env("REDIS_URL", "off")
        .env("LISTEN_ADDR", "127.0.0.1:0")
        .env("LOAD_DATASET", "false")
        .env("RUST_LOG", "info")
        .env("LOG_FORMAT", "text")
        .env_remove("NO_COLOR")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("marquee starts");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut log = String::new();
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening") {
                break;
            }
        }
    })
    .await;
    let _ = child.kill().await;
    assert!(log.contains("listening"), "serve logs where it listens: {log:?}");
    assert!(!log.contains("\x1b["), "colour codes in a piped log: {log:?}");
}
