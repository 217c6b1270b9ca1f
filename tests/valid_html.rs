//! Every kind of page is valid HTML, as the W3C's Nu checker (vnu) reads it.
//!
//! The checker is the npm package `vnu-jar`, which `.ci/run` installs under `.ci/vnu/`, run with
//! the machine's Java. Without either the test prints "SKIPPED" and passes, unless `CI` is set:
//! there it fails, so that a missing package cannot hide it.

use std::path::Path;
use std::process::Command;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{Backend, spawn_app, unique};

const VNU_JAR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/vnu/node_modules/vnu-jar/build/dist/vnu.jar");

/// What htmx inserts a fragment into: a document of the site's, reduced to what makes it one.
fn in_a_document(fragment: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>a fragment</title>\n</head>\n\
         <body>\n<main>\n<div id=\"feed\" role=\"feed\">\n{fragment}\n</div>\n</main>\n</body>\n</html>\n"
    )
}

/// The checker's errors for `files`, one line each (file, line, message); `None` when the checker
/// cannot run here and this is not CI.
fn vnu_errors(files: &[std::path::PathBuf]) -> Option<Vec<String>> {
    let ci = std::env::var_os("CI").is_some();
    if !Path::new(VNU_JAR).exists() {
        assert!(!ci, "{VNU_JAR} is missing and CI is set: .ci/run installs it (npm vnu-jar)");
        eprintln!("SKIPPED: the Nu checker is not installed (.ci/run installs it: npm vnu-jar, into .ci/vnu)");
        return None;
    }
    let run = Command::new("java").args(["-jar", VNU_JAR, "--errors-only", "--format", "json"]).args(files).output();
    let output = match run {
        Ok(output) => output,
        Err(e) => {
            assert!(!ci, "java does not run ({e}) and CI is set: install a Java runtime");
            eprintln!("SKIPPED: java does not run ({e})");
            return None;
        }
    };
    // the JSON report goes to standard error
    let report: Value = serde_json::from_slice(&output.stderr)
        .unwrap_or_else(|e| panic!("vnu's report is not JSON ({e}): {}", String::from_utf8_lossy(&output.stderr)));
    let messages = report["messages"].as_array().cloned().unwrap_or_default();
    let errors: Vec<String> = messages
        .iter()
        .map(|m| {
            let file = m["url"].as_str().unwrap_or_default().rsplit('/').next().unwrap_or_default().to_owned();
            format!("{file}:{}: {} ({})", m["lastLine"], m["message"].as_str().unwrap_or_default(), m["type"])
        })
        .collect();
    assert_eq!(output.status.success(), errors.is_empty(), "vnu's exit status disagrees with its report: {errors:?}");
    Some(errors)
}

// The listing, a fragment of the infinite scroll, a list, a search, a film and an error page.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nu_checker_finds_no_error_on_any_kind_of_page() {
    let app = spawn_app(Backend::Sqlite).await;
    let dir = std::env::temp_dir().join(unique("marquee_vnu_"));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let mut files = Vec::new();
    for (name, path, status) in [
        ("listing", "/", StatusCode::OK),
        ("list", "/movies?genre=comedy&decade=1990&sort=rating", StatusCode::OK),
        ("search", "/search?q=man", StatusCode::OK),
        ("film", "/movies/jurassic-park-1993", StatusCode::OK),
        ("error", "/movies?page=0", StatusCode::BAD_REQUEST),
    ] {
        let (got, html) = app.get_text(path).await;
        assert_eq!(got, status, "{path}");
        files.push((name, html));
    }
    // what the infinite scroll inserts: the cards of page 2 and the next trigger
    let (got, fragment) = app.get_fragment("/movies?page=2").await;
    assert_eq!(got, StatusCode::OK);
    assert!(!fragment.contains("<html") && fragment.contains("movie-card"), "not a fragment:\n{fragment}");
    files.push(("fragment", in_a_document(&fragment)));
    let paths: Vec<_> = files
        .iter()
        .map(|(name, html)| {
            let path = dir.join(format!("{name}.html"));
            std::fs::write(&path, html).expect("write the page");
            path
        })
        .collect();
    let errors = vnu_errors(&paths);
    let _ = std::fs::remove_dir_all(&dir);
    let Some(errors) = errors else { return };
    assert!(errors.is_empty(), "{} errors:\n{}", errors.len(), errors.join("\n"));
}
