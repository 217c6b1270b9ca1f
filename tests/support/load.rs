//! A load generator for the fault tests: HTTP clients looping over a list of requests while a
//! fault happens, and a tally of what they saw.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::task::JoinHandle;

use crate::helpers::{TestApp, card_slugs};

/// One request of a load: a path, asked as htmx does (the fragment) or not.
#[derive(Debug, Clone)]
pub struct Target {
    pub path: String,
    pub fragment: bool,
}

/// Listing pages 1..=`pages` (whole and fragment) and the detail page of every film on them.
pub async fn targets(app: &TestApp, pages: u32) -> Vec<Target> {
    let mut out = Vec::new();
    for n in 1..=pages {
        let path = format!("/movies?page={n}");
        let (status, html) = app.get_text(&path).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        for slug in card_slugs(&html) {
            out.push(Target { path: format!("/movies/{slug}"), fragment: false });
        }
        out.push(Target { path: path.clone(), fragment: false });
        out.push(Target { path, fragment: true });
    }
    out.push(Target { path: "/".into(), fragment: false });
    out
}

/// What a load saw.
#[derive(Debug, Default)]
pub struct Tally {
    pub requests: u64,
    /// (path, status) of every answer that was not 200.
    pub not_ok: Vec<(String, u16)>,
    /// Requests that got no HTTP answer at all.
    pub transport_errors: Vec<String>,
    pub max_latency: Duration,
    pub slowest: String,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.requests += other.requests;
        self.not_ok.extend(other.not_ok);
        self.transport_errors.extend(other.transport_errors);
        if other.max_latency > self.max_latency {
            self.max_latency = other.max_latency;
            self.slowest = other.slowest;
        }
    }

    pub fn server_errors(&self) -> Vec<&(String, u16)> {
        self.not_ok.iter().filter(|(_, s)| *s >= 500).collect()
    }

    /// Every request answered 200, none slower than `bound`.
    pub fn assert_all_ok_within(&self, bound: Duration) {
        assert!(self.transport_errors.is_empty(), "requests without an answer: {:?}", self.transport_errors);
        assert!(self.server_errors().is_empty(), "5xx answers: {:?}", self.server_errors());
        assert!(self.not_ok.is_empty(), "answers other than 200: {:?}", self.not_ok);
        assert!(
            self.max_latency < bound,
            "slowest request took {:?} (> {bound:?}): {}",
            self.max_latency,
            self.slowest
        );
    }
}

/// `clients` tasks, each looping over the targets (from its own offset) until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<Tally>>,
}

impl Load {
    pub fn start(base: &str, targets: &[Target], clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks = (0..clients)
            .map(|i| {
                let (stop, base, targets) = (stop.clone(), base.to_owned(), targets.to_vec());
                tokio::spawn(async move {
                    let client =
                        reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");
                    let mut tally = Tally::default();
                    let mut n = i * 7;
                    while !stop.load(Ordering::Relaxed) {
                        let target = &targets[n % targets.len()];
                        n += 1;
                        let mut req = client.get(format!("{base}{}", target.path));
                        if target.fragment {
                            req = req.header("HX-Request", "true").header("HX-Target", "feed");
                        }
                        let started = Instant::now();
                        let answer = match req.send().await {
                            Ok(r) => {
                                let status = r.status();
                                r.bytes().await.map(|_| status)
                            }
                            Err(e) => Err(e),
                        };
                        let took = started.elapsed();
                        tally.requests += 1;
                        if took > tally.max_latency {
                            tally.max_latency = took;
                            tally.slowest = target.path.clone();
                        }
                        match answer {
                            Ok(StatusCode::OK) => {}
                            Ok(status) => tally.not_ok.push((target.path.clone(), status.as_u16())),
                            Err(e) => tally.transport_errors.push(format!("{}: {e}", target.path)),
                        }
                    }
                    tally
                })
            })
            .collect();
        Self { stop, tasks }
    }

    pub async fn finish(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = Tally::default();
        for task in self.tasks {
            total.merge(task.await.expect("load task"));
        }
        total
    }
}
