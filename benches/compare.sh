#!/usr/bin/env bash
# Two builds of marquee side by side under the same load, alternating, so that a change's cost is a
# ratio from one run on one machine (e.g. one middleware against another). Not part of CI.
#
#   benches/compare.sh BIN_A BIN_B                     # warm listing, pages 1-40, kept pages on
#   benches/compare.sh BIN_A BIN_B --redis-tier        # the same with RENDERED_CACHE_KB=0
#   benches/compare.sh BIN_A BIN_B --rounds 5 --seconds 10 --gzip
#   benches/compare.sh BIN_A BIN_B --detail            # 200 film pages instead of the listing
#
# Each build serves its own SQLite file and Redis prefix; both pages are warmed (read twice) and
# checked first: each build must answer 200 with the same bytes as the other (request ids and
# dates aside), or nothing is timed. Then wrk (-t2 -c64) runs on each in turn, --rounds times, and
# the medians are printed with their ratio (B / A).
#
# Needs: wrk, curl, redis-cli; Redis at 127.0.0.1:6379. Build the binaries with
# `cargo build --release` in each checkout.
set -euo pipefail

A=$(realpath "$1"); B=$(realpath "$2"); shift 2
ROUNDS=3; SECS=8; KEPT=4096; ENCODING=""; DETAIL=""
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds) SECS="$2"; shift 2 ;;
    --redis-tier) KEPT=0; shift ;;
    --gzip) ENCODING="gzip, deflate, br, zstd"; shift ;;
    --detail) DETAIL=1; shift ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
WORK=$(mktemp -d)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

start() { # name binary port
  local prefix="compare-$1-$$:"
  redis-cli --scan --pattern "${prefix}*" | xargs -r redis-cli unlink >/dev/null
  LISTEN_ADDR="127.0.0.1:$3" DATABASE_URL="sqlite://$WORK/$1.db" CACHE_PREFIX="$prefix" \
    RENDERED_CACHE_KB="$KEPT" RUST_LOG=warn "$2" serve 2>"$WORK/$1.log" &
  PIDS+=($!)
  for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$3/healthz" >/dev/null && return; sleep 0.1; done
  echo "$1 did not start: $(cat "$WORK/$1.log")" >&2; exit 1
}
start a "$A" 3901
start b "$B" 3902

# the paths: listing pages 1-40, or the first 200 films they link to
if [ -n "$DETAIL" ]; then
  for n in $(seq 1 10); do curl -fs "http://127.0.0.1:3901/movies?page=$n"; done \
    | grep -o 'href="/movies/[a-z0-9-]*"' | cut -d'"' -f2 | awk '!seen[$0]++' | head -n 200 >"$WORK/paths"
else
  for n in $(seq 1 40); do echo "/movies?page=$n"; done >"$WORK/paths"
fi
{
  echo "local paths = {"
  sed 's/.*/  "&",/' "$WORK/paths"
  echo "}"
  echo "local n = 0"
  echo "request = function()"
  echo "  n = n % #paths + 1"
  echo "  local headers = {}"
  [ -n "$ENCODING" ] && echo "  headers[\"Accept-Encoding\"] = \"$ENCODING\""
  echo "  return wrk.format(\"GET\", paths[n], headers)"
  echo "end"
} >"$WORK/pages.lua"

fetch() { curl -s -o "$WORK/body" -D "$WORK/head" -w '%{http_code}' ${ENCODING:+-H "Accept-Encoding: $ENCODING"} "$1"; }
while read -r path; do
  for port in 3901 3902; do for _ in 1 2 3; do fetch "http://127.0.0.1:$port$path" >/dev/null; done; done
  [ "$(fetch "http://127.0.0.1:3901$path")" = 200 ] || { echo "A: $path is not 200" >&2; exit 1; }
  cp "$WORK/body" "$WORK/a.body"
  [ "$(fetch "http://127.0.0.1:3902$path")" = 200 ] || { echo "B: $path is not 200" >&2; exit 1; }
  cmp -s "$WORK/body" "$WORK/a.body" || { echo "$path: A and B answer different bytes" >&2; exit 1; }
done <"$WORK/paths"

rate() { wrk -t2 -c64 -d"${SECS}s" --latency -s "$WORK/pages.lua" "http://127.0.0.1:$1" | awk '/Requests\/sec/ {print $2}'; }
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
: >"$WORK/a.rates"; : >"$WORK/b.rates"
for r in $(seq 1 "$ROUNDS"); do
  rate 3901 >>"$WORK/a.rates"
  rate 3902 >>"$WORK/b.rates"
done
ma=$(median <"$WORK/a.rates"); mb=$(median <"$WORK/b.rates")
echo "warm ${DETAIL:+film pages (200)}${DETAIL:-listing pages 1-40}, RENDERED_CACHE_KB=$KEPT${ENCODING:+, Accept-Encoding: $ENCODING}, wrk -t2 -c64 -d${SECS}s, $ROUNDS rounds"
echo "A $A: $(paste -sd' ' "$WORK/a.rates") r/s (median $ma)"
echo "B $B: $(paste -sd' ' "$WORK/b.rates") r/s (median $mb)"
awk -v a="$ma" -v b="$mb" 'BEGIN {printf "B / A: %.3f\n", b / a}'
