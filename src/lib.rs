//! marquee: a server-rendered movie catalog whose reads go through a normalized Redis cache, with
//! each server's memory in front of Redis. The modules, in the order a request meets them:

#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "tests may fail loudly"))]
// Every dependency is the library's (the binary and the tests only add the ones they name); the
// unit tests are left out, since they also see the dev-dependencies.
#![cfg_attr(not(test), warn(unused_crate_dependencies))]

// (a blank line between each keeps rustfmt from sorting them: the order is the tour)

/// The command line: subcommands and what each does.
pub mod cli;

/// `Config::from_env`: every setting, read once at start.
pub mod config;

/// Builds the application from its config, serves it, shuts it down gracefully.
pub mod app;

/// The HTTP/1.1 server loop: header timeout and size limit, graceful shutdown.
pub mod server;

/// HTTP: first the page tier (`web::page_cache`, rendered pages kept in memory), then the router and
/// its middleware, the pages, the JSON API, health and metrics.
pub mod web;

/// The cached movie service: every page of slugs read one way, misses coalesced, writes told to
/// the cache before their answer.
pub mod service;

/// Cache writes that run after the response, tracked for graceful shutdown.
pub mod deferred;

/// Redis: key layout, MGET, pipelined compare-and-set writes, page sweeps, the token and the
/// servers' leases, fail-open.
pub mod cache;

/// The database (SQLite or PostgreSQL through sqlx): migrations and every query.
pub mod db;

/// The domain: `Movie`, `Slug`, `PageNumber`, dates and how values are shown.
pub mod movies;

/// The real dataset (embedded) and synthetic films for load tests.
pub mod dataset;

/// Seams for the integration tests, injected where a test must hold or break a step.
pub mod hooks;

/// Counters the service keeps for itself and publishes as Prometheus metrics.
pub mod stats;

/// Logging and the metrics recorder.
pub mod telemetry;
