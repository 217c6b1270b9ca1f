//! The bench's options (after `--`; see main.rs).

use anyhow::{Context, Result, bail};

use crate::servers::Backend;

#[derive(Debug, Clone)]
pub struct Opts {
    pub million: bool,
    /// Films in the big part (1,000,000; `--films N` to try it smaller).
    pub big: u64,
    pub quick: bool,
    /// `perf record` the cache-on server during one extra warm-listing run (first backend); with
    /// `--only mix --million`, the whole machine during one extra run of each big mix.
    pub profile: bool,
    pub only: Option<Backend>,
    /// `--only cluster`: the cluster part alone (on PostgreSQL).
    pub cluster_only: bool,
    /// `--only breaker`: the breaker under overload alone (on PostgreSQL).
    pub breaker_only: bool,
    /// `--only search`: search at `big` films on both backends alone.
    pub search_only: bool,
    /// `--only steady`: the steady-state rows (with the ceilings) and search on SQLite alone.
    pub steady_only: bool,
    /// `--only cold`: every kind of page with nothing cached at `big` films, on both backends.
    pub cold_only: bool,
    /// `--only writes`: a write's latency with 1, 3 and 8 servers, without Redis, on one and on a
    /// cluster with replicas (on PostgreSQL).
    pub writes_only: bool,
    /// `--only mix`: the traffic readers bring, on both backends (with `--million`, at `big` films too).
    pub mix_only: bool,
    pub secs: u32,
    pub rounds: usize,
    pub write: bool,
}

impl Opts {
    pub fn parse() -> Result<Option<Self>> {
        // `cargo bench` passes --bench; `cargo test --all-targets` runs this binary without it
        if !std::env::args().any(|a| a == "--bench") {
            eprintln!("the HTTP bench runs with `cargo bench --bench http`; nothing to do here");
            return Ok(None);
        }
        let mut o = Self {
            million: false,
            big: 1_000_000,
            quick: false,
            profile: false,
            only: None,
            cluster_only: false,
            breaker_only: false,
            search_only: false,
            steady_only: false,
            cold_only: false,
            writes_only: false,
            mix_only: false,
            secs: 5,
            rounds: 3,
            write: true,
        };
        let mut args = std::env::args().skip(1);
        while let Some(a) = args.next() {
            match a.as_str() {
                "--million" => o.million = true,
                "--quick" => {
                    o.quick = true;
                    o.secs = 2;
                    o.rounds = 1;
                }
                "--no-write" => o.write = false,
                "--profile" => o.profile = true,
                "--only" => {
                    o.only = match args.next().as_deref() {
                        Some("sqlite") => Some(Backend::Sqlite),
                        Some("postgres") => Some(Backend::Postgres),
                        Some("cluster") => {
                            o.cluster_only = true;
                            Some(Backend::Postgres)
                        }
                        Some("breaker") => {
                            o.breaker_only = true;
                            Some(Backend::Postgres)
                        }
                        Some("steady") => {
                            o.steady_only = true;
                            Some(Backend::Sqlite)
                        }
                        Some("search") => {
                            o.search_only = true;
                            None
                        }
                        Some("cold") => {
                            o.cold_only = true;
                            None
                        }
                        Some("mix") => {
                            o.mix_only = true;
                            None
                        }
                        Some("writes") => {
                            o.writes_only = true;
                            Some(Backend::Postgres)
                        }
                        other => {
                            bail!("--only sqlite|postgres|cluster|breaker|search|steady|cold|writes|mix, got {other:?}")
                        }
                    }
                }
                // a part on one database only (`--only mix --on postgres`)
                "--on" => {
                    o.only = match args.next().as_deref() {
                        Some("sqlite") => Some(Backend::Sqlite),
                        Some("postgres") => Some(Backend::Postgres),
                        other => bail!("--on sqlite|postgres, got {other:?}"),
                    }
                }
                "--secs" => o.secs = args.next().and_then(|s| s.parse().ok()).context("--secs N")?,
                "--films" => o.big = args.next().and_then(|s| s.parse().ok()).context("--films N")?,
                "--rounds" => o.rounds = args.next().and_then(|s| s.parse().ok()).context("--rounds N")?,
                _ => {} // --bench, and cargo's filters
            }
        }
        Ok(Some(o))
    }

    pub fn backends(&self) -> Vec<Backend> {
        [Backend::Sqlite, Backend::Postgres].into_iter().filter(|b| self.only.is_none_or(|o| o == *b)).collect()
    }

    pub fn reps(&self, full: usize) -> usize {
        if self.quick { full.div_ceil(3) } else { full }
    }
}
