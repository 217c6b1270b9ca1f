//! The integration tests: one binary. Each test starts the real app on port 0 against the real
//! Redis (its own key prefix) and a database of its own (a SQLite file or a PostgreSQL schema).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, reason = "a test fails loudly")]

mod helpers;
mod support;

mod api;
mod browser;
mod cache;
mod cache_log;
mod cli;
mod failures;
mod faults;
mod history;
mod input;
mod lists;
mod openapi;
mod pages;
mod purge;
mod redis_server;
mod related;
mod repository;
mod router;
mod search;
mod servers;
mod valid_html;
mod validators;
