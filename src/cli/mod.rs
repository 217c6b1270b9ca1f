//! The command line: the subcommands, and what each one does once the config is read.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use clap::{Parser, Subcommand};

use crate::app::{self, Application};
use crate::config::Config;
use crate::dataset;
use crate::stats::Stats;

mod cache;

pub use cache::{CacheCommand, PurgeArgs};

/// marquee: a movie catalog served from a Redis cache. Configured by environment variables
/// (see .env.example).
#[derive(Parser)]
#[command(version)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the site (the default): migrate, load the dataset into an empty catalog, listen.
    Serve,
    /// Run the database migrations and exit.
    Migrate,
    /// Import a JSON file in the dataset's format; importing it again changes nothing.
    Import { file: PathBuf },
    /// Add deterministic synthetic films (numbered 1..=N: running it again adds none).
    Seed {
        #[arg(long, env = "SEED_COUNT")]
        count: u64,
    },
    /// Look at the cache, or invalidate it on every server (after the catalog was changed by hand).
    Cache {
        #[command(subcommand)]
        command: CacheCommand,
    },
}

/// Runs one subcommand (none is `serve`).
pub async fn run(command: Option<Command>, config: Config) -> anyhow::Result<ExitCode> {
    match command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let app = Application::build(config).await?;
            tracing::info!(addr = %app.local_addr(), "listening");
            app.run(app::shutdown_signal()).await?;
        }
        Command::Migrate => {
            let db = app::open_db(&config, Arc::new(Stats::default()), Default::default()).await?;
            eprintln!("migrations are up to date");
            db.close().await;
        }
        Command::Import { file } => {
            let bytes = std::fs::read(&file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
            let data = match dataset::parse(&bytes) {
                Ok(data) => data,
                Err(e) => {
                    eprintln!("marquee: {}: {e}; nothing was imported", file.display());
                    return Ok(ExitCode::from(2));
                }
            };
            let db = app::open_db(&config, Arc::new(Stats::default()), Default::default()).await?;
            let rejected = data.rejected.len();
            let summary = db.import(data.movies).await?;
            for r in &data.rejected {
                eprintln!("rejected row {}: {} ({})", r.row, r.reason, r.title.as_deref().unwrap_or("no title"));
            }
            eprintln!(
                "imported {} new, updated {}, unchanged {}, rejected {rejected}",
                summary.imported, summary.updated, summary.unchanged
            );
            db.close().await;
        }
        Command::Seed { count } => {
            let db = app::open_db(&config, Arc::new(Stats::default()), Default::default()).await?;
            let started = Instant::now();
            let added = db
                .seed(dataset::synthetic(1, count), |n| {
                    eprintln!("  {n} new films after {:.1} s", started.elapsed().as_secs_f64());
                })
                .await?;
            eprintln!("seeded {added} new films of {count} in {:.1} s", started.elapsed().as_secs_f64());
            // closed, not dropped at exit: SQLite's last connection to close folds its write-ahead
            // log into the database and removes it (a seed of a million films left 1.2 GB of it for
            // the next start to read back)
            db.close().await;
        }
        Command::Cache { command } => return cache::run(command, config).await,
    }
    Ok(ExitCode::SUCCESS)
}
