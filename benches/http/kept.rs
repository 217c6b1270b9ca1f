//! Seeded databases kept between runs of the cold part and of the mix at a million films
//! (`MARQUEE_BENCH_KEEP=DIR`; the mix writes nothing): seeding a
//! million films takes 12 (SQLite) to 21 (PostgreSQL) minutes, the pages it times a few. SQLite's
//! is `DIR/cold-N.db`, PostgreSQL's the database `bench_keep_cold_N`; neither is removed at the
//! end. One is reused when it holds N films and every migration it ran is one of the current ones,
//! unchanged (a newer migration is run on it, as a server's start would); otherwise it is made
//! again and seeded.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use anyhow::{Context, Result, bail};
use sqlx::{Connection, Row};

use crate::servers::{self, Backend, Database};

/// Where kept databases go, when asked.
pub fn dir() -> Option<PathBuf> {
    std::env::var_os("MARQUEE_BENCH_KEEP").filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn migrator(backend: Backend) -> sqlx::migrate::Migrator {
    match backend {
        Backend::Sqlite => sqlx::migrate!("migrations/sqlite"),
        Backend::Postgres => sqlx::migrate!("migrations/postgres"),
    }
}

/// The kept database of `films` films, and whether it can be used as it is (else: seed it).
pub async fn database(backend: Backend, dir: &Path, films: u64) -> Result<(Database, bool)> {
    let db = match backend {
        Backend::Sqlite => {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
            Database { url: format!("sqlite://{}", dir.join(format!("cold-{films}.db")).display()) }
        }
        Backend::Postgres => Database { url: format!("postgres://postgres@127.0.0.1:5432/{}", pg_name(films)) },
    };
    match reusable(backend, &db, films).await {
        Ok(()) => {
            migrate(&db).await?;
            Ok((db, true))
        }
        Err(why) => {
            eprintln!("  the kept database {} is made again: {why:#}", db.url);
            match backend {
                Backend::Sqlite => {
                    let path = db.url.trim_start_matches("sqlite://");
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{path}{suffix}"));
                    }
                }
                Backend::Postgres => {
                    let name = pg_name(films);
                    servers::admin_sql(&format!("drop database if exists {name} with (force)")).await?;
                    servers::admin_sql(&format!("create database {name}")).await?;
                }
            }
            Ok((db, false))
        }
    }
}

fn pg_name(films: u64) -> String {
    format!("bench_keep_cold_{films}")
}

/// Why the database cannot be used as it is, if so.
async fn reusable(backend: Backend, db: &Database, films: u64) -> Result<()> {
    if backend == Backend::Sqlite && !Path::new(db.url.trim_start_matches("sqlite://")).exists() {
        bail!("no such file");
    }
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.context("open it")?;
    let count: i64 = sqlx::query("select movie_count from catalog").fetch_one(&mut conn).await?.try_get(0)?;
    if u64::try_from(count).ok() != Some(films) {
        bail!("it holds {count} films, not {films}");
    }
    let applied = sqlx::query("select version, checksum from _sqlx_migrations where success order by version")
        .fetch_all(&mut conn)
        .await?;
    let current = migrator(backend);
    for row in applied {
        let version: i64 = row.try_get(0)?;
        let checksum: Vec<u8> = row.try_get(1)?;
        match current.iter().find(|m| m.version == version) {
            Some(m) if *m.checksum == *checksum => {}
            Some(_) => bail!("migration {version} was changed since it ran there"),
            None => bail!("it ran migration {version}, which this build does not have"),
        }
    }
    let _ = conn.close().await;
    Ok(())
}

/// `marquee migrate` on it: the migrations added since it was seeded.
async fn migrate(db: &Database) -> Result<()> {
    let mut cmd = servers::command(db, Path::new(servers::BIN));
    cmd.arg("migrate").stdin(Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output()).await??;
    if !out.status.success() {
        bail!("migrate failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
