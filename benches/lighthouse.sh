#!/usr/bin/env bash
# Lighthouse 12 on the four kinds of page (the listing, a film, a sorted list, a search), mobile
# and desktop, in its four categories; prints a table of the scores and fails (exit 1) when one is
# below 100 (in the run of median performance of three, see RUNS below). Not part of CI.
#
#   benches/lighthouse.sh                          # starts marquee itself (see below)
#   benches/lighthouse.sh http://127.0.0.1:3000    # a server already running, with the dataset
#
# Without a URL it starts target/release/marquee (or target/debug/marquee; `cargo build` first)
# on a throwaway SQLite file, a free port and no Redis, and stops it at the end. Each report is
# kept as JSON under $OUT (default: a temporary folder, printed at the end).
# About 15 s a run: 4 pages × 2 forms × 3 runs take 6 minutes.
#
# Needs: npx (Node 18.20 or newer; it fetches lighthouse@12 from npm) and Chromium
# ($CHROME_PATH, default /usr/bin/chromium).
set -euo pipefail
cd "$(dirname "$0")/.."

export CHROME_PATH="${CHROME_PATH:-/usr/bin/chromium}"
for tool in npx node curl; do
  command -v "$tool" >/dev/null || { echo "lighthouse: $tool is needed" >&2; exit 2; }
done
[ -x "$CHROME_PATH" ] || { echo "lighthouse: no Chromium at $CHROME_PATH" >&2; exit 2; }

OUT="${OUT:-$(mktemp -d /tmp/marquee-lighthouse.XXXXXX)}"
mkdir -p "$OUT"
SERVER_PID=""
DB_FILE=""
cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$DB_FILE" ]; then rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"; fi
}
trap cleanup EXIT

if [ $# -ge 1 ]; then
  BASE="${1%/}"
else
  BIN=target/release/marquee
  [ -x "$BIN" ] || BIN=target/debug/marquee
  [ -x "$BIN" ] || { echo "lighthouse: build marquee first (cargo build --release)" >&2; exit 2; }
  DB_FILE="$OUT/catalog.db"
  LISTEN_ADDR=127.0.0.1:0 DATABASE_URL="sqlite://$DB_FILE" REDIS_URL=off RUST_LOG=marquee=info LOG_FORMAT=text \
    "$BIN" serve >"$OUT/server.log" 2>&1 &
  SERVER_PID=$!
  ADDR=""
  for _ in $(seq 1 300); do
    ADDR=$(grep -o 'listening addr=[0-9.:]*' "$OUT/server.log" | head -n1 | cut -d= -f2 || true)
    [ -n "$ADDR" ] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$OUT/server.log" >&2; exit 2; }
    sleep 0.2
  done
  [ -n "$ADDR" ] || { echo "lighthouse: the server did not start" >&2; cat "$OUT/server.log" >&2; exit 2; }
  BASE="http://$ADDR"
fi
curl -fsS -o /dev/null "$BASE/movies" || { echo "lighthouse: $BASE/movies does not answer 200" >&2; exit 2; }

# kind, path
PAGES=(
  "listing|/movies"
  "film|/movies/the-land-girls-1998"
  "sorted list|/movies?genre=drama&sort=rating"
  "search|/search?q=star"
)
CATEGORIES=performance,accessibility,best-practices,seo
# Performance is measured on a CPU shared with whatever else runs: each page is measured RUNS
# times and the run of median performance is the one reported (what Lighthouse's docs advise).
RUNS="${RUNS:-3}"

ROWS=()
for page in "${PAGES[@]}"; do
  kind="${page%%|*}"
  path="${page#*|}"
  for form in mobile desktop; do
    preset=()
    [ "$form" = desktop ] && preset=(--preset=desktop)
    reports=""
    for run in $(seq 1 "$RUNS"); do
      report="$OUT/$(echo "$kind" | tr ' ' '-')-$form-$run.json"
      npx --yes lighthouse@12 "$BASE$path" "${preset[@]}" --only-categories="$CATEGORIES" \
        --chrome-flags="--headless=new --no-sandbox" --output=json --output-path="$report" --quiet
      reports="$reports${reports:+,}$report"
    done
    ROWS+=("$kind|$form|$path|$reports")
  done
done

# The table, and the audits that cost a point where a score is below 100.
status=0
node - "${ROWS[@]}" <<'EOF' || status=$?
const fs = require("fs");
const cats = ["performance", "accessibility", "best-practices", "seo"];
let below = 0;
const lines = ["| page | form | " + cats.join(" | ") + " |", "|---|---|" + cats.map(() => "---|").join("")];
const faults = [];
for (const row of process.argv.slice(2)) {
  const [kind, form, path, files] = row.split("|");
  // the run of median performance (the other categories do not vary from run to run)
  const runs = files.split(",").map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
  runs.sort((a, b) => a.categories.performance.score - b.categories.performance.score);
  const report = runs[Math.floor(runs.length / 2)];
  const scores = cats.map((c) => {
    const s = report.categories[c].score;
    return s === null ? "n/a" : Math.round(s * 100);
  });
  lines.push(`| ${kind} (\`${path}\`) | ${form} | ${scores.join(" | ")} |`);
  cats.forEach((c, i) => {
    if (scores[i] === 100) return;
    below++;
    for (const ref of report.categories[c].auditRefs) {
      const audit = report.audits[ref.id];
      if (ref.weight > 0 && audit.score !== null && audit.score < 1) {
        faults.push(`${kind} ${form} ${c}: ${audit.id} (${audit.score}) ${audit.displayValue || ""}`);
      }
    }
  });
}
console.log(lines.join("\n"));
if (faults.length) console.log("\nbelow 100:\n" + faults.join("\n"));
process.exit(below ? 1 : 0);
EOF
echo "reports: $OUT"
exit $status
