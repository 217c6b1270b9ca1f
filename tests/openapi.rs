//! The JSON API's OpenAPI document: it lists what the router serves, and Schemathesis, fuzzing
//! every operation from it against a real server, finds nothing.
//!
//! Schemathesis comes from pip (`.ci/run` installs the version it pins). Without it this test
//! prints "SKIPPED" and passes, unless `CI` is set.

use std::collections::BTreeSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{Backend, TOKEN, TestDb, spawn_app, unique};
use crate::support::server::Server;

const FILM: &str = "the-land-girls-1998";
const METHODS: [Method; 5] = [Method::GET, Method::POST, Method::PUT, Method::DELETE, Method::PATCH];

/// The document's operations: `GET /api/movies`, …
fn operations(doc: &Value) -> BTreeSet<String> {
    let paths = doc["paths"].as_object().expect("the document has paths");
    paths
        .iter()
        .flat_map(|(path, item)| {
            let methods = item.as_object().expect("a path item").keys();
            methods.map(move |method| format!("{} {path}", method.to_uppercase()))
        })
        .collect()
}

/// The API routes the README's HTTP table names: `GET /api/movies?…` is `GET /api/movies`.
fn readme_operations() -> BTreeSet<String> {
    let readme = include_str!("../README.md");
    let table = readme.split("## HTTP").nth(1).expect("the README has an HTTP section");
    table
        .lines()
        .take_while(|line| line.starts_with('|') || line.trim().is_empty())
        .filter_map(|line| line.split('|').nth(1))
        .flat_map(|cell| cell.split('`').skip(1).step_by(2))
        .filter_map(|route| {
            let (method, path) = route.split_once(' ')?;
            let path = path.split('?').next()?;
            path.starts_with("/api/").then(|| format!("{method} {path}"))
        })
        .collect()
}

/// The document is served as JSON, is OpenAPI 3.1, names the admin token's scheme, and lists
/// exactly the routes the router serves under `/api/` (each method it does not list is a 405 whose
/// `Allow` names the ones it does) and the README names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_lists_every_route_of_the_api() {
    let app = spawn_app(Backend::Sqlite).await;
    let r = app.get("/api/openapi.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/json");
    let doc: Value = r.json().await.unwrap();
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    assert_eq!(doc["components"]["securitySchemes"]["admin_token"]["scheme"], "bearer");

    let listed = operations(&doc);
    assert_eq!(listed, readme_operations(), "the document and the README's HTTP table");
    let paths: BTreeSet<&str> = listed.iter().filter_map(|op| op.split_once(' ')).map(|(_, path)| path).collect();
    for path in paths {
        let url = app.url(&path.replace("{slug}", FILM));
        let documented: Vec<&Method> = METHODS.iter().filter(|m| listed.contains(&format!("{m} {path}"))).collect();
        for method in &METHODS {
            // no token: a write that is routed is refused before it reads anything
            let r = app.client.request(method.clone(), &url).send().await.unwrap();
            if documented.contains(&method) {
                assert!(
                    [StatusCode::OK, StatusCode::UNAUTHORIZED].contains(&r.status()),
                    "{method} {path}: {}",
                    r.status()
                );
            } else {
                assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not in the document");
                let allow = r.headers()["allow"].to_str().unwrap().to_owned();
                let allowed: BTreeSet<&str> = allow.split(',').map(str::trim).filter(|m| *m != "HEAD").collect();
                let documented: BTreeSet<&str> = documented.iter().map(|m| m.as_str()).collect();
                assert_eq!(allowed, documented, "{path}: Allow: {allow}");
            }
        }
    }
}

/// Schemathesis 4 runs every check (status codes, content types, headers and bodies as
/// documented; schema-valid requests accepted, invalid ones refused with a documented 4xx; no 5xx;
/// auth not ignored; created films readable, deleted ones gone) on every operation, the writes
/// with the admin token, against a server of its own on a SQLite file of its own, and finds
/// nothing. The server logged no error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemathesis_finds_nothing() {
    let Some(version) = schemathesis_version().await else {
        assert!(
            std::env::var_os("CI").is_none(),
            "schemathesis is missing and CI is set: install it with pip (see .ci/run)"
        );
        eprintln!("SKIPPED: schemathesis not installed");
        return;
    };
    eprintln!("{version}");
    let db = TestDb::new(Backend::Sqlite).await;
    // every wrong token Schemathesis sends (to check that auth is not ignored) must get its 401
    let server = Server::spawn(&db.url, "off", &unique("openapi_"), &[("BAD_TOKENS_PER_MINUTE", "1000000")]);
    server.wait_up(Duration::from_secs(60)).await;
    assert_eq!(server.get_text(&format!("/api/movies/{FILM}")).await.0, StatusCode::OK, "the dataset is loaded");

    let work = std::env::temp_dir().join(unique("marquee_schemathesis_"));
    std::fs::create_dir_all(&work).unwrap();
    let run = tokio::process::Command::new("schemathesis")
        .arg("run")
        .arg(server.url("/api/openapi.json"))
        .args(["--checks", "all", "--max-examples", "60", "--request-timeout", "10"])
        .args(["--header", &format!("Authorization: Bearer {TOKEN}")])
        .env("NO_COLOR", "1")
        // its Hypothesis example database goes here, not into the source tree
        .current_dir(&work)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(240), run).await.expect("schemathesis ends").unwrap();
    let _ = std::fs::remove_dir_all(&work);
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "schemathesis found something:\n{report}\nthe server's log:\n{}", server.log());
    assert!(report.contains("No issues found"), "{report}");
    let log = server.log();
    assert!(!log.contains("ERROR"), "the server logged errors:\n{log}");
    eprintln!("{}", report.lines().skip_while(|l| !l.contains("SUMMARY")).collect::<Vec<_>>().join("\n"));
}

/// `schemathesis --version`, or `None` when it is not installed.
async fn schemathesis_version() -> Option<String> {
    let out = tokio::process::Command::new("schemathesis").arg("--version").output().await.ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}
