//! The design's two open questions, asked of Redis directly: films as hashes or as JSON strings
//! (bytes, and reading a page of cards), and MSET or a pipeline of SET … EX (or the cache's own
//! compare-and-set script) for bulk writes. The measurements, and their rows of the table.

use std::time::{Duration, Instant};

use anyhow::Result;
use serde::Deserialize;

use marquee::cache::SET_VERSIONED;
use marquee::movies::Movie;

use crate::client;
use crate::lab::{self, Conn};
use crate::opts::Opts;
use crate::report::{Row, ms, thousands, times};
use crate::servers::Janitor;

/// The rows of the design part (its keys under a prefix of their own).
pub async fn rows(o: &Opts, j: &Janitor, rows: &mut Vec<Row>) -> Result<()> {
    let prefix = j.prefix("lab");
    let d = measure(&prefix, if o.quick { 0.5 } else { 1.5 }, o.rounds).await?;
    let scope = "Redis · design";
    rows.push(
        Row::new(scope, format!("(a) bytes per film, {} films (MEMORY USAGE)", thousands(d.movies as f64)))
            .ours(format!("JSON string: {:.0} B", d.json_bytes))
            .other(format!("hash: {:.0} B ({:.0}% listpack)", d.hash_bytes, d.hash_listpack_share * 100.0))
            .ratio_text(format!("hash/JSON {}", times(d.hash_bytes / d.json_bytes))),
    );
    let find = |r: Read| d.reads.iter().find(|(w, _)| *w == r).map(|(_, f)| *f).unwrap_or_default();
    let (jm, jc, h) = (find(Read::JsonMovie), find(Read::JsonCard), find(Read::Hash));
    let fig = |f: ReadFigures| {
        format!(
            "{} pages/s · {:.0} µs alone · Redis CPU {:.0} µs/page · client CPU {:.0} µs/page",
            thousands(f.pages_per_sec),
            f.seq_us,
            f.redis_cpu_us,
            f.client_cpu_us
        )
    };
    rows.push(
        Row::new(scope, "(a) read 24 cards: MGET + JSON decode (today) vs 24 HMGETs of 7 fields in a pipeline")
            .ours(format!("JSON: {}", fig(jm)))
            .other(format!("hash: {}", fig(h)))
            .ratio_text(format!("hash/JSON {}", times(h.pages_per_sec / jm.pages_per_sec))),
    );
    rows.push(
        Row::new(scope, "(a) the same MGET decoding only the card's fields")
            .ours(format!("JSON, card fields: {}", fig(jc)))
            .other(format!("JSON, whole film: {} pages/s", thousands(jm.pages_per_sec)))
            .ratio(jc.pages_per_sec / jm.pages_per_sec),
    );
    for (n, [set_ex, mset, cas]) in &d.writes {
        rows.push(
            Row::new(scope, format!("(b) write {n} films: pipeline of SET … EX vs MSET + EXPIREs"))
                .ours(format!("SET EX: {}", ms(*set_ex)))
                .other(format!("MSET+EXPIRE: {} · EVALSHA compare-and-set (today): {}", ms(*mset), ms(*cas)))
                .ratio_text(format!("MSET/SET {} · CAS/SET {}", times(mset / set_ex), times(cas / set_ex))),
        );
    }
    Ok(())
}

/// Seconds of CPU Redis has used (user + system).
async fn redis_cpu(c: &mut Conn) -> Result<f64> {
    Ok(lab::info_field(c, "cpu", "used_cpu_user").await? + lab::info_field(c, "cpu", "used_cpu_sys").await?)
}

/// Seconds of CPU this process has used.
fn own_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the command name (which ends with ')'): utime is the 12th, stime the 13th
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    (f.get(11).copied().unwrap_or(0.0) + f.get(12).copied().unwrap_or(0.0)) / 100.0
}

/// What a listing card needs of a film.
#[derive(Debug, Deserialize)]
struct CardFields {
    #[allow(dead_code, reason = "decoded as the server decodes it, never read")]
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
#[allow(dead_code, reason = "built as the server builds it, never read")]
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
                    match marquee::cache::decode_movie(Some(r)) {
                        marquee::cache::MovieEntry::Movie(m) => card_of_movie(std::sync::Arc::unwrap_or_clone(m)),
                        other => anyhow::bail!("not a film entry: {other:?}"),
                    }
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
    pub movies: usize,
    pub json_bytes: f64,
    pub hash_bytes: f64,
    pub hash_listpack_share: f64,
    pub reads: Vec<(Read, ReadFigures)>,
    /// (films per write, [set ex, mset + expire, evalsha cas] median ms)
    pub writes: Vec<(usize, [f64; 3])>,
}

/// Asks both questions of the embedded films under `prefix`: each read for `secs` per round.
pub async fn measure(prefix: &str, secs: f64, rounds: usize) -> Result<Design> {
    let mut c = lab::connect().await?;
    let movies: Vec<Movie> = marquee::dataset::parse(marquee::dataset::MOVIES_JSON)?
        .movies
        .into_iter()
        .map(|m| Movie { version: 1, ..m })
        .collect();

    // (a) the same films both ways
    for chunk in movies.chunks(500) {
        let mut pipe = redis::pipe();
        for m in chunk {
            pipe.cmd("SET")
                .arg(format!("{prefix}json:{}", m.slug))
                .arg(marquee::cache::encode_movie(m))
                .arg("EX")
                .arg(3600);
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
    let json_keys: Vec<String> = movies.iter().map(|m| format!("{prefix}json:{}", m.slug)).collect();
    let hash_keys: Vec<String> = movies.iter().map(|m| format!("{prefix}hash:{}", m.slug)).collect();
    let json_bytes = lab::memory_usage(&mut c, &json_keys).await?;
    let hash_bytes = lab::memory_usage(&mut c, &hash_keys).await?;
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
        movies.chunks(24).filter(|p| p.len() == 24).map(|p| p.iter().map(|m| m.slug.clone()).collect()).collect();
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
                    seq_us: client::percentile(&seq, 50.0),
                },
            )
        })
        .collect();

    // (b) bulk writes, the three ways alternating, each starting from absent keys
    let sha: String = redis::cmd("SCRIPT").arg("LOAD").arg(SET_VERSIONED).query_async(&mut c).await?;
    let mut writes = Vec::new();
    for (n, reps) in [(24usize, 150usize), (1000, 15)] {
        let batch: Vec<(String, String)> = movies
            .iter()
            .take(n)
            .map(|m| Ok((format!("{prefix}w:{}", m.slug), marquee::cache::encode_movie(m))))
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
            client::percentile(v, 50.0)
        };
        let [a, b, d] = &mut times;
        writes.push((n, [med(a), med(b), med(d)]));
    }
    let _ = lab::unlink_prefix(&mut c, prefix).await;
    Ok(Design {
        movies: movies.len(),
        json_bytes,
        hash_bytes,
        hash_listpack_share: listpack as f64 / hash_keys.len().max(1) as f64,
        reads,
        writes,
    })
}
