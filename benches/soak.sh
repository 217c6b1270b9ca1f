#!/usr/bin/env bash
# Soak test: marquee (release build) against PostgreSQL and Redis, under mixed traffic for a while,
# then the checks an operator would make. Not part of CI.
#
#   benches/soak.sh                  # 10 minutes
#   benches/soak.sh --seconds 30     # the short version
#   benches/soak.sh --minutes 60 --connections 128 --seed 20000
#
# Traffic: wrk with --connections (64) connections over a Lua script (listing pages, htmx
# fragments, detail pages, unknown slugs, bad page numbers), plus one admin PUT per second (curl;
# every 10th moves a film's release date, which sweeps the page keys).
#
# Reports, and fails (exit 1) when a check fails:
#   - 5xx answers: zero (counted by the server itself, from /metrics; wrk's "non-2xx/3xx" count
#     includes the 4xx the script asks for on purpose)
#   - server RSS: growth after the first minute (VmRSS sampled every 5 s; shorter runs compare
#     against the sample at a quarter of the run, and only report it)
#   - Redis keys under the run's prefix: at most films + pages + 2 + the unknown slugs asked for
#   - at the end, every cached film agrees with PostgreSQL, field by field (read with psql, not
#     through the app), and every cached "gone" marker names a slug with no film
#
# Needs: cargo, wrk, curl, jq, psql, redis-cli; PostgreSQL at 127.0.0.1:5432 (user postgres,
# trust, database test) and Redis at $REDIS_URL (default redis://127.0.0.1:6379).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_TOTAL=600
CONNECTIONS=64
THREADS=2
SEED=0
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) SECONDS_TOTAL="$2"; shift 2 ;;
    --minutes) SECONDS_TOTAL=$(( $2 * 60 )); shift 2 ;;
    --connections) CONNECTIONS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --seed) SEED="$2"; shift 2 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1 (see --help)" >&2; exit 2 ;;
  esac
done
for tool in cargo wrk curl jq psql redis-cli; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is needed" >&2; exit 2; }
done

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379}"
REDIS_HOSTPORT="${REDIS_URL#redis://}"
REDIS_HOST="${REDIS_HOSTPORT%%:*}"
REDIS_PORT="${REDIS_HOSTPORT##*:}"
rcli() { redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" "$@"; }
PG="postgres://postgres@127.0.0.1:5432/test"
RUN="soak$$"
SCHEMA="$RUN"
PREFIX="$RUN:"
TOKEN="soak-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
WORK="$(mktemp -d /tmp/marquee-soak.XXXXXX)"
PORT=$(( 20000 + $$ % 20000 ))
BASE="http://127.0.0.1:$PORT"
DB_URL="$PG?options=-c%20search_path%3D$SCHEMA"
sql() { psql -X -q -t -A "$PG" -c "set search_path = $SCHEMA; $1"; }

SERVER_PID=""
BG_PIDS=()
cleanup() {
  for pid in "${BG_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  psql -X -q "$PG" -c "drop schema if exists $SCHEMA cascade" >/dev/null 2>&1 || true
  rcli --scan --pattern "$PREFIX*" | xargs -r -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" unlink >/dev/null || true
  echo "soak: logs and samples in $WORK"
}
trap cleanup EXIT

echo "soak: building the release binary"
cargo build --release --quiet --bin marquee
BIN=target/release/marquee

psql -X -q "$PG" -c "create schema $SCHEMA" >/dev/null
if [ "$SEED" -gt 0 ]; then
  echo "soak: seeding $SEED synthetic films"
  DATABASE_URL="$DB_URL" "$BIN" seed --count "$SEED" 2>>"$WORK/seed.log"
fi

echo "soak: starting marquee on $BASE (prefix $PREFIX, schema $SCHEMA)"
LISTEN_ADDR="127.0.0.1:$PORT" DATABASE_URL="$DB_URL" REDIS_URL="$REDIS_URL" CACHE_PREFIX="$PREFIX" \
  ADMIN_TOKEN="$TOKEN" LOG_FORMAT=json RUST_LOG="marquee=info,warn" DB_MAX_CONNECTIONS=16 \
  "$BIN" serve 2>"$WORK/server.log" &
SERVER_PID=$!
for _ in $(seq 1 600); do
  curl -fs "$BASE/healthz" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { echo "soak: the server exited:"; tail "$WORK/server.log"; exit 1; }
  sleep 0.1
done
curl -fs "$BASE/readyz" | jq -c .

FILMS=$(sql "select movie_count from catalog")
PAGE_SIZE=24
PAGES=$(( (FILMS + PAGE_SIZE - 1) / PAGE_SIZE ))
UNKNOWN=100
echo "soak: $FILMS films, $PAGES pages; $CONNECTIONS connections for ${SECONDS_TOTAL}s"

# the Lua script, with 2,000 real slugs
sql "select slug from movies order by md5(slug) limit 2000" >"$WORK/slugs.txt"
{
  echo "local slugs = {"
  sed 's/.*/"&",/' "$WORK/slugs.txt"
  echo "}"
  cat <<EOF
local pages = $PAGES
local unknown = $UNKNOWN
local bad = {"0", "-1", "abc", "1.5", "1e3", "99999999999999999999", "", "1&page=2"}
local threads = {}
counts = {} -- global: done() reads each thread's copy with thread:get

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  counts = {}
  math.randomseed(os.time() + math.floor(os.clock() * 1000000))
end

-- low pages are read most, as people do
local function page()
  local r = math.random()
  return math.max(1, math.min(pages, math.floor(r * r * r * pages) + 1))
end

function request()
  local r = math.random(100)
  if r <= 30 then
    return wrk.format("GET", "/movies?page=" .. page())
  elseif r <= 50 then
    return wrk.format("GET", "/movies?page=" .. page(), {["HX-Request"] = "true"})
  elseif r <= 83 then
    return wrk.format("GET", "/movies/" .. slugs[math.random(#slugs)])
  elseif r <= 90 then
    return wrk.format("GET", "/movies/no-such-film-" .. math.random(unknown))
  elseif r <= 95 then
    return wrk.format("GET", "/movies?page=" .. bad[math.random(#bad)])
  else
    return wrk.format("GET", "/")
  end
end

function response(status, headers, body)
  counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do
      total[status] = (total[status] or 0) + n
    end
  end
  local out = io.open("$WORK/statuses.txt", "w")
  for status, n in pairs(total) do
    out:write(status .. " " .. n .. "\n")
  end
  out:close()
  io.write(string.format("latency p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
EOF
} >"$WORK/soak.lua"

# samplers: RSS and the number of keys under the prefix, every 5 s
(
  start=$(date +%s)
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    rss=$(awk '/^VmRSS/ {print $2}' "/proc/$SERVER_PID/status" 2>/dev/null || echo 0)
    keys=$(rcli --scan --pattern "$PREFIX*" | wc -l)
    echo "$(( $(date +%s) - start )) $rss $keys" >>"$WORK/samples.txt"
    sleep 5
  done
) &
BG_PIDS+=($!)

# one admin PUT per second; every 10th moves a film's release date (the listing order changes)
(
  i=0
  while true; do
    i=$((i + 1))
    slug=$(sed -n "$(( (i * 37) % $(wc -l <"$WORK/slugs.txt") + 1 ))p" "$WORK/slugs.txt")
    if [ $((i % 10)) -eq 0 ]; then
      body="{\"imdb_votes\": $i, \"release_date\": \"20$(( 10 + i % 15 ))-0$(( 1 + i % 9 ))-1$(( i % 10 ))\"}"
    else
      body="{\"imdb_votes\": $i, \"genre\": \"Soak $i\"}"
    fi
    code=$(curl -s -o /dev/null -w '%{http_code}' -X PUT -H "Authorization: Bearer $TOKEN" \
      -H 'Content-Type: application/json' -d "$body" "$BASE/api/movies/$slug" || echo 000)
    echo "$code $slug" >>"$WORK/admin.txt"
    sleep 1
  done
) &
ADMIN_PID=$!
BG_PIDS+=($ADMIN_PID)

wrk -t"$THREADS" -c"$CONNECTIONS" -d"${SECONDS_TOTAL}s" --timeout 10s -s "$WORK/soak.lua" "$BASE" | tee "$WORK/wrk.txt"
kill "$ADMIN_PID" 2>/dev/null || true
wait "$ADMIN_PID" 2>/dev/null || true
sleep 2 # deferred cache writes of the last requests

FAIL=0
check() { # check NAME OK(0/1) DETAIL
  if [ "$2" -eq 0 ]; then echo "  ok    $1: $3"; else echo "  FAIL  $1: $3"; FAIL=1; fi
}
echo
echo "soak: results after ${SECONDS_TOTAL}s"
METRICS="$(curl -fs "$BASE/metrics")"
echo "$METRICS" >"$WORK/metrics.txt"
count_status() { # sum of the request counts whose status matches $1 (a regex)
  echo "$METRICS" | awk -v re="status=\"$1\"" \
    '/^marquee_http_request_duration_seconds_count/ && $0 ~ re {s += $NF} END {printf "%d", s}'
}
ALL=$(count_status '[0-9]+')
S5=$(count_status '5[0-9][0-9]')
S4=$(count_status '4[0-9][0-9]')
echo "  statuses seen by wrk: $(sort -n "$WORK/statuses.txt" | tr '\n' ' ')"
check "5xx" "$([ "$S5" -eq 0 ] && echo 0 || echo 1)" "$S5 of $ALL requests (4xx on purpose: $S4)"
ADMIN_N=$(wc -l <"$WORK/admin.txt")
ADMIN_BAD=$(grep -vc '^200 ' "$WORK/admin.txt" || true)
check "admin PUTs" "$([ "$ADMIN_BAD" -eq 0 ] && echo 0 || echo 1)" "$ADMIN_N sent, $ADMIN_BAD not 200"

metric() { echo "$METRICS" | awk -v re="^$1" '$0 ~ re {s += $NF} END {printf "%d", s}'; }
HITS=$(metric 'marquee_cache_hits_total')
MISSES=$(metric 'marquee_cache_misses_total')
echo "  cache: $HITS hits, $MISSES misses; redis errors $(metric marquee_redis_errors_total);" \
  "db queries $(metric marquee_db_queries_total); deferred writes failed" \
  "$(metric 'marquee_deferred_writes_total[{]outcome="failed"')"

# RSS: growth after the first minute (or, for short runs, after a quarter of the run)
MARK=60
[ "$SECONDS_TOTAL" -lt 120 ] && MARK=$(( SECONDS_TOTAL / 4 ))
RSS_MARK=$(awk -v m="$MARK" '$1 >= m {print $2; exit}' "$WORK/samples.txt")
RSS_END=$(awk -v end="$SECONDS_TOTAL" '$1 <= end {r = $2} END {print r}' "$WORK/samples.txt")
RSS_MAX=$(awk '$2 > m {m = $2} END {print m}' "$WORK/samples.txt")
GROWTH=$(( RSS_END - RSS_MARK ))
PCT=$(( RSS_MARK > 0 ? GROWTH * 100 / RSS_MARK : 0 ))
if [ "$SECONDS_TOTAL" -ge 120 ]; then
  check "RSS" "$([ "$PCT" -le 20 ] && echo 0 || echo 1)" \
    "${RSS_MARK} kB at ${MARK}s -> ${RSS_END} kB at the end (${GROWTH} kB, ${PCT}%; max ${RSS_MAX} kB; limit +20%)"
else
  echo "  info  RSS: ${RSS_MARK} kB at ${MARK}s -> ${RSS_END} kB at the end (${GROWTH} kB, ${PCT}%; max ${RSS_MAX} kB)"
fi

KEYS_MAX=$(awk '$3 > m {m = $3} END {print m + 0}' "$WORK/samples.txt")
BOUND=$(( FILMS + PAGES + 2 + UNKNOWN ))
check "redis keys" "$([ "$KEYS_MAX" -le "$BOUND" ] && echo 0 || echo 1)" \
  "at most $KEYS_MAX under $PREFIX (bound: $FILMS films + $PAGES pages + 2 + $UNKNOWN unknown slugs = $BOUND)"

# Redis against PostgreSQL, for every cached film (and every "gone" marker)
rcli --scan --pattern "${PREFIX}movie:*" >"$WORK/film-keys.txt"
: >"$WORK/film-values.txt"
if [ -s "$WORK/film-keys.txt" ]; then
  # one line per key, in order (an empty line for a key that expired meanwhile)
  xargs -n 500 redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" --raw mget <"$WORK/film-keys.txt" >"$WORK/film-values.txt"
fi
paste "$WORK/film-keys.txt" "$WORK/film-values.txt" |
  jq -R -c --arg p "${PREFIX}movie:" 'split("\t") | {slug: (.[0] | ltrimstr($p)), value: (.[1] | fromjson? // null)}' \
  >"$WORK/cached.jsonl"
sql "select coalesce(json_agg(row_to_json(f)), '[]') from movies f" >"$WORK/db.json"
jq -n --slurpfile db "$WORK/db.json" --slurpfile cached "$WORK/cached.jsonl" '
  ($db[0] | map({key: .slug, value: .}) | from_entries) as $rows
  # every field the cache holds or the table has (v is the version column), numbers within 1e-9
  | def differs($a; $b): if ($a | type) == "number" and ($b | type) == "number"
      then (($a - $b) | fabs) > 1e-9 * ([1, ($a | fabs)] | max) else $a != $b end;
  [$cached[] | select(.value != null)] as $entries
  | [$entries[] | select(.value.gone | not)] as $films
  | [$entries[] | select(.value.gone)] as $gone
  | {
      films: ($films | length),
      gone: ($gone | length),
      gone_but_present: [$gone[] | select($rows[.slug] != null) | .slug],
      mismatched: [
        $films[] | .slug as $slug | .value as $c | $rows[$slug] as $r
        | if $r == null then {slug: $slug, problem: "cached but not in the database"}
          else
            ($c | del(.v)) as $cf | ($r | del(.version)) as $rf
            | ([($cf | keys) + ($rf | keys) | unique | .[] | select(differs($cf[.]; $rf[.]))]
               + (if differs($c.v; $r.version) then ["version"] else [] end)
               + (if $c.slug != $slug then ["key"] else [] end)) as $bad
            | select($bad | length > 0) | {slug: $slug, fields: $bad, cached: $c, database: $r}
          end
      ]
    }' >"$WORK/agreement.json" || { echo "soak: the comparison failed"; FAIL=1; }
CACHED=$(jq .films "$WORK/agreement.json")
GONE=$(jq .gone "$WORK/agreement.json")
GONE_BAD=$(jq '.gone_but_present | length' "$WORK/agreement.json")
MISMATCHED=$(jq '.mismatched | length' "$WORK/agreement.json")
check "redis = postgres" "$([ "$MISMATCHED" -eq 0 ] && [ "$GONE_BAD" -eq 0 ] && [ "$CACHED" -gt 0 ] && echo 0 || echo 1)" \
  "$CACHED cached films compared field by field, $MISMATCHED differ; $GONE gone markers, $GONE_BAD name a film that exists"
[ "$MISMATCHED" -eq 0 ] || jq -c '.mismatched[:5][]' "$WORK/agreement.json"

kill -TERM "$SERVER_PID"
if wait "$SERVER_PID"; then echo "  ok    shutdown: exit 0"; else echo "  FAIL  shutdown: exit $?"; FAIL=1; fi
SERVER_PID=""
[ "$FAIL" -eq 0 ] && echo "soak: PASS" || echo "soak: FAIL"
exit "$FAIL"
