//! Writes: a batch of keys sent in ONE pipeline of compare-and-set scripts, each key with its own
//! (jittered) TTL, so that an older copy never replaces a newer one.

use std::time::Duration;

use redis::Pipeline;

use super::{Cache, CacheError, entry, scripts};
use crate::db::Stamp;
use crate::movies::Movie;

#[derive(Debug, Clone)]
struct MovieWrite {
    slug: String,
    value: String,
    version: i64,
    /// The unreadable bytes the reader saw: replaced whatever their version says, but only while
    /// the key still holds exactly them (a newer entry written meanwhile is kept).
    replacing: Option<Vec<u8>>,
    /// A "no such film" marker, kept only for the negative TTL.
    gone: bool,
}

/// What to write in one pipeline: films, at most one page, at most one stamp.
#[derive(Debug, Clone, Default)]
pub struct WriteBatch {
    movies: Vec<MovieWrite>,
    page: Option<(u32, String, i64)>,
    stamp: Option<Stamp>,
}

impl WriteBatch {
    /// A film to store; `replacing` the unreadable bytes its reader found in the key, if any.
    pub fn movie(&mut self, movie: &Movie, replacing: Option<Vec<u8>>) {
        let value = entry::encode_movie(movie);
        let version = movie.version;
        self.movies.push(MovieWrite { slug: movie.slug.clone(), value, version, replacing, gone: false });
    }

    /// Remembers that `slug` has no film as of catalog `version`.
    pub fn gone(&mut self, slug: &str, version: i64) {
        let value = entry::encode_gone(version);
        self.movies.push(MovieWrite { slug: slug.to_owned(), value, version, replacing: None, gone: true });
    }

    /// Page `n` holds `slugs`, read at `order_version`.
    pub fn page(&mut self, n: u32, slugs: &[&str], order_version: i64) {
        self.page = Some((n, entry::encode_page(slugs, order_version), order_version));
    }

    pub fn stamp(&mut self, stamp: Stamp) {
        self.stamp = Some(stamp);
    }

    pub fn is_empty(&self) -> bool {
        self.movies.is_empty() && self.page.is_none() && self.stamp.is_none()
    }

    fn commands(&self) -> u64 {
        self.movies.len() as u64 + u64::from(self.page.is_some()) + u64::from(self.stamp.is_some())
    }
}

/// A TTL between 90% and 100% of the setting, so that keys written together do not expire
/// together. Jitter only shortens: the setting is the longest any entry lives.
fn jitter(ttl: Duration) -> u64 {
    let secs = ttl.as_secs().max(1);
    fastrand::u64(secs - secs / 10..=secs)
}

impl Cache {
    /// Sends a batch in ONE pipeline of compare-and-set scripts.
    pub async fn write(&self, batch: &WriteBatch) -> Result<(), CacheError> {
        if batch.is_empty() {
            return Ok(());
        }
        let pipe = self.pipeline(batch);
        let load = scripts::ALL.map(|source| {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(source);
            cmd
        });
        let results: Vec<i64> = self
            .inner
            .client
            .call(batch.commands(), |mut c| async move {
                match pipe.query_async(&mut c).await {
                    Err(e) if e.code() == Some("NOSCRIPT") => {
                        // Redis restarted and forgot the scripts: load them and send the batch again.
                        for cmd in load {
                            let _: String = cmd.query_async(&mut c).await?;
                        }
                        pipe.query_async(&mut c).await
                    }
                    other => other,
                }
            })
            .await?;
        // refused: Redis held something newer
        let refused = results.iter().filter(|&&r| r != 1).count() as u64;
        self.inner.stats.stale_writes_refused(refused);
        Ok(())
    }

    fn pipeline(&self, batch: &WriteBatch) -> Pipeline {
        let super::Inner { keys, config, scripts, .. } = &*self.inner;
        let mut pipe = redis::pipe();
        if let Some(stamp) = &batch.stamp {
            evalsha(&mut pipe, &scripts.set_versioned, &[keys.meta()])
                .arg(entry::encode_stamp(stamp))
                .arg(stamp.version)
                .arg(jitter(config.movie_ttl))
                .arg("0")
                .arg("");
        }
        for m in &batch.movies {
            evalsha(&mut pipe, &scripts.set_versioned, &[keys.movie(&m.slug)])
                .arg(&m.value)
                .arg(m.version)
                .arg(jitter(if m.gone { config.negative_ttl } else { config.movie_ttl }))
                .arg(if m.replacing.is_some() { "1" } else { "0" })
                .arg(m.replacing.as_deref().unwrap_or_default());
        }
        if let Some((n, value, order_version)) = &batch.page {
            evalsha(&mut pipe, &scripts.set_page, &[keys.page(*n), keys.pages()])
                .arg(value)
                .arg(*order_version)
                .arg(jitter(config.page_ttl))
                .arg(config.page_ttl.as_secs() * 2);
        }
        pipe
    }
}

fn evalsha<'a>(pipe: &'a mut Pipeline, script: &redis::Script, keys: &[String]) -> &'a mut Pipeline {
    pipe.cmd("EVALSHA").arg(script.get_hash()).arg(keys.len()).arg(keys)
}
