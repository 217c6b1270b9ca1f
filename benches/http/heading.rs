//! What surrounds the table: its heading (date, commit, machine, load) and the notes under it.

use std::process::Command;

use crate::common::CONNS;
use crate::opts::Opts;

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Date, commit and machine, for the table's heading.
pub fn heading(opts: &Opts) -> String {
    let date = sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = sh("git", &["-C", env!("CARGO_MANIFEST_DIR"), "rev-parse", "--short", "HEAD"]);
    let dirty =
        !sh("git", &["-C", env!("CARGO_MANIFEST_DIR"), "status", "--porcelain", "--untracked-files=no"]).is_empty();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, v)| v.trim().to_owned()))
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_kb: f64 = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let redis_version = sh("redis-cli", &["info", "server"])
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:").map(str::to_owned))
        .unwrap_or_default();
    let wrk_version = sh("sh", &["-c", "wrk -v 2>&1 | head -1"]);
    format!(
        "marquee HTTP bench, {date}, commit {commit}{}\n\
         machine: {cpu}, nproc {}, {:.0} GiB RAM, Linux {}, load average at start {}\n\
         Redis {redis_version}, PostgreSQL {}, {wrk_version}; server and load generator share the machine\n\
         load: {}{}",
        if dirty { " (with uncommitted changes)" } else { "" },
        sh("nproc", &[]),
        mem_kb / 1024.0 / 1024.0,
        sh("uname", &["-r"]),
        load.join(" "),
        sh("sh", &["-c", "psql -h 127.0.0.1 -U postgres -d test -tAc 'show server_version' 2>/dev/null"]),
        if opts.mix_only {
            format!(
                "wrk -t2 -c{CONNS} --latency, a warm-up of {} s, then one measured run of {} s",
                opts.secs,
                2 * opts.secs
            )
        } else {
            format!(
                "wrk -t2 -c{CONNS} -d{}s --latency, {} alternating round(s) per comparison, medians",
                opts.secs, opts.rounds
            )
        },
        if opts.quick { " (QUICK smoke run: figures are indicative only)" } else { "" },
    )
}

pub const NOTES: &str = "\
- Rates and latencies come from wrk (keep-alive, 64 connections, URLs rotated by a Lua script: listing pages 1–40, \
the same with `HX-Request: true` and `HX-Target: feed`, 200 detail slugs). \"Cache off\" is a second server on the same database with \
`REDIS_URL=off`; the static ceiling is a file of the warm page's size served by the cache-on server from `STATIC_DIR`.
- Cold and partial-miss figures come from the bench's own client: every listing page requested exactly once, 64 at \
a time, after removing every key under the server's prefix (cold) or a third of each page's film keys (partial). \
The warm and cache-off sweeps beside them use the same client, so those ratios compare like with like.
- Per-request figures: the server's /metrics counters (marquee_redis_commands_total, \
marquee_redis_round_trips_total, marquee_db_queries_total) around a known number of sequential requests, \
after the deferred cache writes have finished. The cross-check is Redis's own view over the same window: a \
MONITOR connection counting the commands on keys under the server's prefix, at top level and inside the \
compare-and-set scripts (INFO commandstats would also count the other users of this shared Redis).
- Redis timeouts: calls that took over REDIS_TIMEOUT_MS (50 ms) on the server's single multiplexed connection; each \
one is served from the database; the breaker leaves Redis alone for 500 ms only once 20 calls within 2 s have \
failed and they were half of that window's calls, or 20 failed in a row (the old rule, any one failure, is measured beside it in the \
breaker part). They appear beside the runs they happened in.
- Breaker: warm listings (pages 1–40) offered at twice the rate wrk measured at saturation, by the bench's own \
open-loop client (256 connections; a request falls due on the clock, and a free connection sends the next one \
due), --secs per run, the rate breaker and the old rule alternating on two servers over one database and \
Redis; database queries and Redis timeouts from /metrics, added up over the rounds, per 1,000 pages answered \
200 and per timeout.
- Invalidation: PUT /api/movies/{slug} changing release_date, timed by the client end to end (database write, \
film and stamp keys, sweep of the page keys). The plain design (SCAN MATCH prefix:movies:page:* COUNT 100 + UNLINK) \
and marquee's own sweep (SSCAN of the page-key set COUNT 100 + UNLINK/SREM) are also timed from the bench, \
on the same keyspace, alternating.
- Writes (`--only writes`): 200 PUTs retitling the listing's first films, one at a time, round robin over 1, 3 \
or 8 servers on one PostgreSQL database, each server having served pages (so holding its lease); without \
Redis, with one Redis, and with a Redis Cluster of 3 masters and 3 replicas (each write waits for WAIT). \
The added latency is the difference of the medians and of the p99s to the row without Redis.
- Cold pages (`--only cold`): one server per kind of page with `REDIS_URL=off` and `RENDERED_CACHE_KB=0`, restarted before each kind, each page asked once on a fresh connection; the database's own caches are as the seed (or the kind before) left them. With `MARQUEE_BENCH_KEEP=DIR` the seeded databases are kept between runs (SQLite's in DIR, PostgreSQL's as the database `bench_keep_cold_N`) and reused when they hold N films and only current, unchanged migrations (newer ones are run on them first); the seed row then says so instead of a time.
- Mix (`--only mix`): a sequence of 200,000 requests drawn with a fixed seed from the catalog as the database holds it: 45% listing pages (a document; page 1 is `/`), 15% the listing's next pages as the infinite scroll asks for them (`HX-Request`, `HX-Target: feed`, `HX-Current-URL` and `Referer` the page before), 30% film pages (opened from the listing page the film is on), 5% filtered and sorted lists (one of every genre × sort, uniformly: page 1 as the list's controls ask for it, with the form's empty filters and `HX-Target: listing`, the next pages from its scroll), 5% searches from the search field (`HX-Target: main`; 20 words, uniformly). Pages follow a Zipf law (s = 1) by their number, never past a list's end; films one over every film, ranks shuffled with a fixed seed. Every request carries Chromium's headers (`Accept-Encoding: gzip, deflate, br, zstd`, `Accept`, `Accept-Language`, `User-Agent`, `sec-ch-ua*`, `Sec-Fetch-*`). wrk plays it from a file, each thread from its own half; a warm-up of --secs on a sequence of another seed (3 × --secs at a million films, whose files the OS may have paged out since the part before), then 2 × --secs measured. `RENDERED_CACHE_KB=0` is a second server on the same database and the same Redis keys (two servers of one site), run after the default one, with its own warm-up. Status classes are counted by the script (its `response` callback, which costs wrk time: the warm listing beside it is played by the same script, with the same headers, so the ratio compares like with like). The tiers: pages answered from the page tier (`marquee_cache_hits_total` tier memory; beside it, in brackets, the MiB it held at the end of the run of its budget), rendered wholly from Redis and rendered with a database read (`marquee_pages_rendered_total`); queries, Redis commands (deferred writes included) and pool waits (`marquee_db_pool_waits_total`: queries that began with every pool connection in use) from /metrics around the measured run, per request wrk completed; the server's CPU time (user and system, from /proc/PID/stat) over the measured run per request completed: a request's cost whatever else shares the machine. With `MARQUEE_BENCH_BASELINE=/path/to/marquee` (another build, e.g. of an earlier commit), a third server of that build, on a database and Redis keys of its own holding the same films (an older build refuses a schema its migrations do not know), plays the same mix with `RENDERED_CACHE_KB=0`, alternating with ours round by round (--rounds, each run with its own warm-up): the Redis tier's gain measured in one run, as the ratio of the two sides' median rounds (every round's rate beside it). The warm listing is checked (200, a whole listing page) before it is timed; a page that fails makes its row a failure, not a figure.";
