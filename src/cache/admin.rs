//! What an operator's commands ask of Redis (`marquee cache purge`, `marquee cache stats`): film
//! keys UNLINKed in batches, the stamp removed, and a look at what the cache holds. Nothing here
//! walks the keyspace: the films come from the database, the pages from the sweeps' sets.

use std::time::Duration;

use redis::{Cmd, Value};

use super::client::Connection;
use super::keys::PageOf;
use super::{Cache, CacheError, entry};
use crate::db::Stamp;

/// Keys per UNLINK. On a cluster the client splits each by slot and sends the parts at once.
const UNLINK_BATCH: usize = 1000;

/// The token's hash and the time, read by one script on the hash's node: each lease's time left is
/// measured by the clock that set it.
const READ_TOKEN: &str = "return {redis.call('TIME'), redis.call('HGETALL', KEYS[1])}";

/// What Redis is: every node's `run_id` and replication ID (see `Cache::identity`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisIdentity(String);

/// The stamp as Redis holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachedStamp {
    Missing,
    /// There, but not a stamp: every page is a miss until a read writes it again.
    Unreadable,
    Held(Stamp),
}

/// The token's hash (`movies:token`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenState {
    /// The current token; `None` when there is none (a server's next read sets one).
    pub token: Option<String>,
    /// How long ago the hash was made, by Redis's clock.
    pub age: Option<Duration>,
    pub leases: Vec<LeaseState>,
}

impl TokenState {
    /// The leases that have not run out.
    pub fn running(&self) -> impl Iterator<Item = &LeaseState> {
        self.leases.iter().filter(|l| l.left_ms > 0)
    }
}

/// One server's lease, as its hash field holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseState {
    /// The server's lease id (`lease:{id}`).
    pub server: String,
    /// Until its end, by Redis's clock (negative: ended that long ago; a server ends its lease a
    /// tenth early by its own clock).
    pub left_ms: i64,
    /// Whether it was granted with the current token.
    pub knows_current: bool,
}

/// Memory, as one Redis (or one cluster master) reports it in `INFO memory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeMemory {
    /// The master's address on a cluster; `None` for one Redis.
    pub node: Option<String>,
    pub used_memory_human: Option<String>,
    pub maxmemory_policy: Option<String>,
    /// The node's error instead, when it did not answer.
    pub error: Option<String>,
}

/// What the cache holds, for `marquee cache stats`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheState {
    pub stamp: CachedStamp,
    pub token: TokenState,
    /// Page keys listed in `movies:pages` (the listing's) and in `movies:lists` (other lists' and
    /// searches'): what the next sweeps walk.
    pub listing_pages: u64,
    pub other_pages: u64,
    pub memory: Vec<NodeMemory>,
}

impl Cache {
    /// UNLINKs each film's key and its related films' key, at most `UNLINK_BATCH` keys a command.
    /// Returns the number of keys that were there.
    pub async fn unlink_films(&self, slugs: &[String]) -> Result<u64, CacheError> {
        let keys = &self.inner.keys;
        let names: Vec<String> = slugs
            .iter()
            .map(|s| keys.movie(s))
            .chain(slugs.iter().map(|s| keys.page_of(&PageOf::Related(s.clone()))))
            .collect();
        let mut removed = 0;
        for batch in names.chunks(UNLINK_BATCH) {
            let unlink =
                |mut c: Connection| async move { redis::cmd("UNLINK").arg(batch).query_async::<u64>(&mut c).await };
            removed += self.inner.client.call(1, unlink).await?;
        }
        Ok(removed)
    }

    /// UNLINKs the stamp (`movies:stamp`): every page is a miss until a read writes it again.
    /// Whether it was there.
    pub async fn unlink_stamp(&self) -> Result<bool, CacheError> {
        let key = self.inner.keys.stamp();
        let unlink = |mut c: Connection| async move { redis::cmd("UNLINK").arg(key).query_async::<u64>(&mut c).await };
        Ok(self.inner.client.call(1, unlink).await? > 0)
    }

    /// The stamp Redis holds (`None`: none, or unreadable), trusted or not: how a relay tells
    /// that Redis went back in time.
    pub async fn stamp(&self) -> Result<Option<Stamp>, CacheError> {
        let key = self.inner.keys.stamp();
        let get = |mut c: Connection| async move { redis::Cmd::get(key).query_async::<Option<Vec<u8>>>(&mut c).await };
        let raw = self.inner.client.call_patient(get).await?;
        Ok(super::entry::decode_stamp(raw.as_deref()))
    }

    /// What Redis is now — the one, or every master of a cluster: each node's `run_id` and
    /// replication ID. A change (a restart, a failover) means it may have come back with less
    /// than it had taken (an older snapshot, a replica that had not received every write).
    pub async fn identity(&self) -> Result<RedisIdentity, CacheError> {
        let info = |mut c: Connection| async move {
            redis::cmd("INFO").arg("server").arg("replication").query_async::<Value>(&mut c).await
        };
        let reply = self.inner.client.call_patient(info).await?;
        let replies = match reply {
            Value::Map(nodes) => nodes.into_iter().map(|(_, reply)| reply).collect(),
            reply => vec![reply],
        };
        let texts: Vec<String> =
            replies.into_iter().map(|r| redis::from_redis_value::<String>(r).unwrap_or_default()).collect();
        let replicas = texts.iter().map(|t| replicas(t)).min().unwrap_or(0);
        self.inner.replicas.store(replicas, std::sync::atomic::Ordering::Relaxed);
        let mut nodes: Vec<String> = texts.iter().map(|t| identity(t)).collect();
        nodes.sort();
        Ok(RedisIdentity(nodes.join(" ")))
    }

    /// Whether `now` differs from the identity last remembered (`false` before the first).
    pub fn is_replaced(&self, now: &RedisIdentity) -> bool {
        self.inner.seen_redis.lock().map_or(true, |seen| seen.as_ref().is_some_and(|before| before != now))
    }

    /// Remembers `now` as what Redis is: call once what a change calls for has been done, so that
    /// a check cut short (an error after the identity was read) sees the change again next time.
    pub fn remember(&self, now: RedisIdentity) {
        if let Ok(mut seen) = self.inner.seen_redis.lock() {
            *seen = Some(now);
        }
    }

    /// The token's hash: the current token, its age, and each server's lease.
    pub async fn token_state(&self) -> Result<TokenState, CacheError> {
        let key = self.inner.keys.token();
        let read = |mut c: Connection| async move {
            let mut cmd = redis::cmd("EVAL");
            cmd.arg(READ_TOKEN).arg(1).arg(key);
            cmd.query_async::<((u64, u64), Vec<(String, String)>)>(&mut c).await
        };
        let ((secs, micros), fields) = self.inner.client.call(1, read).await?;
        Ok(token_state(secs * 1000 + micros / 1000, fields))
    }

    /// What the cache holds: the stamp, the token and the leases, the page keys the sweeps would
    /// walk, and each master's memory.
    pub async fn state(&self) -> Result<CacheState, CacheError> {
        let keys = &self.inner.keys;
        let meta = keys.stamp();
        let get = |mut c: Connection| async move { Cmd::get(meta).query_async::<Option<Vec<u8>>>(&mut c).await };
        let stamp = match self.inner.client.call(1, get).await? {
            None => CachedStamp::Missing,
            Some(raw) => entry::decode_stamp(Some(&raw)).map_or(CachedStamp::Unreadable, CachedStamp::Held),
        };
        let token = self.token_state().await?;
        let listing_pages = self.scard(keys.pages()).await?;
        let other_pages = self.scard(keys.lists()).await?;
        let memory = self.memory().await?;
        Ok(CacheState { stamp, token, listing_pages, other_pages, memory })
    }

    async fn scard(&self, set: String) -> Result<u64, CacheError> {
        self.inner.client.call(1, |mut c| async move { Cmd::scard(set).query_async::<u64>(&mut c).await }).await
    }

    /// `INFO memory`: of the one Redis, or of every master of a cluster (the client asks them all
    /// and answers with a map of node to reply).
    async fn memory(&self) -> Result<Vec<NodeMemory>, CacheError> {
        let info =
            |mut c: Connection| async move { redis::cmd("INFO").arg("memory").query_async::<Value>(&mut c).await };
        let reply = self.inner.client.call(1, info).await?;
        Ok(match reply {
            Value::Map(nodes) => {
                let mut nodes: Vec<NodeMemory> = nodes
                    .into_iter()
                    .map(|(node, reply)| {
                        let node = redis::from_redis_value::<String>(node).ok();
                        match reply {
                            Value::ServerError(e) => NodeMemory {
                                node,
                                used_memory_human: None,
                                maxmemory_policy: None,
                                error: Some(e.to_string()),
                            },
                            reply => NodeMemory { node, ..node_memory(reply) },
                        }
                    })
                    .collect();
                nodes.sort_by(|a, b| a.node.cmp(&b.node));
                nodes
            }
            reply => vec![node_memory(reply)],
        })
    }
}

/// The hash's fields read at `now` (Redis's milliseconds).
fn token_state(now: u64, fields: Vec<(String, String)>) -> TokenState {
    let now = i64::try_from(now).unwrap_or(i64::MAX);
    let mut state = TokenState::default();
    let mut leases = Vec::new();
    for (field, value) in fields {
        match field.as_str() {
            "token" => state.token = Some(value),
            "born" => {
                state.age =
                    value.parse::<i64>().ok().map(|born| Duration::from_millis((now - born).max(0).unsigned_abs()))
            }
            _ => {
                // `lease:{id}` = "{ends} {token it knows}" (see lua/renew.lua)
                if let Some(server) = field.strip_prefix("lease:")
                    && let Some((ends, knows)) = value.split_once(' ')
                    && let Ok(ends) = ends.parse::<i64>()
                {
                    leases.push((server.to_owned(), ends - now, knows.to_owned()));
                }
            }
        }
    }
    state.leases = leases
        .into_iter()
        .map(|(server, left_ms, knows)| LeaseState {
            server,
            left_ms,
            knows_current: state.token.as_deref() == Some(knows.as_str()),
        })
        .collect();
    state.leases.sort_by(|a, b| a.server.cmp(&b.server));
    state
}

/// One field of an `INFO` reply.
fn info_field<'a>(text: &'a str, name: &str) -> &'a str {
    text.lines().find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':'))).unwrap_or("").trim()
}

/// A node's `run_id` and replication ID, from its `INFO server replication`.
fn identity(text: &str) -> String {
    format!("{}/{}", info_field(text, "run_id"), info_field(text, "master_replid"))
}

/// How many replicas a node has connected (0 for a replica itself), from its `INFO replication`.
fn replicas(text: &str) -> u64 {
    if info_field(text, "role") != "master" {
        return 0;
    }
    info_field(text, "connected_slaves").parse().unwrap_or(0)
}

/// The two lines of `INFO memory` the stats show.
fn node_memory(reply: Value) -> NodeMemory {
    let text = redis::from_redis_value::<String>(reply).unwrap_or_default();
    let field = |name: &str| {
        text.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')).map(|v| v.trim().to_owned())
    };
    NodeMemory {
        node: None,
        used_memory_human: field("used_memory_human"),
        maxmemory_policy: field("maxmemory_policy"),
        error: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_hash_reads_as_a_token_an_age_and_leases() {
        let fields = [
            ("born", "1000"),
            ("token", "42"),
            ("lease:b", "5500 42"),
            ("lease:a", "4000 41"),
            ("lease:broken", "soon"),
        ];
        let state = token_state(5000, fields.iter().map(|(f, v)| ((*f).to_owned(), (*v).to_owned())).collect());
        assert_eq!(state.token.as_deref(), Some("42"));
        assert_eq!(state.age, Some(Duration::from_secs(4)));
        let expect =
            |server: &str, left_ms, knows_current| LeaseState { server: server.into(), left_ms, knows_current };
        assert_eq!(state.leases, vec![expect("a", -1000, false), expect("b", 500, true)]);
        assert_eq!(state.running().count(), 1);
        assert_eq!(token_state(0, Vec::new()), TokenState::default());
    }

    #[test]
    fn info_memory_gives_its_two_lines() {
        let info = "# Memory\r\nused_memory:1048576\r\nused_memory_human:1.00M\r\nmaxmemory_policy:noeviction\r\n";
        let memory = node_memory(Value::BulkString(info.as_bytes().to_vec()));
        assert_eq!(memory.used_memory_human.as_deref(), Some("1.00M"));
        assert_eq!(memory.maxmemory_policy.as_deref(), Some("noeviction"));
        assert_eq!(node_memory(Value::Nil).used_memory_human, None);
    }
}
