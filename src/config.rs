//! Configuration, read once at start from the environment. A bad value stops the program with one
//! line naming the variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Which Redis the cache is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// One Redis server.
    Single(String),
    /// A Redis Cluster, found from these seed nodes.
    Cluster(Vec<String>),
}

/// When the cache leaves Redis alone after failures (see `cache::breaker`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerConfig {
    /// Failures a window must see before the breaker opens (1: any failure opens it).
    pub min_failures: u32,
    /// The share of a window's calls that must have failed, in percent (0: any share).
    pub failure_pct: u32,
    /// How long Redis is left alone once the breaker opens.
    pub open_for: Duration,
    /// The length of a counting window.
    pub window: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        Self { min_failures: 20, failure_pct: 50, open_for: Duration::from_millis(500), window: Duration::from_secs(2) }
    }
}

/// Where Redis is and how the cache behaves.
#[derive(Debug, Clone)]
pub struct CacheConfig {
    /// `None` when `REDIS_URL=off`: the site then reads everything from the database.
    pub redis: Option<RedisTarget>,
    pub prefix: String,
    pub page_ttl: Duration,
    pub movie_ttl: Duration,
    pub negative_ttl: Duration,
    /// The longest any one Redis exchange may take before the database is used instead.
    pub timeout: Duration,
    /// When Redis is left alone after failures.
    pub breaker: BreakerConfig,
    /// Bytes of rendered pages each server keeps in memory in front of Redis (0: none).
    pub kept_bytes: usize,
    /// How long a server trusts the token it knows without asking Redis (0: it asks on
    /// every request; see `cache::lease`). A writer waits at most this long for the servers.
    pub lease: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub listen_addr: SocketAddr,
    pub database_url: String,
    pub db_max_connections: u32,
    /// The heavy reads' own pool, wait and statement timeout (see `db::HeavyBudget`).
    pub db_heavy: crate::db::HeavyBudget,
    pub cache: CacheConfig,
    pub page_size: u32,
    pub admin_token: Option<String>,
    pub request_timeout: Duration,
    /// Requests served at once; past it, new ones are refused at once (503) instead of queued.
    pub max_in_flight: u32,
    /// Wrong admin tokens one client address may send a minute; past it, 429 with Retry-After.
    pub bad_tokens_per_minute: u32,
    pub shutdown_timeout: Duration,
    pub log_json: bool,
    /// Load the embedded dataset into an empty catalog when serving.
    pub load_dataset: bool,
    /// Where the static files are served from.
    pub static_dir: PathBuf,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{var}: {message} (got {value:?})")]
pub struct ConfigError {
    pub var: &'static str,
    pub value: String,
    pub message: String,
}

/// Every variable marquee reads and its default (empty: unset). `from_lookup` takes its defaults
/// from here, and a test holds the README's table and `.env.example` to it, so the three agree.
pub const VARIABLES: &[(&str, &str)] = &[
    ("LISTEN_ADDR", "127.0.0.1:3000"),
    ("DATABASE_URL", "sqlite://marquee.db"),
    // unset: per database (see `pool_size`)
    ("DB_MAX_CONNECTIONS", ""),
    ("DB_HEAVY_CONNECTIONS", "4"),
    ("DB_HEAVY_WAIT_MS", "1000"),
    ("DB_STATEMENT_TIMEOUT_MS", "2000"),
    ("REDIS_URL", "redis://127.0.0.1:6379"),
    ("REDIS_CLUSTER", "false"),
    ("CACHE_PREFIX", ""),
    ("PAGE_SIZE", "24"),
    ("PAGE_TTL_SECS", "300"),
    ("MOVIE_TTL_SECS", "3600"),
    ("NEGATIVE_TTL_SECS", "30"),
    // The page tier's budget, from the readers' mix at the embedded 3,200 films: its whole working
    // set (every listing page as a document and as a scroll fragment, every film page, every list's
    // pages, the searches, each asked as the mix asks it: 3,999 pages, 7.4 MiB gzipped, films 5.8 of
    // it) counts 11.0 MiB with names, headers, tags and bookkeeping (`marquee_cache_kept_bytes`).
    // 16 MiB holds all of it, so the mix misses only pages asked for the first time, with room for
    // a catalog a half larger; the server's peak RSS under the mix stays within 64 MiB
    // (benches/RESULTS-mix.md). Past it, the least used pages go (see `web::page_cache`).
    ("RENDERED_CACHE_KB", "16384"),
    ("CACHE_LEASE_MS", "1000"),
    ("REDIS_TIMEOUT_MS", "50"),
    ("REDIS_BREAKER_MIN_FAILURES", "20"),
    ("REDIS_BREAKER_FAILURE_PCT", "50"),
    ("REDIS_BREAKER_OPEN_MS", "500"),
    ("ADMIN_TOKEN", ""),
    ("REQUEST_TIMEOUT_SECS", "10"),
    ("BAD_TOKENS_PER_MINUTE", "10"),
    ("MAX_IN_FLIGHT", "512"),
    ("SHUTDOWN_TIMEOUT_SECS", "5"),
    ("LOG_FORMAT", "text"),
    ("LOAD_DATASET", "true"),
    ("STATIC_DIR", ""),
];

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads each variable through `lookup`; unset or empty takes the default.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |var: &'static str| -> (&'static str, String) {
            let default = VARIABLES.iter().find(|(n, _)| *n == var).map(|(_, d)| *d).unwrap_or_default();
            (var, lookup(var).filter(|v| !v.is_empty()).unwrap_or_else(|| default.to_owned()))
        };
        let secs = |var| number(get(var), 1, 365 * 24 * 3600).map(|s| Duration::from_secs(s.into()));
        let (_, cluster) = get("REDIS_CLUSTER");
        let cluster = flag("REDIS_CLUSTER", &cluster)?;
        let (_, redis_url) = get("REDIS_URL");
        let redis = redis_target(&redis_url, cluster)?;
        let (_, database_url) = get("DATABASE_URL");
        let scheme_ok = ["sqlite:", "postgres://", "postgresql://"].iter().any(|s| database_url.starts_with(s));
        if !scheme_ok || database_url.chars().any(char::is_whitespace) {
            return Err(bad("DATABASE_URL", &database_url, "expected sqlite://FILE or postgres://…"));
        }
        let (_, listen) = get("LISTEN_ADDR");
        let listen_addr = listen.parse().map_err(|_| bad("LISTEN_ADDR", &listen, "expected host:port"))?;
        let (_, log) = get("LOG_FORMAT");
        let log_json = match log.as_str() {
            "json" => true,
            "text" => false,
            _ => return Err(bad("LOG_FORMAT", &log, "expected text or json")),
        };
        let (_, load) = get("LOAD_DATASET");
        let load_dataset = flag("LOAD_DATASET", &load)?;
        let (_, prefix) = get("CACHE_PREFIX");
        if prefix.len() > 100 || prefix.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("CACHE_PREFIX", &prefix, "at most 100 characters, no spaces"));
        }
        let (_, static_dir) = get("STATIC_DIR");
        // unset: the source tree's own, so that `cargo run` serves them from anywhere
        let static_dir = if static_dir.is_empty() {
            concat!(env!("CARGO_MANIFEST_DIR"), "/static").into()
        } else {
            static_dir.into()
        };
        let db_max_connections = pool_size(get("DB_MAX_CONNECTIONS"), &database_url)?;
        Ok(Self {
            listen_addr,
            database_url,
            db_max_connections,
            db_heavy: crate::db::HeavyBudget {
                connections: number(get("DB_HEAVY_CONNECTIONS"), 1, 1000)?,
                wait: number(get("DB_HEAVY_WAIT_MS"), 1, 60_000).map(|ms| Duration::from_millis(ms.into()))?,
                statement_timeout: number(get("DB_STATEMENT_TIMEOUT_MS"), 1, 3_600_000)
                    .map(|ms| Duration::from_millis(ms.into()))?,
            },
            cache: CacheConfig {
                redis,
                prefix,
                page_ttl: secs("PAGE_TTL_SECS")?,
                movie_ttl: secs("MOVIE_TTL_SECS")?,
                negative_ttl: secs("NEGATIVE_TTL_SECS")?,
                timeout: number(get("REDIS_TIMEOUT_MS"), 1, 60_000).map(|ms| Duration::from_millis(ms.into()))?,
                breaker: BreakerConfig {
                    min_failures: number(get("REDIS_BREAKER_MIN_FAILURES"), 1, 1_000_000)?,
                    failure_pct: number(get("REDIS_BREAKER_FAILURE_PCT"), 0, 100)?,
                    open_for: number(get("REDIS_BREAKER_OPEN_MS"), 1, 600_000)
                        .map(|ms| Duration::from_millis(ms.into()))?,
                    ..BreakerConfig::default()
                },
                kept_bytes: number(get("RENDERED_CACHE_KB"), 0, 16 * 1024 * 1024).map(|kb| kb as usize * 1024)?,
                lease: number(get("CACHE_LEASE_MS"), 0, 60_000).map(|ms| Duration::from_millis(ms.into()))?,
            },
            page_size: number(get("PAGE_SIZE"), 1, 500)?,
            admin_token: lookup("ADMIN_TOKEN").filter(|t| !t.is_empty()),
            request_timeout: secs("REQUEST_TIMEOUT_SECS")?,
            max_in_flight: number(get("MAX_IN_FLIGHT"), 1, 1_000_000)?,
            bad_tokens_per_minute: number(get("BAD_TOKENS_PER_MINUTE"), 1, 1_000_000)?,
            shutdown_timeout: secs("SHUTDOWN_TIMEOUT_SECS")?,
            log_json,
            load_dataset,
            static_dir,
        })
    }
}

fn flag(var: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(bad(var, value, "expected true or false")),
    }
}

/// `off`, one URL, or a comma-separated list of a cluster's seed nodes.
fn redis_target(value: &str, cluster: bool) -> Result<Option<RedisTarget>, ConfigError> {
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let urls: Vec<String> = value.split(',').map(|u| u.trim().to_owned()).collect();
    if urls.iter().any(|u| redis::parse_redis_url(u).is_none()) {
        return Err(bad("REDIS_URL", value, "expected redis://host:port, a comma-separated list of them, or off"));
    }
    Ok(Some(match urls.len() {
        1 if !cluster => RedisTarget::Single(urls.concat()),
        _ => RedisTarget::Cluster(urls),
    }))
}

/// `DB_MAX_CONNECTIONS`, or unset, the default for the database `url` names.
///
/// SQLite: 4. Each SQLite connection is a thread of its own with its own page cache, prepared
/// statements and malloc arena, about 1.3 MiB resident each once used, and a full pool of 16 was
/// most of what put the server past 64 MiB under the readers' mix (benches/RESULTS-mix.md). On
/// this 2-core machine more connections bought nothing: every page from the database
/// (`REDIS_URL=off`), a mix of listing pages, films, lists and searches from 64 connections, ran
/// at 1,000–1,700 r/s with 2, 4, 8 or 16 of them alike (the machine shared with builds), at a
/// peak of 37–39 MiB with 4 against 53 MiB with 16. A SQLite query runs on the CPU, from the OS's
/// cache of the file: four keep two cores busy, and waiting for one is not waiting for a disk.
///
/// PostgreSQL: 16. Its connections are server processes, not this process's memory, and a query
/// waits on the server, so more of them in flight pay.
fn pool_size(var_value: (&'static str, String), url: &str) -> Result<u32, ConfigError> {
    if !var_value.1.is_empty() {
        return number(var_value, 1, 1000);
    }
    Ok(if url.starts_with("sqlite:") { SQLITE_POOL } else { POSTGRES_POOL })
}

/// `DB_MAX_CONNECTIONS`'s defaults (see `pool_size`).
const SQLITE_POOL: u32 = 4;
const POSTGRES_POOL: u32 = 16;

fn bad(var: &'static str, value: &str, message: &str) -> ConfigError {
    ConfigError { var, value: value.to_owned(), message: message.to_owned() }
}

fn number(var_value: (&'static str, String), min: u32, max: u32) -> Result<u32, ConfigError> {
    let (var, value) = var_value;
    value
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| bad(var, &value, &format!("expected a whole number from {min} to {max}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let env: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| env.get(k).cloned())
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let c = config(&[]).unwrap_or_else(|e| unreachable!("{e}"));
        assert_eq!(c.listen_addr.to_string(), "127.0.0.1:3000");
        assert_eq!(c.database_url, "sqlite://marquee.db");
        assert_eq!(c.cache.redis, Some(RedisTarget::Single("redis://127.0.0.1:6379".into())));
        assert_eq!((c.page_size, c.cache.page_ttl.as_secs(), c.cache.movie_ttl.as_secs()), (24, 300, 3600));
        assert_eq!(c.cache.prefix, "");
        assert_eq!(c.admin_token, None);
    }

    #[test]
    fn bad_values_name_their_variable() {
        for (var, value) in [
            ("PAGE_SIZE", "0"),
            ("PAGE_SIZE", "ten"),
            ("PAGE_TTL_SECS", "5m"),
            ("MOVIE_TTL_SECS", "-1"),
            ("REDIS_URL", "http://x"),
            ("DATABASE_URL", "mysql://x"),
            ("LISTEN_ADDR", "localhost"),
            ("LOG_FORMAT", "xml"),
            ("REDIS_TIMEOUT_MS", "0"),
        ] {
            let err = config(&[(var, value)]).err();
            assert_eq!(err.as_ref().map(|e| e.var), Some(var), "{var}={value}");
            assert!(err.is_some_and(|e| e.to_string().starts_with(var)));
        }
    }

    #[test]
    fn the_pool_is_sized_for_its_database_unless_set() {
        let pool = |pairs: &[(&str, &str)]| config(pairs).map(|c| c.db_max_connections);
        assert_eq!(pool(&[]), Ok(4), "SQLite, the default database");
        assert_eq!(pool(&[("DATABASE_URL", "sqlite:///tmp/x.db")]), Ok(4));
        assert_eq!(pool(&[("DATABASE_URL", "postgres://u@h/db")]), Ok(16));
        assert_eq!(pool(&[("DATABASE_URL", "postgresql://u@h/db"), ("DB_MAX_CONNECTIONS", "")]), Ok(16));
        assert_eq!(pool(&[("DB_MAX_CONNECTIONS", "12")]), Ok(12));
        assert_eq!(pool(&[("DATABASE_URL", "postgres://u@h/db"), ("DB_MAX_CONNECTIONS", "3")]), Ok(3));
        assert_eq!(config(&[("DB_MAX_CONNECTIONS", "0")]).err().map(|e| e.var), Some("DB_MAX_CONNECTIONS"));
    }

    #[test]
    fn redis_can_be_switched_off() {
        assert!(config(&[("REDIS_URL", "off")]).is_ok_and(|c| c.cache.redis.is_none()));
    }

    #[test]
    fn several_redis_urls_are_a_cluster() {
        let seeds = "redis://127.0.0.1:7001, redis://127.0.0.1:7002,redis://127.0.0.1:7003";
        let urls = ["redis://127.0.0.1:7001", "redis://127.0.0.1:7002", "redis://127.0.0.1:7003"];
        let c = config(&[("REDIS_URL", seeds)]).map(|c| c.cache.redis);
        assert_eq!(c, Ok(Some(RedisTarget::Cluster(urls.map(String::from).to_vec()))));
        let one = config(&[("REDIS_URL", urls[0]), ("REDIS_CLUSTER", "true")]).map(|c| c.cache.redis);
        assert_eq!(one, Ok(Some(RedisTarget::Cluster(vec![urls[0].to_owned()]))));
        for bad in ["redis://127.0.0.1:7001,", "redis://a,http://b"] {
            assert_eq!(config(&[("REDIS_URL", bad)]).err().map(|e| e.var), Some("REDIS_URL"), "{bad}");
        }
        assert_eq!(config(&[("REDIS_CLUSTER", "yes")]).err().map(|e| e.var), Some("REDIS_CLUSTER"));
    }

    /// `from_lookup` asks for exactly the variables of `VARIABLES`, and the README's table and
    /// `.env.example` list each with its default, and nothing else.
    #[test]
    fn the_readme_and_env_example_list_every_variable_read() {
        let asked = std::cell::RefCell::new(Vec::new());
        let read = Config::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            None
        });
        assert!(read.is_ok(), "the defaults are valid: {:?}", read.err());
        let mut asked = asked.into_inner();
        asked.sort();
        asked.dedup();
        let mut table: Vec<(String, String)> = VARIABLES.iter().map(|(n, d)| (n.to_string(), d.to_string())).collect();
        table.sort();
        let names: Vec<String> = table.iter().map(|(name, _)| name.clone()).collect();
        assert_eq!(asked, names, "the variables from_lookup reads");
        assert_eq!(readme_table(include_str!("../README.md")), table, "README.md's configuration table");
        assert_eq!(env_example(include_str!("../.env.example")), table, ".env.example");
    }

    /// The rows of the README's configuration table: `` | `NAME` | `default` | meaning | ``, where
    /// an empty default is shown as "unset".
    fn readme_table(readme: &str) -> Vec<(String, String)> {
        let section = readme.split("\n## ").find(|s| s.starts_with("Configuration\n")).unwrap_or_default();
        let mut rows: Vec<(String, String)> = section
            .lines()
            .filter_map(|line| {
                let mut cells = line.split('|').map(str::trim).skip(1);
                let name = cells.next()?.strip_prefix('`')?.strip_suffix('`')?;
                let shown = cells.next()?;
                let default = match shown.strip_prefix('`').and_then(|d| d.strip_suffix('`')) {
                    Some(code) => code,
                    None if shown == "unset" => "",
                    None => shown,
                };
                Some((name.to_owned(), default.to_owned()))
            })
            .collect();
        rows.sort();
        rows
    }

    /// The `NAME=default` lines of `.env.example`.
    fn env_example(file: &str) -> Vec<(String, String)> {
        let mut vars: Vec<(String, String)> = file
            .lines()
            .filter(|line| !line.starts_with('#'))
            .filter_map(|line| line.split_once('='))
            .map(|(name, default)| (name.to_owned(), default.to_owned()))
            .collect();
        vars.sort();
        vars
    }
}
