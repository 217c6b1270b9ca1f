//! The bench talking to Redis directly: cleanup and fills, the invalidation sweeps timed from
//! outside the server, and the design's two open questions (films as hashes or JSON strings; MSET
//! or a pipeline of SET … EX for bulk writes).

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use redis::AsyncConnectionConfig;
use redis::aio::MultiplexedConnection;
use serde::Deserialize;

use marquee::movies::Movie;

/// The Redis every server of the bench and the bench itself use.
pub const REDIS: &str = "redis://127.0.0.1:6379";

pub type Conn = MultiplexedConnection;

pub async fn connect() -> Result<Conn> {
    let client = redis::Client::open(REDIS)?;
    let config = AsyncConnectionConfig::new()
        .set_response_timeout(Some(Duration::from_secs(120)))
        .set_connection_timeout(Some(Duration::from_secs(5)));
    client.get_multiplexed_async_connection_with_config(&config).await.context("connect to Redis at 127.0.0.1:6379")
}

/// UNLINKs every key starting with `prefix` (SCAN MATCH, COUNT 1000). Returns how many.
pub async fn unlink_prefix(c: &mut Conn, prefix: &str) -> Result<u64> {
    let pattern = format!("{prefix}*");
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).query_async(c).await?;
        if !keys.is_empty() {
            n += keys.len() as u64;
            redis::cmd("UNLINK").arg(&keys).query_async::<()>(c).await?;
        }
        if next == 0 {
            return Ok(n);
        }
        cursor = next;
    }
}

/// Redis's own view of what one server sends: a MONITOR connection counting the commands that
/// touch keys under `prefix`, at top level and inside scripts ("[0 lua]"). Redis is shared with
/// other users here, so `INFO commandstats` deltas would count their traffic too.
pub struct Monitor {
    task: tokio::task::JoinHandle<Result<(u64, u64)>>,
    marker: String,
}

impl Monitor {
    pub async fn start(prefix: &str) -> Result<Self> {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
        let stream = tokio::net::TcpStream::connect("127.0.0.1:6379").await?;
        let (read, mut write) = stream.into_split();
        write.write_all(b"MONITOR\r\n").await?;
        let mut lines = BufReader::new(read).lines();
        let ok = lines.next_line().await?.unwrap_or_default();
        anyhow::ensure!(ok.starts_with("+OK"), "MONITOR answered {ok:?}");
        let marker = format!("{prefix}monitor-end-{}", fastrand::u64(..));
        let (prefix, end) = (prefix.to_owned(), marker.clone());
        let task = tokio::spawn(async move {
            let _write = write; // the connection stays open while we read
            let (mut top, mut lua) = (0, 0);
            while let Some(line) = lines.next_line().await? {
                if line.contains(&end) {
                    return Ok((top, lua));
                }
                if line.contains(&prefix) {
                    if line.contains(" lua]") { lua += 1 } else { top += 1 }
                }
            }
            anyhow::bail!("MONITOR connection closed")
        });
        Ok(Self { task, marker })
    }

    /// (commands at top level, commands inside scripts) since `start`.
    pub async fn finish(self, c: &mut Conn) -> Result<(u64, u64)> {
        redis::cmd("ECHO").arg(&self.marker).query_async::<String>(c).await?;
        tokio::time::timeout(Duration::from_secs(30), self.task).await.context("MONITOR did not see its marker")??
    }
}

/// `INFO` field as a number.
async fn info_field(c: &mut Conn, section: &str, field: &str) -> Result<f64> {
    let text: String = redis::cmd("INFO").arg(section).query_async(c).await?;
    Ok(text
        .lines()
        .find_map(|l| l.strip_prefix(field).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0))
}

pub async fn used_memory(c: &mut Conn) -> Result<f64> {
    info_field(c, "memory", "used_memory").await
}

/// Seconds of CPU Redis has used (user + system).
async fn redis_cpu(c: &mut Conn) -> Result<f64> {
    Ok(info_field(c, "cpu", "used_cpu_user").await? + info_field(c, "cpu", "used_cpu_sys").await?)
}

/// Seconds of CPU this process has used.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which ends with ')'): utime is the 12th, stime the 13th
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// The average of `MEMORY USAGE key SAMPLES 0` over `keys`.
pub async fn memory_usage(c: &mut Conn, keys: &[String]) -> Result<f64> {
    let mut total = 0u64;
    let mut n = 0u64;
    for chunk in keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("MEMORY").arg("USAGE").arg(k).arg("SAMPLES").arg(0);
        }
        let sizes: Vec<Option<u64>> = pipe.query_async(c).await?;
        for s in sizes.into_iter().flatten() {
            total += s;
            n += 1;
        }
    }
    Ok(total as f64 / n.max(1) as f64)
}

/// marquee's own sweep, replayed from outside: SSCAN the set of page keys (COUNT 100), each
/// step's keys UNLINKed and SREMed in one pipeline. Returns the time and the keys swept.
pub async fn sweep_set(c: &mut Conn, set: &str) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, members): (u64, Vec<String>) =
            redis::cmd("SSCAN").arg(set).arg(cursor).arg("COUNT").arg(100).query_async(c).await?;
        if !members.is_empty() {
            n += members.len() as u64;
            let mut pipe = redis::pipe();
            pipe.cmd("UNLINK").arg(&members).ignore();
            pipe.cmd("SREM").arg(set).arg(&members).ignore();
            pipe.query_async::<()>(c).await?;
        }
        if next == 0 {
            return Ok((start.elapsed(), n));
        }
        cursor = next;
    }
}

/// The plain design: `SCAN MATCH {prefix}movies:page:* COUNT 100` over the whole keyspace, each
/// step's keys UNLINKed.
pub async fn sweep_scan(c: &mut Conn, pattern: &str) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<String>) =
            redis::cmd("SCAN").arg(cursor).arg("MATCH").arg(pattern).arg("COUNT").arg(100).query_async(c).await?;
        if !keys.is_empty() {
            n += keys.len() as u64;
            redis::cmd("UNLINK").arg(&keys).query_async::<()>(c).await?;
        }
        if next == 0 {
            return Ok((start.elapsed(), n));
        }
        cursor = next;
    }
}

pub async fn dbsize(c: &mut Conn) -> Result<u64> {
    Ok(redis::cmd("DBSIZE").query_async(c).await?)
}

/// Writes `films` as `{prefix}movie:{slug}` JSON strings (the server's own encoding), pipelined.
pub async fn fill_films(c: &mut Conn, prefix: &str, films: impl Iterator<Item = Movie>) -> Result<(Duration, u64)> {
    let start = Instant::now();
    let mut n = 0u64;
    let mut pipe = redis::pipe();
    let mut in_pipe = 0;
    for film in films {
        let value = serde_json::to_string(&film)?;
        pipe.cmd("SET").arg(format!("{prefix}movie:{}", film.slug)).arg(value).arg("EX").arg(3600).ignore();
        in_pipe += 1;
        n += 1;
        if in_pipe == 2000 {
            pipe.query_async::<()>(c).await?;
            pipe = redis::pipe();
            in_pipe = 0;
        }
    }
    if in_pipe > 0 {
        pipe.query_async::<()>(c).await?;
    }
    Ok((start.elapsed(), n))
}

/// Writes page keys 1..=pages as the server would (a JSON array of 24 slugs, TTL 300 s, recorded
/// in the set of page keys). The slugs are only filler: the sweep does not read them.
pub async fn fill_pages(c: &mut Conn, keys: &marquee::cache::Keys, pages: u32, slugs: &[String]) -> Result<()> {
    let value = serde_json::to_string(&slugs.iter().take(24).collect::<Vec<_>>())?;
    let set = keys.pages();
    for chunk in (1..=pages).collect::<Vec<_>>().chunks(2000) {
        let mut pipe = redis::pipe();
        let names: Vec<String> = chunk.iter().map(|&n| keys.page(n)).collect();
        for k in &names {
            pipe.cmd("SET").arg(k).arg(&value).arg("EX").arg(300).ignore();
        }
        pipe.cmd("SADD").arg(&set).arg(&names).ignore();
        pipe.cmd("EXPIRE").arg(&set).arg(600).ignore();
        pipe.query_async::<()>(c).await?;
    }
    Ok(())
}

// ---- the open questions ----------------------------------------------------------------------

/// What a listing card needs of a film.
#[derive(Debug, Deserialize)]
struct CardFields {
    #[allow(dead_code)]
    v: i64,
    slug: String,
    title: String,
    release_date: String,
    genre: Option<String>,
    director: Option<String>,
    imdb_rating: Option<f64>,
    mpaa_rating: Option<String>,
}

/// A card as the server builds it (the shown strings), so every variant does the same work after
/// its decode.
#[allow(dead_code)]
struct Card {
    slug: String,
    title: String,
    year: u16,
    genre: Option<String>,
    director: Option<String>,
    rating: Option<String>,
    mpaa: Option<String>,
}

fn card_of_movie(m: Movie) -> Card {
    Card {
        year: m.release_date.year(),
        rating: m.imdb_rating.map(|r| format!("{r:.1}")),
        slug: m.slug,
        title: m.title,
        genre: m.genre,
        director: m.director,
        mpaa: m.mpaa_rating,
    }
}

fn year_of(date: &str) -> u16 {
    date.get(..4).and_then(|y| y.parse().ok()).unwrap_or(0)
}

fn card_of_fields(f: CardFields) -> Card {
    Card {
        year: year_of(&f.release_date),
        rating: f.imdb_rating.map(|r| format!("{r:.1}")),
        slug: f.slug,
        title: f.title,
        genre: f.genre,
        director: f.director,
        mpaa: f.mpaa_rating,
    }
}

/// The hash fields of a film (absent values are left out).
fn hash_fields(m: &Movie) -> Vec<(&'static str, String)> {
    let mut f = vec![
        ("v", m.version.to_string()),
        ("slug", m.slug.clone()),
        ("title", m.title.clone()),
        ("release_date", m.release_date.to_string()),
    ];
    let mut text = |name, v: &Option<String>| {
        if let Some(v) = v {
            f.push((name, v.clone()));
        }
    };
    text("genre", &m.genre);
    text("director", &m.director);
    text("mpaa_rating", &m.mpaa_rating);
    text("distributor", &m.distributor);
    text("source", &m.source);
    text("creative_type", &m.creative_type);
    let mut num = |name, v: Option<String>| {
        if let Some(v) = v {
            f.push((name, v));
        }
    };
    num("running_time_min", m.running_time_min.map(|x| x.to_string()));
    num("imdb_rating", m.imdb_rating.map(|x| x.to_string()));
    num("imdb_votes", m.imdb_votes.map(|x| x.to_string()));
    num("rotten_tomatoes_rating", m.rotten_tomatoes_rating.map(|x| x.to_string()));
    num("us_gross", m.us_gross.map(|x| x.to_string()));
    num("worldwide_gross", m.worldwide_gross.map(|x| x.to_string()));
    num("production_budget", m.production_budget.map(|x| x.to_string()));
    f
}

const CARD_FIELDS: [&str; 7] = ["slug", "title", "release_date", "genre", "director", "imdb_rating", "mpaa_rating"];

fn card_of_hash(v: Vec<Option<String>>) -> Option<Card> {
    let mut it = v.into_iter();
    let slug = it.next()??;
    let title = it.next()??;
    let date = it.next()??;
    let genre = it.next().flatten();
    let director = it.next().flatten();
    let rating = it.next().flatten().and_then(|r| r.parse::<f64>().ok()).map(|r| format!("{r:.1}"));
    let mpaa = it.next().flatten();
    Some(Card { year: year_of(&date), slug, title, genre, director, rating, mpaa })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// The current design: one MGET of 24 JSON strings, each decoded into a whole `Movie`.
    JsonMovie,
    /// The same MGET, decoded into only the card's fields.
    JsonCard,
    /// Hashes: a pipeline of 24 HMGETs of the card's 7 fields.
    Hash,
}

async fn read_page(c: &mut Conn, prefix: &str, how: Read, slugs: &[String]) -> Result<usize> {
    match how {
        Read::JsonMovie | Read::JsonCard => {
            let keys: Vec<String> = slugs.iter().map(|s| format!("{prefix}json:{s}")).collect();
            let raw: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&keys).query_async(c).await?;
            let mut cards = Vec::with_capacity(raw.len());
            for r in raw.iter().flatten() {
                let card = if how == Read::JsonMovie {
                    card_of_movie(serde_json::from_slice::<Movie>(r)?)
                } else {
                    card_of_fields(serde_json::from_slice::<CardFields>(r)?)
                };
                cards.push(card);
            }
            Ok(cards.len())
        }
        Read::Hash => {
            let mut pipe = redis::pipe();
            for s in slugs {
                pipe.cmd("HMGET").arg(format!("{prefix}hash:{s}")).arg(&CARD_FIELDS[..]);
            }
            let raw: Vec<Vec<Option<String>>> = pipe.query_async(c).await?;
            Ok(raw.into_iter().filter_map(card_of_hash).count())
        }
    }
}

/// Figures of one way of reading pages.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadFigures {
    pub pages_per_sec: f64,
    pub redis_cpu_us: f64,
    pub client_cpu_us: f64,
    pub seq_us: f64,
}

/// The figures of the two open questions.
pub struct Design {
    pub films: usize,
    pub json_bytes: f64,
    pub hash_bytes: f64,
    pub hash_listpack_share: f64,
    pub reads: Vec<(Read, ReadFigures)>,
    /// (films per write, [set ex, mset + expire, evalsha cas] median ms)
    pub writes: Vec<(usize, [f64; 3])>,
}

use marquee::cache::SET_VERSIONED;

pub async fn design(prefix: &str, secs: f64, rounds: usize) -> Result<Design> {
    let mut c = connect().await?;
    let films: Vec<Movie> = marquee::dataset::parse(marquee::dataset::MOVIES_JSON)?
        .films
        .into_iter()
        .map(|m| Movie { version: 1, ..m })
        .collect();

    // (a) the same films both ways
    for chunk in films.chunks(500) {
        let mut pipe = redis::pipe();
        for m in chunk {
            pipe.cmd("SET").arg(format!("{prefix}json:{}", m.slug)).arg(serde_json::to_string(m)?).arg("EX").arg(3600);
            pipe.ignore();
            let key = format!("{prefix}hash:{}", m.slug);
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (k, v) in hash_fields(m) {
                hset.arg(k).arg(v);
            }
            pipe.add_command(hset).ignore();
            pipe.cmd("EXPIRE").arg(&key).arg(3600).ignore();
        }
        pipe.query_async::<()>(&mut c).await?;
    }
    let json_keys: Vec<String> = films.iter().map(|m| format!("{prefix}json:{}", m.slug)).collect();
    let hash_keys: Vec<String> = films.iter().map(|m| format!("{prefix}hash:{}", m.slug)).collect();
    let json_bytes = memory_usage(&mut c, &json_keys).await?;
    let hash_bytes = memory_usage(&mut c, &hash_keys).await?;
    let mut listpack = 0usize;
    for chunk in hash_keys.chunks(500) {
        let mut pipe = redis::pipe();
        for k in chunk {
            pipe.cmd("OBJECT").arg("ENCODING").arg(k);
        }
        let enc: Vec<String> = pipe.query_async(&mut c).await?;
        listpack += enc.iter().filter(|e| e.as_str() == "listpack" || e.as_str() == "ziplist").count();
    }

    let pages: Vec<Vec<String>> =
        films.chunks(24).filter(|p| p.len() == 24).map(|p| p.iter().map(|m| m.slug.clone()).collect()).collect();
    let variants = [Read::JsonMovie, Read::JsonCard, Read::Hash];
    let mut totals: Vec<(Read, f64, f64, f64, f64, Vec<f64>)> =
        variants.iter().map(|&v| (v, 0.0, 0.0, 0.0, 0.0, Vec::new())).collect();
    for _ in 0..rounds {
        for (how, pages_done, time, redis_s, own_s, seq) in &mut totals {
            // throughput: 16 readers sharing one multiplexed connection, like the server's
            let r0 = redis_cpu(&mut c).await?;
            let o0 = own_cpu();
            let start = Instant::now();
            let deadline = start + Duration::from_secs_f64(secs);
            let mut tasks = Vec::new();
            for t in 0..16usize {
                let (mut c, pages, prefix, how) = (c.clone(), pages.clone(), prefix.to_owned(), *how);
                tasks.push(tokio::spawn(async move {
                    let mut done = 0u64;
                    let mut i = t * 7;
                    while Instant::now() < deadline {
                        let page = &pages[i % pages.len()];
                        read_page(&mut c, &prefix, how, page).await?;
                        done += 1;
                        i += 1;
                    }
                    anyhow::Ok(done)
                }));
            }
            for t in tasks {
                *pages_done += t.await?? as f64;
            }
            *time += start.elapsed().as_secs_f64();
            *own_s += own_cpu() - o0;
            *redis_s += redis_cpu(&mut c).await? - r0;
            // latency: one reader, one page at a time
            for page in pages.iter().take(100) {
                let t = Instant::now();
                read_page(&mut c, prefix, *how, page).await?;
                seq.push(t.elapsed().as_secs_f64() * 1e6);
            }
        }
    }
    let reads = totals
        .into_iter()
        .map(|(how, pages_done, time, redis_s, own_s, mut seq)| {
            seq.sort_by(f64::total_cmp);
            let per = |s: f64| s * 1e6 / pages_done.max(1.0);
            (
                how,
                ReadFigures {
                    pages_per_sec: pages_done / time.max(1e-9),
                    redis_cpu_us: per(redis_s),
                    client_cpu_us: per(own_s),
                    seq_us: crate::client::percentile(&seq, 50.0),
                },
            )
        })
        .collect();

    // (b) bulk writes, the three ways alternating, each starting from absent keys
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SET_VERSIONED).query_async(&mut c).await?;
    let mut writes = Vec::new();
    for (n, reps) in [(24usize, 150usize), (1000, 15)] {
        let batch: Vec<(String, String)> = films
            .iter()
            .take(n)
            .map(|m| Ok((format!("{prefix}w:{}", m.slug), serde_json::to_string(m)?)))
            .collect::<Result<_>>()?;
        let keys: Vec<&String> = batch.iter().map(|(k, _)| k).collect();
        let mut times: [Vec<f64>; 3] = Default::default();
        for _ in 0..reps {
            for (way, out) in times.iter_mut().enumerate() {
                redis::cmd("UNLINK").arg(&keys).query_async::<()>(&mut c).await?;
                let mut pipe = redis::pipe();
                match way {
                    0 => {
                        for (k, v) in &batch {
                            pipe.cmd("SET").arg(k).arg(v).arg("EX").arg(3600).ignore();
                        }
                    }
                    1 => {
                        let mut mset = redis::cmd("MSET");
                        for (k, v) in &batch {
                            mset.arg(k).arg(v);
                        }
                        pipe.add_command(mset).ignore();
                        for (k, _) in &batch {
                            pipe.cmd("EXPIRE").arg(k).arg(3600).ignore();
                        }
                    }
                    _ => {
                        for (k, v) in &batch {
                            pipe.cmd("EVALSHA").arg(&sha).arg(1).arg(k).arg(v).arg(1).arg(3600).arg("0").ignore();
                        }
                    }
                }
                let t = Instant::now();
                pipe.query_async::<()>(&mut c).await?;
                out.push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            crate::client::percentile(v, 50.0)
        };
        let [a, b, d] = &mut times;
        writes.push((n, [med(a), med(b), med(d)]));
    }
    let _ = unlink_prefix(&mut c, prefix).await;
    Ok(Design {
        films: films.len(),
        json_bytes,
        hash_bytes,
        hash_listpack_share: listpack as f64 / hash_keys.len().max(1) as f64,
        reads,
        writes,
    })
}
