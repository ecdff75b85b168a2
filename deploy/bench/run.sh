#!/usr/bin/env bash
# The benchmark: the platform's HTTP API against pgbench running the same statements on
# the same PostgreSQL, for the `offer` object, at concurrency 8.
#
#   bash deploy/bench/run.sh
#
# It builds target/release/platform (cargo build --release; skip with BENCH_SKIP_BUILD=1),
# starts it on 127.0.0.1:3099 against a fresh database `platform_bench`, seeds 100k
# offers (each with one line) into one tenant with SQL, then for list, get by id and
# create runs:
#   * wrk -t2 -c8 --latency for BENCH_DURATION s (after a short warm-up): saturated;
#   * the same at half the rate just measured (paced by a Lua delay(), see lua/common.lua);
#   * pgbench -M prepared -c8 -j2 with the bare statement (baseline, autocommit, superuser);
#   * pgbench with the server's own transaction (BEGIN, its statements, COMMIT, as
#     platform_app under row-level security): the database's share of a request.
# Along the way it samples the server's RSS, the CPU time of the server, of PostgreSQL
# and of the load generator per phase, and what the database sessions wait on.
# Raw outputs go to deploy/bench/out/ (git-ignored); a table is printed at the end and
# kept in out/summary.md. The server is stopped and the database dropped on exit.
#
# Needs: PostgreSQL on 127.0.0.1:5432 (trust auth, user postgres), psql, pgbench, curl,
# wrk (installed with apt-get when missing and running as root), cargo.
# Knobs (environment): BENCH_DURATION (20), BENCH_TX_DURATION (10), BENCH_HALF_DURATION
# (15), BENCH_WARMUP (3), BENCH_SEED_ROWS (100000), BENCH_PORT (3099), BENCH_DB
# (platform_bench), BENCH_SKIP_BUILD, BENCH_KEEP_LOGS (keep pgbench per-transaction logs).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
BENCH="$ROOT/deploy/bench"
OUT="$BENCH/out"
DB="${BENCH_DB:-platform_bench}"
PORT="${BENCH_PORT:-3099}"
BASE="http://127.0.0.1:$PORT"
DURATION="${BENCH_DURATION:-20}"
TX_DURATION="${BENCH_TX_DURATION:-10}"
HALF_DURATION="${BENCH_HALF_DURATION:-15}"
WARMUP="${BENCH_WARMUP:-3}"
SEED_ROWS="${BENCH_SEED_ROWS:-100000}"
CONNS=8
THREADS=2
TENANT="00000000-0000-4000-8000-00000000be0c"
PGHOST=127.0.0.1
PGPORT=5432
export PGHOST PGPORT PGUSER=postgres
DBURL="postgres://postgres@$PGHOST:$PGPORT/$DB"
export JWT_SECRET=bench
BIN="$ROOT/target/release/platform"
LIST_PATH="/api/v1/objects/offer/records?filter=status:eq:draft&sort=-grand_total&limit=50"
CLK_TCK=$(getconf CLK_TCK)

log() { printf '[bench %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }
psql_db() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
psql_pg() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -A -t -v ON_ERROR_STOP=1 -d postgres "$@"; }

# ---------------------------------------------------------------- prerequisites
for t in psql pgbench curl awk sort; do
  command -v "$t" >/dev/null || die "$t is required"
done
if ! command -v wrk >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing wrk"
    (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null 2>&1 || die "cannot install wrk"
  else
    die "wrk is required (apt-get install wrk)"
  fi
fi
pg_isready -q -h "$PGHOST" -p "$PGPORT" || die "PostgreSQL does not answer on $PGHOST:$PGPORT"
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; then
  die "something already listens on 127.0.0.1:$PORT"
fi

mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.tsv "$OUT"/*.log "$OUT"/*.md "$OUT"/pglog_* "$OUT"/.phase

# ---------------------------------------------------------------- cleanup
SERVER_PID=""
SAMPLER_PID=""
WAITS_PID=""
cleanup() {
  local rc=$?
  set +e
  [ -n "$WAITS_PID" ] && kill "$WAITS_PID" 2>/dev/null && wait "$WAITS_PID" 2>/dev/null
  [ -n "$SAMPLER_PID" ] && kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null
  if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
    kill -INT "$SERVER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  psql_pg -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null 2>&1 ||
    log "could not drop database $DB"
  rm -f "$OUT/.phase"
  [ "$rc" = 0 ] || log "failed (exit $rc); server log: $OUT/server.log"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build, fresh database, server
if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  log "cargo build --release --bin platform"
  cargo build --release --bin platform >"$OUT/build.log" 2>&1 || { tail -20 "$OUT/build.log" >&2; die "build failed"; }
fi
[ -x "$BIN" ] || die "$BIN is missing"

psql_pg -c "DROP DATABASE IF EXISTS \"$DB\" WITH (FORCE)" >/dev/null

{
  echo "date: $(date -Is)"
  echo "host: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)"
  echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "postgres: $(psql_pg -c 'SHOW server_version')"
  echo "wrk: $(wrk -v 2>&1 | head -1)"
  echo "pgbench: $(pgbench --version)"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD -- engine plugins 2>/dev/null || echo ' (engine/plugins have uncommitted changes)')"
} >"$OUT/env.txt"

log "starting the server on 127.0.0.1:$PORT (database $DB)"
DATABASE_URL="$DBURL" "$BIN" serve --addr "127.0.0.1:$PORT" --metadata metadata >"$OUT/server.log" 2>&1 &
SERVER_PID=$!
for i in $(seq 1 120); do
  curl -fsS "$BASE/ready" >/dev/null 2>&1 && break
  kill -0 "$SERVER_PID" 2>/dev/null || { tail -20 "$OUT/server.log" >&2; die "the server exited"; }
  sleep 0.5
  [ "$i" = 120 ] && die "the server did not get ready in 60 s"
done
echo "server start RSS: $(awk '/VmRSS/{print $2" kB"}' /proc/$SERVER_PID/status)" >>"$OUT/env.txt"

TOKEN=$("$BIN" token --tenant "$TENANT" --user bench --roles admin)
export BENCH_TOKEN="$TOKEN"
api() { # method path [body] -> body on stdout, fails on non-2xx
  curl -fsS -X "$1" "$BASE$2" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' ${3:+-d "$3"}
}
first_id() { grep -o '"id":"[0-9a-f-]\{36\}"' | awk -F'"' 'NR==1{print $4}'; }

# ---------------------------------------------------------------- data
log "creating a customer and 20 offers through the API"
CUSTOMER=$(api POST /api/v1/objects/customer/records '{"name":"Bench Customer d.o.o."}' | first_id)
[ -n "$CUSTOMER" ] || die "could not create the customer"
OFFER_BODY="{\"customer\":\"$CUSTOMER\",\"title\":\"Bench offer\",\"lines\":[{\"description\":\"Consulting\",\"quantity\":\"2\",\"unit_price\":\"10.00\"}]}"
API_OFFER=""
for _ in $(seq 1 20); do
  API_OFFER=$(api POST /api/v1/objects/offer/records "$OFFER_BODY" | first_id)
done
[ -n "$API_OFFER" ] || die "could not create an offer"

log "seeding $SEED_ROWS offers with one line each (SQL)"
SEED_START=$(date +%s.%N)
psql_db -v tenant="$TENANT" -v customer="$CUSTOMER" -v n="$SEED_ROWS" <<'SQL'
BEGIN;
CREATE TEMP TABLE seed ON COMMIT DROP AS
SELECT g,
       md5('bench-offer-' || g)::uuid AS id,
       md5('bench-line-' || g)::uuid AS line_id,
       (1 + (g / 5) % 10)::numeric(14,3) AS qty,
       round((10 + random() * 990)::numeric, 2) AS price,
       now() - g * interval '1 minute' AS at
  FROM generate_series(1, :n) g;
INSERT INTO "offers"."offer" (id, tenant_id, created_at, updated_at, created_by, updated_by, "number", "customer",
       "status", "title", "offer_date", "valid_until", "currency", "line_count", "subtotal", "discount_total",
       "net_total", "tax_total", "grand_total")
SELECT id, :'tenant', at, at, 'seed', 'seed',
       'OF-' || (extract(year FROM current_date)::int - 1) || '-' || lpad(g::text, greatest(5, length(g::text)), '0'), :'customer',
       (ARRAY['draft', 'sent', 'accepted', 'rejected', 'expired'])[1 + g % 5], 'Seeded offer ' || g,
       current_date - (g % 365), current_date - (g % 365) + 30, 'EUR', 1, qty * price, 0, qty * price,
       round(qty * price * 0.25, 2), qty * price + round(qty * price * 0.25, 2)
  FROM seed;
INSERT INTO "offers"."offer_line" (id, tenant_id, created_at, updated_at, created_by, updated_by, parent_id, position,
       "description", "quantity", "unit", "unit_price", "discount_percent", "tax_rate", "amount", "discount_amount",
       "net_amount", "tax_amount", "gross_amount")
SELECT line_id, :'tenant', at, at, 'seed', 'seed', id, 0, 'Seeded line', qty, 'pcs', price, 0, 25, qty * price, 0,
       qty * price, round(qty * price * 0.25, 2), qty * price + round(qty * price * 0.25, 2)
  FROM seed;
COMMIT;
VACUUM (ANALYZE) "offers"."offer", "offers"."offer_line", "registry"."customer";
SQL
SEED_SECS=$(awk -v a="$SEED_START" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
psql_db -c "SELECT md5('bench-offer-' || g)::uuid FROM generate_series(1, $SEED_ROWS) g" >"$OUT/offer_ids.txt"
{
  echo "seeded: $SEED_ROWS offers + $SEED_ROWS lines in ${SEED_SECS} s"
  echo "offers in tenant: $(psql_db -c "SELECT count(*) FROM offers.offer WHERE tenant_id = '$TENANT'"), drafts: $(psql_db -c "SELECT count(*) FROM offers.offer WHERE tenant_id = '$TENANT' AND status = 'draft'")"
} >>"$OUT/env.txt"

# The shape check: a seeded offer reads back with the same fields as one made by the API.
keys() { grep -o '"[a-z_]*":' | sort -u | tr -d '\n'; }
SEEDED_ONE=$(head -1 "$OUT/offer_ids.txt")
if [ "$(api GET "/api/v1/objects/offer/records/$API_OFFER" | keys)" != "$(api GET "/api/v1/objects/offer/records/$SEEDED_ONE" | keys)" ]; then
  log "warning: a seeded offer does not have the fields of an API-made one"
fi
api GET "/api/v1/objects/offer/records/$SEEDED_ONE" >"$OUT/sample_get.json"
api GET "$LIST_PATH" >"$OUT/sample_list.json"

# What the server's transaction writes besides the offer, for pgbench's tx_create.
PERIOD=$(psql_db -c "SELECT period FROM engine.sequences WHERE tenant_id = '$TENANT' AND object = 'offer' AND field = 'number'")
CHANGES=$(psql_db -c "SELECT changes::text FROM engine.audit_events WHERE tenant_id = '$TENANT' AND object = 'offer' ORDER BY occurred_at DESC LIMIT 1")
ENVELOPE=$(psql_db -c "SELECT envelope::text FROM engine.outbox WHERE tenant_id = '$TENANT' AND event_type LIKE '%.offer.created' ORDER BY created_at DESC LIMIT 1")
[ -n "$CHANGES" ] && [ -n "$ENVELOPE" ] || die "no audit event / outbox envelope found"

# ---------------------------------------------------------------- samplers
echo "setup" >"$OUT/.phase"
(
  while kill -0 "$SERVER_PID" 2>/dev/null; do
    printf '%s\t%s\n' "$(cat "$OUT/.phase" 2>/dev/null)" "$(awk '/VmRSS/{print $2}' "/proc/$SERVER_PID/status" 2>/dev/null)"
    sleep 0.25
  done
) >"$OUT/rss.tsv" 2>/dev/null &
SAMPLER_PID=$!

# CPU ticks so far: the whole machine (busy, idle) and the server.
cpu_now() {
  local t s
  t=$(awk '/^cpu /{printf "%d %d", $2+$3+$4+$7+$8+$9, $5+$6}' /proc/stat)
  s=$(awk '{print $14+$15}' "/proc/$SERVER_PID/stat")
  echo "$t $s"
}

# Every 100 ms while a phase runs, one psql session in the benchmark database samples
# (W) what its busy sessions wait on and (C) the CPU ticks of PostgreSQL's processes
# that work for it: the benchmark database's backends (pgbench's come and go) and the
# WAL writer, checkpointer and background writer. Backends of other databases (other
# people's tests on the same server) are left out.
waits_start() {
  local n=$(( ($1 + 5) * 10 )) f="$OUT/.waits.sql" i
  : >"$f"
  for i in $(seq 1 "$n"); do
    echo "SELECT 'W|' || state || ' ' || coalesce(wait_event_type || ':' || wait_event, 'CPU') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND state <> 'idle';"
    echo "SELECT 'C|$i|' || pid || '|' || (split_part(st, ' ', 14)::bigint + split_part(st, ' ', 15)::bigint) FROM (SELECT pid, pg_read_file('/proc/' || pid || '/stat', 0, 1000, true) AS st FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND (datname = current_database() OR backend_type IN ('walwriter', 'checkpointer', 'background writer'))) x WHERE st IS NOT NULL;"
    echo "SELECT pg_sleep(0.1) \\g /dev/null"
  done >"$f"
  psql -X -q -A -t -d "$DB" -f "$f" >"$OUT/samples_$2.txt" 2>/dev/null &
  WAITS_PID=$!
}
# PostgreSQL CPU seconds of a phase from its C samples: per process, its last sample
# minus its first when it was there at the first round, else minus 0 (born during the
# phase; its CPU until the first sample counts).
pg_cpu_of() {
  awk -F'|' -v hz="$CLK_TCK" '$1=="C"{ if (round1 == "") round1 = $2
      if (!($3 in last)) base[$3] = ($2 == round1) ? $4 : 0
      last[$3] = $4 }
    END{ for (p in last) t += last[p] - base[p]; printf "%.2f", t/hz }' "$OUT/samples_$1.txt"
}
waits_stop() {
  [ -n "$WAITS_PID" ] && { kill "$WAITS_PID" 2>/dev/null; wait "$WAITS_PID" 2>/dev/null || true; }
  WAITS_PID=""
  rm -f "$OUT/.waits.sql"
}

RESULTS="$OUT/results.tsv"
printf 'phase\tkind\trequests\tseconds\trps\tp50_ms\tp99_ms\tmax_ms\tnon2xx\terrors\tcpu_server_s\tcpu_pg_s\tcpu_client_s\tcpu_busy_s\tcpu_idle_s\n' >"$RESULTS"

# record NAME KIND "requests seconds rps p50 p99 max non2xx errors" CPU_BEFORE CPU_AFTER CLIENT_CPU_S
record() {
  local name=$1 kind=$2 stats=$3 before=$4 after=$5 client=$6 pg
  pg=$(pg_cpu_of "$name")
  awk -v name="$name" -v kind="$kind" -v stats="$stats" -v b="$before" -v a="$after" -v c="$client" -v pg="$pg" -v hz="$CLK_TCK" 'BEGIN{
    split(b, B, " "); split(a, A, " "); split(stats, S, " ");
    printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\n", name, kind,
      S[1], S[2], S[3], S[4], S[5], S[6], S[7], S[8],
      (A[3]-B[3])/hz, pg, c, (A[1]-B[1])/hz, (A[2]-B[2])/hz }' >>"$RESULTS"
}

client_cpu() { awk '{printf "%.2f", $1+$2}' "$1"; }

# run_wrk NAME SCRIPT PATH SECONDS [RATE]
run_wrk() {
  local name=$1 script=$2 path=$3 secs=$4 rate=${5:-0} before after stats
  echo "$name" >"$OUT/.phase"
  log "wrk $name: ${secs}s, $CONNS connections$([ "$rate" = 0 ] || echo ", paced at $rate req/s")"
  waits_start "$secs" "$name"
  before=$(cpu_now)
  TIMEFORMAT='%U %S'
  { time BENCH_LUA="$BENCH/lua" BENCH_RATE="$rate" BENCH_THREADS="$THREADS" BENCH_CUSTOMER="$CUSTOMER" \
      BENCH_IDS="$OUT/offer_ids.txt" \
      wrk -t"$THREADS" -c"$CONNS" -d"${secs}s" --timeout 10s --latency -s "$BENCH/lua/$script" "$BASE$path" \
      >"$OUT/wrk_$name.txt" 2>&1; } 2>"$OUT/cpu_$name.txt"
  after=$(cpu_now)
  sleep 0.15 # one more sample round
  waits_stop
  stats=$(awk '/^BENCH /{for(i=2;i<=NF;i++){split($i,kv,"="); v[kv[1]]=kv[2]}
           print v["requests"], v["seconds"], v["rps"], v["p50_ms"], v["p99_ms"], v["max_ms"], v["non2xx"], v["socket_errors"]}' "$OUT/wrk_$name.txt")
  [ -n "$stats" ] || { cat "$OUT/wrk_$name.txt" >&2; die "wrk $name printed no result"; }
  record "$name" wrk "$stats" "$before" "$after" "$(client_cpu "$OUT/cpu_$name.txt")"
  if grep -q '^BENCH_SAMPLE' "$OUT/wrk_$name.txt"; then
    log "  non-2xx responses in $name: $(awk '/^BENCH /{for(i=2;i<=NF;i++) if ($i ~ /^(non2xx|codes)=/) printf "%s ", $i}' "$OUT/wrk_$name.txt")"
    log "  first one: $(sed -n 's/^BENCH_SAMPLE //p' "$OUT/wrk_$name.txt" | cut -c1-200)"
  fi
}

# warmup SCRIPT PATH: a short wrk run; meanwhile the statements the server sends are
# taken from pg_stat_activity into out/server_sql_<script>.txt (the pgbench tx_*.sql
# files mirror them by hand).
warmup() {
  local f="$OUT/.sql.sql" w
  echo "warmup" >"$OUT/.phase"
  BENCH_LUA="$BENCH/lua" BENCH_CUSTOMER="$CUSTOMER" BENCH_IDS="$OUT/offer_ids.txt" \
    wrk -t"$THREADS" -c"$CONNS" -d"${WARMUP}s" -s "$BENCH/lua/$1" "$BASE$2" >"$OUT/warmup_$1.txt" 2>&1 &
  w=$!
  for _ in $(seq 1 $((WARMUP * 5))); do
    echo "SELECT regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND query <> '';"
    echo "SELECT pg_sleep(0.2) \\g /dev/null"
  done >"$f"
  psql -X -q -A -t -d "$DB" -f "$f" 2>/dev/null | sort -u >"$OUT/server_sql_${1%.lua}.txt" || true
  wait "$w" || true
  rm -f "$f"
}
# sql_matches OP FRAGMENT: whether the server sent a statement containing FRAGMENT.
sql_matches() { grep -qF -- "$2" "$OUT/server_sql_$1.txt" 2>/dev/null; }

# run_pgbench NAME FILE SECONDS [app]   (app: as platform_app with the tenant set, like the server)
run_pgbench() {
  local name=$1 file=$2 secs=$3 mode=${4:-} before after stats opts=""
  [ "$mode" = app ] && opts="-c role=platform_app -c app.tenant_id=$TENANT"
  echo "$name" >"$OUT/.phase"
  log "pgbench $name: ${secs}s, -M prepared -c $CONNS -j $THREADS${mode:+, as platform_app}"
  waits_start "$secs" "$name"
  before=$(cpu_now)
  TIMEFORMAT='%U %S'
  local rc=0
  { time PGOPTIONS="$opts" pgbench -n -M prepared -c "$CONNS" -j "$THREADS" -T "$secs" -f "$BENCH/pgbench/$file" \
      -D tenant="$TENANT" -D customer="$CUSTOMER" -D nseed="$SEED_ROWS" -D status=draft -D period="$PERIOD" \
      -D changes="$CHANGES" -D envelope="$ENVELOPE" \
      -l --log-prefix="$OUT/pglog_$name" "$DB" >"$OUT/pgbench_$name.txt" 2>&1 || rc=$?; } 2>"$OUT/cpu_$name.txt"
  after=$(cpu_now)
  waits_stop
  [ "$rc" = 0 ] || log "  pgbench $name exited $rc (see $OUT/pgbench_$name.txt)"
  local tps n failed
  tps=$(sed -n 's/^tps = \([0-9.]*\) (without initial connection.*/\1/p' "$OUT/pgbench_$name.txt")
  n=$(sed -n 's/^number of transactions actually processed: \([0-9]*\).*/\1/p' "$OUT/pgbench_$name.txt")
  failed=$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$OUT/pgbench_$name.txt")
  [ -n "$tps" ] || { tail -5 "$OUT/pgbench_$name.txt" >&2; die "pgbench $name printed no tps"; }
  # Latency percentiles from the per-transaction log (3rd column, microseconds).
  stats=$(cat "$OUT"/pglog_"$name".* | awk '{print $3}' | sort -n |
    awk -v n="$n" -v secs="$secs" -v tps="$tps" -v f="${failed:-0}" -v rc="$rc" '{a[NR]=$1} END{
      if (NR == 0) { printf "%s %s %.1f - - - - %s\n", n, secs, tps, f; exit }
      i50=int(NR*0.50); if (i50<1) i50=1; i99=int(NR*0.99); if (i99<1) i99=1;
      printf "%s %s %.1f %.3f %.3f %.3f - %s\n", n, secs, tps, a[i50]/1000, a[i99]/1000, a[NR]/1000, f + (rc != 0) }')
  [ -n "${BENCH_KEEP_LOGS:-}" ] || rm -f "$OUT"/pglog_"$name".*
  record "$name" pgbench "$stats" "$before" "$after" "$(client_cpu "$OUT/cpu_$name.txt")"
}

# rate of a finished phase
rps_of() { awk -F'\t' -v p="$1" '$1==p{print $5}' "$RESULTS"; }
half_of() { awk -v r="$(rps_of "$1")" 'BEGIN{h=int(r/2); print (h<1)?1:h}'; }

# ---------------------------------------------------------------- phases
# Lists first, on exactly the seeded data; creates last, as they add rows.
BENCH_START=$(date +%s)
warmup list.lua "$LIST_PATH"
run_wrk list list.lua "$LIST_PATH" "$DURATION"
run_wrk list_half list.lua "$LIST_PATH" "$HALF_DURATION" "$(half_of list)"
run_pgbench pg_list list.sql "$DURATION"
run_pgbench pg_tx_list tx_list.sql "$TX_DURATION" app

warmup get.lua /api/v1/objects/offer/records
run_wrk get get.lua /api/v1/objects/offer/records "$DURATION"
run_wrk get_half get.lua /api/v1/objects/offer/records "$HALF_DURATION" "$(half_of get)"
run_pgbench pg_get get.sql "$DURATION"
run_pgbench pg_tx_get tx_get.sql "$TX_DURATION" app

warmup create.lua /api/v1/objects/offer/records
run_wrk create create.lua /api/v1/objects/offer/records "$DURATION"
run_wrk create_half create.lua /api/v1/objects/offer/records "$HALF_DURATION" "$(half_of create)"
run_pgbench pg_insert insert.sql "$DURATION"
run_pgbench pg_tx_create tx_create.sql "$TX_DURATION" app
echo "done" >"$OUT/.phase"

HWM=$(awk '/VmHWM/{print $2}' "/proc/$SERVER_PID/status")
echo "load phases: $(( $(date +%s) - BENCH_START )) s; load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/env.txt"
echo "offers in tenant after: $(psql_db -c "SELECT count(*) FROM offers.offer WHERE tenant_id = '$TENANT'")" >>"$OUT/env.txt"
sleep 0.3

# ---------------------------------------------------------------- report
peak_rss() { awk -F'\t' -v p="$1" '$1==p && $2>m{m=$2} END{printf "%.0f", m/1024}' "$OUT/rss.tsv"; }
field() { awk -F'\t' -v p="$1" -v c="$2" 'NR==1{for(i=1;i<=NF;i++) col[$i]=i; next} $1==p{print $col[c]}' "$RESULTS"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN{ if (b > 0) printf "%.0f %%", 100*a/b; else print "-" }'; }
verdict() { awk -v a="$1" -v b="$2" -v bar="$3" 'BEGIN{ if (b > 0 && 100*a/b >= bar) print "ok"; else print "BELOW" }'; }
waits() { # the three most frequent session states of a phase, in percent of samples
  grep -q '^W|' "$OUT/samples_$1.txt" 2>/dev/null || { echo "-"; return; }
  sed -n 's/^W|//p' "$OUT/samples_$1.txt" | sort | uniq -c | sort -rn | awk '{n[NR]=$1; $1=""; s[NR]=substr($0,2); t+=n[NR]} END{
    for (i=1; i<=NR && i<=3; i++) printf "%s%s %d%%", (i>1?", ":""), s[i], 100*n[i]/t }'
}

{
  echo "## Results"
  echo
  sed 's/^/    /' "$OUT/env.txt"
  echo
  echo "| operation | ours req/s | pgbench tps | ratio | bar | ours p99 (saturated) | pgbench p99 | ours p99 at half rate (achieved req/s) | non-2xx / errors | server peak RSS |"
  echo "| --- | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |"
  for op in "create pg_insert create_half 40" "get pg_get get_half 40" "list pg_list list_half 50"; do
    set -- $op
    o=$(field "$1" rps); p=$(field "$2" rps)
    echo "| $1 | $o | $p | $(ratio "$o" "$p") | >= $4 % $(verdict "$o" "$p" "$4") | $(field "$1" p99_ms) ms | $(field "$2" p99_ms) ms | $(field "$3" p99_ms) ms ($(field "$3" rps)) | $(field "$1" non2xx)+$(field "$3" non2xx) / $(field "$1" errors)+$(field "$3" errors) | $(peak_rss "$1") MB |"
  done
  echo
  echo "Server peak RSS over the whole run (VmHWM): $((HWM / 1024)) MB (bar: < 150 MB)."
  awk -F'\t' 'NR>1{o+=$14-$11-$12-$13; t+=$14+$15} END{ if (t>0) printf "\nOther processes on the machine used %.0f %% of the CPU during the load phases%s.\n", 100*o/t, (100*o/t > 10) ? " (the figures are disturbed: run again on a quiet machine)" : "" }' "$RESULTS"
  echo
  echo "The server's own transaction replayed by pgbench (BEGIN, the same statements, COMMIT, as platform_app under row-level security):"
  echo
  echo "| operation | pgbench, server's transaction tps | p99 | ours / that |"
  echo "| --- | ---: | ---: | ---: |"
  for op in "create pg_tx_create" "get pg_tx_get" "list pg_tx_list"; do
    set -- $op
    echo "| $1 | $(field "$2" rps) | $(field "$2" p99_ms) ms | $(ratio "$(field "$1" rps)" "$(field "$2" rps)") |"
  done
  # Fragments of the statements that pgbench/tx_*.sql copy: a warning when one is gone.
  for chk in "list|updated_by, custom, \"number\"" \
    "list|ORDER BY \"grand_total\" DESC NULLS FIRST, id DESC LIMIT 51" \
    "get|FROM \"offers\".\"offer\" WHERE tenant_id = \$1 AND id = \$2" \
    "get|WHERE tenant_id = \$1 AND parent_id = ANY(\$2) ORDER BY parent_id, position" \
    "create|\"grand_total\", \"custom\") VALUES (\$1" \
    "create|DO UPDATE SET value = s.value + \$5 RETURNING value" \
    "create|WITH audit AS ( INSERT INTO engine.audit_events"; do
    sql_matches "${chk%%|*}" "${chk#*|}" ||
      echo "Warning: the server no longer sends \`${chk#*|}\` for ${chk%%|*} (see out/server_sql_${chk%%|*}.txt); pgbench/tx_${chk%%|*}.sql needs updating."
  done
  echo
  echo "CPU per request (ms; 2 cores = 2000 ms per second of wall time; postgres: the benchmark database's backends and the WAL writer, checkpointer, background writer; other: everything else on the machine, other databases' backends included):"
  echo
  echo "| phase | req/s | server | postgres | load generator | other | idle | sessions of the bench DB (sampled) |"
  echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
  awk -F'\t' 'NR>1{print $1, $3, $5, $11, $12, $13, $14, $15}' "$RESULTS" | while read -r ph n r s p c b i; do
    echo "| $ph | $r | $(awk -v n="$n" -v s="$s" -v p="$p" -v c="$c" -v b="$b" -v i="$i" 'BEGIN{ if (n<1) n=1;
      printf "%.3f | %.3f | %.3f | %.3f | %.3f", 1000*s/n, 1000*p/n, 1000*c/n, 1000*(b-s-p-c)/n, 1000*i/n }') | $(waits "$ph") |"
  done
} >"$OUT/summary.md"

echo
cat "$OUT/summary.md"
echo
echo "Raw outputs: $OUT"
