//! The application: builds everything from a `Config`, binds its listener, serves until told to
//! stop, then drains.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::cache::Cache;
use crate::config::Config;
use crate::dataset;
use crate::db::Db;
use crate::deferred::Deferred;
use crate::hooks::Hooks;
use crate::service::MovieService;
use crate::stats::Stats;
use crate::web::{self, AppState, Shared};

pub struct Application {
    listener: TcpListener,
    state: AppState,
    /// The tests' seams, handed to the database, the cache and the service (see `hooks`).
    hooks: Hooks,
}

/// Connects to the database and runs the migrations.
pub async fn open_db(config: &Config, stats: Arc<Stats>, hooks: Hooks) -> anyhow::Result<Db> {
    open(config, stats, hooks, false).await
}

/// The service without a server, for the command line's cache commands: the database (migrated)
/// and the cache.
pub async fn open_service(config: &Config) -> anyhow::Result<MovieService> {
    let (stats, hooks) = (Arc::new(Stats::default()), Hooks::default());
    let db = open(config, stats.clone(), hooks.clone(), false).await?;
    let cache = Cache::new(config.cache.clone(), stats.clone(), hooks.clone())?;
    Ok(MovieService::new(db, cache, Deferred::new(stats.clone()), stats, config.page_size, hooks))
}

/// Connects, migrates and, when `load` is set, loads the embedded dataset into an empty catalog,
/// under the database's setup lock: of several servers started at once on an empty database, one
/// migrates and loads it while the others wait, then find it done.
async fn open(config: &Config, stats: Arc<Stats>, hooks: Hooks, load: bool) -> anyhow::Result<Db> {
    let db = Db::connect(&config.database_url, config.db_max_connections, config.db_heavy, stats, hooks).await?;
    let lock = db.setup_lock().await?;
    db.migrate().await?;
    if load && db.count().await? == 0 {
        // an empty catalog leaves the cache nothing to correct: the first load is not logged
        db.set_cache_log(false);
        let data = dataset::parse(dataset::MOVIES_JSON)?;
        let summary = db.import(data.movies).await?;
        tracing::info!(imported = summary.imported, rejected = data.rejected.len(), "loaded the embedded dataset");
    }
    // with no cache there is nothing to tell (and no relay to prune the log)
    db.set_cache_log(config.cache.redis.is_some());
    lock.release().await?;
    Ok(db)
}

impl Application {
    /// Opens the database (migrating it, and loading the dataset into an empty one), sets up the
    /// cache (Redis may be down: the site serves from the database until it is back) and binds.
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        crate::telemetry::prometheus();
        let (stats, hooks) = (Arc::new(Stats::default()), Hooks::from_env());
        let db = open(&config, stats.clone(), hooks.clone(), config.load_dataset).await?;
        let cache = Cache::new(config.cache.clone(), stats.clone(), hooks.clone())?;
        let deferred = Deferred::new(stats.clone());
        let service = MovieService::new(db, cache, deferred.clone(), stats.clone(), config.page_size, hooks.clone());
        let listener = TcpListener::bind(config.listen_addr).await?;
        let bad_tokens = Arc::new(web::bad_tokens(config.bad_tokens_per_minute));
        // without a cache there is no token to check kept pages against: nothing is kept
        let budget = if config.cache.redis.is_some() { config.cache.kept_bytes } else { 0 };
        let pages = web::page_cache::PageCacheLayer::new(budget, config.cache.page_ttl, service.clone(), stats.clone());
        if service.caches() {
            // the relay's first look at the cache log, so that the first requests may use Redis
            // (until it has looked, nothing is read from it: see `cache::trust`)
            if let Err(e) = service.relay_tick().await {
                tracing::warn!(error = %e, "cache log: not applied yet; Redis unused until it is");
            }
            service.take_lease().await;
        }
        if pages.is_on() {
            // a first reader of the token who finds none sets one but keeps nothing under it: set it
            // now, so that the first pages asked for can be kept (Redis down: nothing, at once)
            service.token().await;
        }
        let config = Arc::new(config);
        let state =
            AppState::new(Shared { service, deferred, stats, bad_tokens, config, pages, cards: Default::default() });
        Ok(Self { listener, state, hooks })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap_or_else(|_| self.state.config.listen_addr)
    }

    pub fn port(&self) -> u16 {
        self.local_addr().port()
    }

    /// What this application serves (every layer and the router), for sending it requests
    /// without a socket.
    pub fn app(&self) -> web::App {
        web::app(self.state.clone(), &self.state.config.static_dir)
    }

    pub fn service(&self) -> &MovieService {
        &self.state.service
    }

    /// The counters this instance keeps (what `/metrics` publishes).
    pub fn stats(&self) -> &Arc<Stats> {
        &self.state.stats
    }

    /// The seams a test holds (see `hooks`).
    pub fn hooks(&self) -> &Hooks {
        &self.hooks
    }

    /// The cache writes deferred past their responses.
    pub fn deferred(&self) -> &Deferred {
        &self.state.deferred
    }

    /// Serves until `shutdown` resolves; then stops accepting, lets requests in flight finish
    /// (bounded by the request timeout), waits for pending cache writes (bounded by
    /// SHUTDOWN_TIMEOUT_SECS) and closes the database.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let app = self.app();
        let Self { listener, state, .. } = self;
        // in-flight requests are bounded by the request timeout; a second more to send the answers
        let drain = state.config.request_timeout + Duration::from_secs(1);
        // The recorder keeps every histogram sample until it is drained, which otherwise happens
        // only when /metrics is scraped: drain it every few seconds, or memory grows per request.
        let upkeep = tokio::spawn(async {
            let mut every = tokio::time::interval(Duration::from_secs(5));
            loop {
                every.tick().await;
                crate::telemetry::prometheus().run_upkeep();
            }
        });
        // what Redis did not learn of committed writes, applied from the database's cache log
        let relay = state.service.caches().then(|| tokio::spawn(state.service.clone().relay()));
        // the lease that lets kept pages be answered, and reads be shared, with no round trip to
        // learn the token (see `cache::lease`)
        let lease = state.service.caches().then(|| tokio::spawn(state.service.hold_lease()));
        crate::server::serve(listener, app, shutdown, drain).await;
        upkeep.abort();
        if let Some(lease) = lease {
            lease.abort();
            state.service.leave().await;
        }
        // what it has not applied stays in the log, for the next server that runs
        if let Some(relay) = relay {
            relay.abort();
        }
        let deferred = &state.deferred;
        let pending = deferred.pending();
        if deferred.drain(state.config.shutdown_timeout).await {
            tracing::info!(pending, "pending cache writes finished");
        } else {
            tracing::warn!(left = deferred.pending(), "shutdown timeout: some cache writes were not finished");
        }
        state.service.close().await;
        Ok(())
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: no new requests; finishing those in flight");
}
