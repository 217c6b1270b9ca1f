//! `marquee cache purge` and `marquee cache stats`: their arguments, and what they print.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{ArgGroup, Args, Subcommand};

use crate::app;
use crate::cache::CachedStamp;
use crate::config::Config;
use crate::db::Stamp;
use crate::movies::Slug;
use crate::service::purge::{CacheReport, KeptPages, Purge, Purged};

#[derive(Subcommand)]
pub enum CacheCommand {
    /// Remove a film's keys (or every film's and the stamp) and every page key from Redis, then
    /// set a new token and wait for every server's lease: when it exits, no server answers a page
    /// it kept before.
    Purge(PurgeArgs),
    /// What the cache holds: Redis, the stamp beside the database's, the token and each server's
    /// lease, the page keys the sweeps walk, memory, and the cache log's backlog.
    Stats,
}

#[derive(Args)]
#[command(group(ArgGroup::new("what").required(true).args(["film", "all"])))]
pub struct PurgeArgs {
    /// The film whose keys go (its own and its related films').
    #[arg(long, value_name = "SLUG", value_parser = Slug::parse)]
    film: Option<Slug>,
    /// Every film the database lists, and the stamp.
    #[arg(long)]
    all: bool,
}

impl PurgeArgs {
    fn purge(self) -> Purge {
        match self.film {
            Some(slug) => Purge::Film(slug),
            None => Purge::All,
        }
    }
}

/// A cache command is an operator's, not a visitor's: it may wait longer for Redis than a page
/// would before it gives up.
const ADMIN_REDIS_TIMEOUT: Duration = Duration::from_secs(2);

/// Runs one cache subcommand.
pub async fn run(command: CacheCommand, mut config: Config) -> anyhow::Result<ExitCode> {
    config.cache.timeout = config.cache.timeout.max(ADMIN_REDIS_TIMEOUT);
    match command {
        CacheCommand::Purge(args) => {
            if config.cache.redis.is_none() {
                eprintln!("marquee: REDIS_URL=off: there is no cache to purge");
                return Ok(ExitCode::from(2));
            }
            let what = args.purge();
            let service = app::open_service(&config).await?;
            let started = Instant::now();
            let mut reported = 0;
            let purged = service
                .purge(&what, |films| {
                    if films / 100_000 > reported {
                        reported = films / 100_000;
                        eprintln!("  {films} films' keys removed after {:.1} s", started.elapsed().as_secs_f64());
                    }
                })
                .await
                .map_err(|e| e.context("the purge stopped before its end; run it again"))?;
            print!("{}", purge_report(&what, &purged));
        }
        CacheCommand::Stats => {
            let service = app::open_service(&config).await?;
            print!("{}", stats_report(&service.cache_stats().await));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn purge_report(what: &Purge, purged: &Purged) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let Purged { films, in_database, keys_removed, listing_pages, other_pages, stamp_removed, kept_pages } = purged;
    match what {
        Purge::Film(slug) => {
            line(format!("removed {keys_removed} of 2 keys: movie:{slug}, movies:related:{slug}"));
            if *in_database == Some(false) {
                line(format!("note: the database has no film {slug}"));
            }
        }
        Purge::All => line(format!(
            "removed {keys_removed} of {} keys: the films' and their related films' ({films} films in the database)",
            films * 2
        )),
    }
    line(format!("swept {listing_pages} page keys listed in movies:pages and {other_pages} in movies:lists"));
    match stamp_removed {
        Some(true) => line("removed the stamp: movies:stamp".into()),
        Some(false) => line("the stamp movies:stamp was not there".into()),
        None => {}
    }
    let KeptPages { servers, renewed, waited, hash_removed } = kept_pages;
    let ms = waited.as_millis();
    if *hash_removed {
        line(format!(
            "redis refused a new token: removed the token's hash instead, and waited a whole lease ({ms} ms)"
        ));
    } else {
        let ran_out = servers - renewed;
        line(format!(
            "set a new token and waited {ms} ms for the servers' leases: {servers} held one, {renewed} renewed with the new token, {ran_out} ran out"
        ));
    }
    out
}

fn stamp_text(stamp: &Stamp) -> String {
    let Stamp { version, order_version, list_version, movie_count } = stamp;
    format!("v={version} order={order_version} lists={list_version} films={movie_count}")
}

fn stats_report(report: &CacheReport) -> String {
    let mut out = String::new();
    let mut line = |text: String| {
        out.push_str(&text);
        out.push('\n');
    };
    let database = match &report.database {
        Ok(stamp) => format!("database {}", stamp_text(stamp)),
        Err(e) => format!("database unreadable ({e})"),
    };
    let redis = match &report.redis {
        None => {
            line("redis: off (REDIS_URL=off)".into());
            None
        }
        Some(Err(e)) => {
            line(format!("redis: does not answer ({e})"));
            None
        }
        Some(Ok(redis)) => {
            line(format!("redis: answers (ping {:.1} ms)", redis.ping.as_secs_f64() * 1000.0));
            Some(&redis.state)
        }
    };
    if let Some(state) = redis {
        let (cached, same) = match &state.stamp {
            CachedStamp::Held(stamp) => (stamp_text(stamp), report.database.as_ref().ok() == Some(stamp)),
            CachedStamp::Missing => ("none (every page a miss until a read writes it)".into(), false),
            CachedStamp::Unreadable => ("unreadable (every page a miss until a read writes it)".into(), false),
        };
        let agree = if same { "the same" } else { "they differ" };
        line(format!("stamp: redis {cached}; {database} ({agree})"));
        let token = &state.token;
        let age = token.age.map(|a| format!(", its hash made {:.1} s ago", a.as_secs_f64())).unwrap_or_default();
        let lease = report.lease_length.as_millis();
        match &token.token {
            Some(t) => line(format!("token: {t}{age}; leases of {lease} ms")),
            None => line(format!("token: none{age}; leases of {lease} ms")),
        }
        if token.leases.is_empty() {
            line("leases: none".into());
        }
        for l in &token.leases {
            let knows = if l.knows_current { "knows the current token" } else { "knows an older token" };
            if l.left_ms > 0 {
                line(format!("lease {}: {} ms left, {knows}", l.server, l.left_ms));
            } else {
                line(format!("lease {}: ended {} ms ago, {knows}", l.server, -l.left_ms));
            }
        }
        line(format!("page keys: {} in movies:pages, {} in movies:lists", state.listing_pages, state.other_pages));
        for node in &state.memory {
            let at = node.node.as_ref().map(|n| format!(" {n}")).unwrap_or_default();
            let field = |v: &Option<String>| v.clone().unwrap_or_else(|| "?".into());
            match &node.error {
                Some(e) => line(format!("memory{at}: no answer ({e})")),
                None => line(format!(
                    "memory{at}: used_memory_human={} maxmemory_policy={}",
                    field(&node.used_memory_human),
                    field(&node.maxmemory_policy)
                )),
            }
        }
    } else {
        line(format!("stamp: {database}"));
    }
    match &report.backlog {
        Ok(b) => {
            let oldest = b.oldest.map(|o| format!(", the oldest {:.1} s old", o.as_secs_f64())).unwrap_or_default();
            line(format!("cache log: {} rows pending{oldest}", b.pending));
        }
        Err(e) => line(format!("cache log: unreadable ({e})")),
    }
    out
}
