//! A write's latency (`--only writes`): a PUT retitling a film, timed at its writer from the request
//! to the answer, on PostgreSQL with no Redis, with one Redis, and with a Redis Cluster of 3 masters
//! each with a replica (its writes wait for `WAIT`), with 1, 3 and 8 servers on the same database and
//! cache. What the cache's promise adds — every server's pages show the write at its answer: the
//! keys, the token after them, the servers' leases, the replicas — is the difference to the row
//! without Redis. Writes go one at a time, round robin over the servers, each of which holds its
//! lease (it has served pages).

use std::path::Path;
use std::time::Instant;

use anyhow::{Result, bail};

use crate::client::{self, Conn};
use crate::common::{median, secs_ms};
use crate::opts::Opts;
use crate::report::{Row, ms};
use crate::servers::{Backend, Janitor, Server, Spec, TOKEN};

const SERVERS: [usize; 3] = [1, 3, 8];

async fn retitle(server: &Server, slug: &str, title: &str) -> Result<f64> {
    let mut conn = Conn::open(server.addr).await?;
    let body = serde_json::json!({ "title": title }).to_string();
    let auth = format!("Bearer {TOKEN}");
    let headers = [("Authorization", auth.as_str()), ("Content-Type", "application/json")];
    let start = Instant::now();
    let r = conn.send("PUT", &format!("/api/movies/{slug}"), &headers, body.as_bytes()).await?;
    let took = secs_ms(start.elapsed());
    if r.status != 200 {
        bail!("PUT {slug} on {}: status {}: {}", server.name, r.status, r.text());
    }
    Ok(took)
}

/// The films of the listing's first page (their slugs, from the cards' links).
async fn films(server: &Server) -> Result<Vec<String>> {
    let html = client::get(server.addr, "/movies").await?.text();
    let slugs: Vec<String> = html
        .split("href=\"/movies/")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .filter(|s| !s.contains('?'))
        .map(str::to_owned)
        .collect();
    if slugs.len() < 4 {
        bail!("fewer than 4 films on the listing");
    }
    Ok(slugs)
}

pub async fn phase(o: &Opts, j: &Janitor, tmp: &Path, rows: &mut Vec<Row>) -> Result<()> {
    let writes = o.reps(200);
    let db = j.database(Backend::Postgres, tmp, "writes").await?;
    let cluster = crate::cluster::start()?;
    let caches: [(&str, Option<&str>); 3] =
        [("no Redis", None), ("one Redis", Some(crate::lab::REDIS)), ("cluster 3+3, WAIT", Some(cluster.as_str()))];
    let static_dir = tmp.join("static-writes");
    std::fs::create_dir_all(&static_dir)?;
    let mut loaded = false;
    for n in SERVERS {
        let mut without = None;
        for (cache, redis) in caches {
            eprintln!("  {n} servers, {cache}");
            let prefix = j.prefix(&format!("writes{n}"));
            let mut servers = Vec::new();
            for i in 0..n {
                let name = format!("writes-{n}-{}-{i}", cache.split(' ').next().unwrap_or(""));
                let spec = Spec {
                    name: &name,
                    db: &db,
                    prefix: redis.map(|_| prefix.as_str()),
                    redis: redis.unwrap_or(""),
                    static_dir: &static_dir,
                    load_dataset: !loaded,
                    env: &[],
                };
                servers.push(Server::start(spec, tmp).await?);
                loaded = true;
            }
            let slugs = films(&servers[0]).await?;
            // every server serves pages (and so holds its lease) before the writes
            for s in &servers {
                for slug in &slugs {
                    client::get(s.addr, &format!("/movies/{slug}")).await?;
                }
                client::get(s.addr, "/movies").await?;
            }
            let mut times = Vec::with_capacity(writes);
            for w in 0..writes {
                let server = &servers[w % n];
                let slug = &slugs[w % slugs.len()];
                times.push(retitle(server, slug, &format!("Retitled {n}-{w}")).await?);
            }
            times.sort_by(f64::total_cmp);
            let (p50, p99) = (median(&times), client::percentile(&times, 99.0));
            let mut row = Row::new("PostgreSQL, writes", format!("{n} server(s), {cache}: a retitle, median / p99"))
                .ours(format!("{} / {}", ms(p50), ms(p99)));
            match without {
                None => without = Some((p50, p99)),
                Some((b50, b99)) => {
                    row = row.other(format!("{} / {} without Redis", ms(b50), ms(b99))).ratio_text(format!(
                        "+{} / +{}",
                        ms(p50 - b50),
                        ms(p99 - b99)
                    ))
                }
            }
            rows.push(row);
        }
    }
    Ok(())
}
