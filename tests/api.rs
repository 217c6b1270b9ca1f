//! The JSON API and the operators' endpoints.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::both;
use crate::helpers::{Setup, TestApp, spawn_app};

async fn movie(app: &TestApp, slug: &str) -> (StatusCode, Value) {
    let r = app.get(&format!("/api/movies/{slug}")).await;
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn count(app: &TestApp) -> i64 {
    app.database().count().await.unwrap()
}

both!(get_returns_every_field_as_json, |backend| async move {
    let app = spawn_app(backend).await;
    let (status, body) = movie(&app, "the-land-girls-1998").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["title"], "The Land Girls");
    assert_eq!(body["release_date"], "1998-06-12");
    assert_eq!(body["us_gross"], 146083);
    assert_eq!(body["production_budget"], 8000000);
    assert_eq!(body["imdb_rating"], 6.1);
    assert_eq!(body["mpaa_rating"], "R");
    assert!(body["director"].is_null());
    assert!(body["version"].as_i64().is_some_and(|v| v > 0));
    let (status, body) = movie(&app, "no-such-film-1999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["error"].as_str().is_some_and(|e| e.contains("no-such-film-1999")));
});

both!(create_update_delete_with_the_token, |backend| async move {
    let app = spawn_app(backend).await;
    let before = count(&app).await;
    let created = app
        .add_movie(
            &json!({"title": "Heat", "release_date": "1995-12-15", "director": "Michael Mann", "imdb_rating": 8.2}),
        )
        .await;
    assert_eq!(created.status(), StatusCode::CREATED);
    assert_eq!(created.headers()["location"], "/api/movies/heat-1995");
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["slug"], "heat-1995");
    assert_eq!(count(&app).await, before + 1);

    let put = app.edit("heat-1995", &json!({"running_time_min": 170, "director": null})).await;
    assert_eq!(put.status(), StatusCode::OK);
    let body: Value = put.json().await.unwrap();
    assert_eq!(body["changed"], json!(["director", "running_time_min"]));
    let (_, stored) = movie(&app, "heat-1995").await;
    assert_eq!(stored["running_time_min"], 170);
    assert!(stored["director"].is_null());
    assert_eq!(stored["title"], "Heat", "fields not in the patch stay");

    let taken = app.add_movie(&json!({"slug": "heat-1995", "title": "Heat", "release_date": "1995-12-15"})).await;
    assert_eq!(taken.status(), StatusCode::CONFLICT);

    let delete = app.remove("heat-1995").await;
    assert_eq!(delete.status(), StatusCode::NO_CONTENT);
    assert_eq!(movie(&app, "heat-1995").await.0, StatusCode::NOT_FOUND);
    assert_eq!(app.remove("heat-1995").await.status(), StatusCode::NOT_FOUND);
    assert_eq!(count(&app).await, before);
});

both!(writes_need_the_right_token, |backend| async move {
    let app = spawn_app(backend).await;
    let before = movie(&app, "the-land-girls-1998").await.1;
    let body = json!({"title": "Hijacked"});
    let url = app.url("/api/movies/the-land-girls-1998");
    for auth in [None, Some("Bearer wrong"), Some("Bearer "), Some("test-admin-token"), Some("Basic dGVzdA==")] {
        let mut req = app.client.put(&url).json(&body);
        if let Some(auth) = auth {
            req = req.header("authorization", auth);
        }
        let r = req.send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.headers()["www-authenticate"], "Bearer");
    }
    let post = app.client.post(app.url("/api/movies")).json(&json!({"title": "X", "release_date": "2000-01-01"}));
    assert_eq!(post.send().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    let delete = app.client.delete(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(delete.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(movie(&app, "the-land-girls-1998").await.1, before, "nothing changed");
});

#[tokio::test]
async fn writes_are_refused_without_an_admin_token() {
    let app = Setup::new(crate::helpers::Backend::Sqlite).env("ADMIN_TOKEN", "").spawn().await;
    let r = app.client.delete(app.url("/api/movies/the-land-girls-1998")).bearer_auth("").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    let body: Value = r.json().await.unwrap();
    assert!(body["error"].as_str().is_some_and(|e| e.contains("ADMIN_TOKEN")));
    assert_eq!(movie(&app, "the-land-girls-1998").await.0, StatusCode::OK);
}

both!(bad_bodies_name_the_field_and_write_nothing, |backend| async move {
    let app = spawn_app(backend).await;
    let before = count(&app).await;
    let cases: [(Value, StatusCode, &str); 7] = [
        (json!({"release_date": "2000-01-01"}), StatusCode::UNPROCESSABLE_ENTITY, "title"),
        (json!({"title": "X"}), StatusCode::UNPROCESSABLE_ENTITY, "release_date"),
        (json!({"title": 42, "release_date": "2000-01-01"}), StatusCode::UNPROCESSABLE_ENTITY, "title"),
        (json!({"title": "x".repeat(301), "release_date": "2000-01-01"}), StatusCode::UNPROCESSABLE_ENTITY, "title"),
        (json!({"title": "X", "release_date": "2000-02-30"}), StatusCode::UNPROCESSABLE_ENTITY, "release_date"),
        (json!({"title": "X", "release_date": "2000-01-01", "budget": 5}), StatusCode::UNPROCESSABLE_ENTITY, "budget"),
        (
            json!({"title": "X", "release_date": "2000-01-01", "imdb_votes": "many"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "imdb_votes",
        ),
    ];
    for (body, status, field) in cases {
        let r = app.add_movie(&body).await;
        assert_eq!(r.status(), status, "{body}");
        let answer: Value = r.json().await.unwrap();
        assert_eq!(answer["field"], field, "{body}");
        assert!(answer["error"].as_str().is_some_and(|e| e.starts_with(field)));
    }
    let not_json = app
        .admin(Method::POST, "/api/movies")
        .header("content-type", "application/json")
        .body("{title: nope")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    let answer: Value = not_json.json().await.unwrap();
    assert!(answer["error"].as_str().is_some_and(|e| e.contains("not valid JSON")));
    assert_eq!(count(&app).await, before, "nothing was written");
});

both!(health_readiness_and_metrics, |backend| async move {
    let app = spawn_app(backend).await;
    assert_eq!(app.get("/healthz").await.status(), StatusCode::OK);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!((ready["database"].as_str(), ready["cache"].as_str()), (Some("up"), Some("up")));
    app.get("/movies?page=1").await;
    app.get("/movies?page=1").await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for name in [
        "marquee_cache_hits_total{tier=\"redis\",kind=\"page\"}",
        "marquee_cache_misses_total{tier=\"redis\",kind=\"movie\"}",
        "marquee_cache_hits_total{tier=\"redis\",kind=\"related\"}",
        "marquee_cache_misses_total{tier=\"memory\",kind=\"page\"}",
        "marquee_cache_kept_bytes",
        "marquee_cache_trusted",
        "marquee_coalesced_waits_total",
        "marquee_stale_writes_refused_total",
        "marquee_deferred_writes_pending",
        "marquee_deferred_writes_total{outcome=\"failed\"}",
        "marquee_redis_errors_total",
        "marquee_db_queries_total",
        "marquee_db_pool_waits_total",
        "marquee_db_heavy_shed_total",
        "marquee_pages_rendered_total{from=\"redis\"}",
        "marquee_pages_rendered_total{from=\"database\"}",
        "marquee_http_request_duration_seconds_bucket{route=\"/movies\"",
    ] {
        assert!(metrics.contains(name), "/metrics lacks {name}");
    }
});

#[tokio::test]
async fn readiness_is_degraded_but_ok_without_redis() {
    let app = Setup::new(crate::helpers::Backend::Sqlite).redis("redis://127.0.0.1:9").spawn().await;
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    let ready: Value = ready.json().await.unwrap();
    assert_eq!(ready["cache"], "down");
    assert_eq!(ready["status"], "degraded");
    assert_eq!(app.get("/movies?page=2").await.status(), StatusCode::OK);
}
