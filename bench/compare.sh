#!/usr/bin/env bash
# compare.sh — `make bench-compare`: the same load, from the same load
# generator (`octostore bench`), against
#   etcd            etcd-server from Debian, default durable settings
#                   (WAL fsync'd on every commit), v3 JSON gateway
#   redis-lua       the project's acquire/release Lua scripts run directly
#                   on redis-server (no HTTP), appendonly yes + everysec
#   octostore-redis OctoStore over HTTP on that same redis-server
#   redis-lua-always / octostore-redis-always
#                   the same on a second redis-server with appendfsync always
#                   (every write fsync'd before Redis answers)
#   octostore-sqlite OctoStore over HTTP on SQLite (WAL, synchronous=FULL)
#   nethttp-floor   bench/floor: net/http with the server's limits and fixed
#                   answers, no store: the ceiling of any net/http service
#                   here (distinct names only; it never answers "held")
# with 1 and 32 clients, on distinct and on one contended name. Every
# server listens on 127.0.0.1 only and keeps its data in a temp dir; all
# are stopped when the script ends, however it ends.
#
# Writes bench/results/{results.jsonl,results.md,cycles.dat,cycles.png}.
# Every configuration runs BENCH_ROUNDS times, the targets in a rotating
# order, and the table shows the median run, so that other load on the
# machine does not land on one target only.
# Environment: BENCH_DURATION (5s), BENCH_ROUNDS (3), BENCH_CLIENTS ("1 32"), BENCH_OUT
# (bench/results), BENCH_PORT_BASE (24790), BENCH_KEEP=1 keeps the temp dir,
# BENCH_BIN (an octostore binary to use instead of building one),
# BENCH_PLACEMENT (shared): "shared" lets every process run on every CPU;
# "split" pins the load generator to the first CPU and every server
# (etcd, redis-server, octostore, floor) to the others, as when clients and
# the service run on different machines.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-"1 32"}
OUT=${BENCH_OUT:-bench/results}
BASE=${BENCH_PORT_BASE:-24790}
PLACEMENT=${BENCH_PLACEMENT:-shared}

. bench/lib.sh
# srv and cli prefix the servers' and the load generator's commands.
srv=() cli=()
case $PLACEMENT in
  shared) placement_note="shared: every process may run on every CPU" ;;
  split)
    allowed=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status)
    if ! [[ $allowed =~ ^([0-9]+)-([0-9]+)$ ]] || [ "${BASH_REMATCH[2]}" -le "${BASH_REMATCH[1]}" ]; then
      log "BENCH_PLACEMENT=split needs a range of at least 2 CPUs; this process may use: $allowed"
      exit 2
    fi
    first=${BASH_REMATCH[1]} last=${BASH_REMATCH[2]}
    servers=$((first + 1))-$last
    [ "$((first + 1))" = "$last" ] && servers=$last
    srv=(taskset -c "$servers") cli=(taskset -c "$first")
    placement_note="split: load generator on CPU $first, every server on CPU $servers (taskset)"
    ;;
  *)
    log "BENCH_PLACEMENT must be shared or split, not \"$PLACEMENT\""
    exit 2
    ;;
esac
install_missing etcd:etcd-server redis-server:redis-server redis-cli:redis-tools gnuplot:gnuplot-nox curl:curl
start_workdir octostore-bench

for p in $(seq "$BASE" $((BASE + 7))); do
  port_free "$p" || { log "port $p is in use; set BENCH_PORT_BASE"; exit 1; }
done
ETCD=$BASE ETCD_PEER=$((BASE + 1)) REDIS=$((BASE + 2)) REDIS_ALWAYS=$((BASE + 3))
OS_SQLITE=$((BASE + 4)) OS_REDIS=$((BASE + 5)) OS_REDIS_ALWAYS=$((BASE + 6)) FLOOR=$((BASE + 7))

build_octostore
"$GO" build -o "$tmp/floor" ./bench/floor

log "starting etcd on 127.0.0.1:$ETCD"
"${srv[@]}" etcd --name bench --data-dir "$tmp/etcd" \
  --listen-client-urls "http://127.0.0.1:$ETCD" --advertise-client-urls "http://127.0.0.1:$ETCD" \
  --listen-peer-urls "http://127.0.0.1:$ETCD_PEER" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER" \
  --initial-cluster "bench=http://127.0.0.1:$ETCD_PEER" >"$tmp/etcd.log" 2>&1 &
pids+=($!)
wait_until curl -fsS "http://127.0.0.1:$ETCD/health"

start_redis() { # port dir fsync-policy
  mkdir -p "$2"
  "${srv[@]}" redis-server --port "$1" --bind 127.0.0.1 --protected-mode no --dir "$2" --save "" \
    --appendonly yes --appendfsync "$3" --daemonize no >"$2/redis.log" 2>&1 &
  pids+=($!)
  wait_until redis-cli -p "$1" ping
}
log "starting redis-server on 127.0.0.1:$REDIS (appendonly yes, appendfsync everysec) and :$REDIS_ALWAYS (appendfsync always)"
start_redis "$REDIS" "$tmp/redis" everysec
start_redis "$REDIS_ALWAYS" "$tmp/redis-always" always

start_octostore() { # port logname store-flags...
  local port=$1 name=$2
  shift 2
  "${srv[@]}" "$bin" serve --addr "127.0.0.1:$port" "$@" >"$tmp/$name.log" 2>&1 &
  pids+=($!)
  wait_until curl -fsS "http://127.0.0.1:$port/health"
}
log "starting octostore (SQLite :$OS_SQLITE, Redis :$OS_REDIS, Redis-always :$OS_REDIS_ALWAYS)"
tok_sqlite=$("$bin" token create --login bench --db "$tmp/octostore.db")
tok_redis=$("$bin" token create --login bench --redis-url "redis://127.0.0.1:$REDIS")
tok_always=$("$bin" token create --login bench --redis-url "redis://127.0.0.1:$REDIS_ALWAYS")
start_octostore "$OS_SQLITE" octostore-sqlite --db "$tmp/octostore.db"
start_octostore "$OS_REDIS" octostore-redis --redis-url "redis://127.0.0.1:$REDIS"
start_octostore "$OS_REDIS_ALWAYS" octostore-redis-always --redis-url "redis://127.0.0.1:$REDIS_ALWAYS"
log "starting bench/floor on 127.0.0.1:$FLOOR"
# The GC target serve sets for itself (cmd/octostore gcPercent), so that the
# ceiling is not lowered by collecting more often than the servers measured.
GOGC=400 "${srv[@]}" "$tmp/floor" -addr "127.0.0.1:$FLOOR" >"$tmp/floor.log" 2>&1 &
pids+=($!)
wait_until curl -fsS "http://127.0.0.1:$FLOOR/health"

# Each target: label | persistence note | bench flags. The token goes
# through the environment, not the command line.
targets=(
  "etcd|etcd default (WAL fsync per commit)|--target etcd --etcd-url http://127.0.0.1:$ETCD"
  "redis-lua|redis AOF everysec|--target redis --redis-url redis://127.0.0.1:$REDIS --redis-prefix raw: --redis-account bench"
  "octostore-redis|redis AOF everysec|--target octostore --url http://127.0.0.1:$OS_REDIS TOKEN=$tok_redis"
  "redis-lua-always|redis AOF always|--target redis --redis-url redis://127.0.0.1:$REDIS_ALWAYS --redis-prefix raw: --redis-account bench"
  "octostore-redis-always|redis AOF always|--target octostore --url http://127.0.0.1:$OS_REDIS_ALWAYS TOKEN=$tok_always"
  "octostore-sqlite|SQLite WAL synchronous=FULL|--target octostore --url http://127.0.0.1:$OS_SQLITE TOKEN=$tok_sqlite"
  "nethttp-floor|none (ceiling: net/http, fixed answers)|--target octostore --url http://127.0.0.1:$FLOOR TOKEN=floor"
)

bench() { # spec clients contended(0/1) duration [record]
  local label note flags tok="" args=()
  IFS='|' read -r label note flags <<<"$1"
  for a in $flags; do
    case $a in TOKEN=*) tok=${a#TOKEN=} ;; *) args+=("$a") ;; esac
  done
  [ "$3" = 1 ] && args+=(--contended)
  OCTOSTORE_TOKEN=$tok "${cli[@]}" "$bin" bench --json --quiet --duration "$4" --clients "$2" --label "$label|$note" "${args[@]}"
}

log "uptime before: $(uptime)"
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
log "warming up each target (2 s, not recorded)"
for t in "${targets[@]}"; do bench "$t" 32 0 2s >/dev/null; done

: >"$tmp/results.jsonl"
n=${#targets[@]}
for round in $(seq "$ROUNDS"); do
  for c in $CLIENTS; do
    for contended in 0 1; do
      for i in $(seq 0 $((n - 1))); do
        # The start rotates each round, and every other round runs the
        # targets in reverse, so no target always follows the same one
        # (whatever one run leaves behind, it does not always load the same
        # next target).
        j=$i
        [ $((round % 2)) = 0 ] && j=$((n - 1 - i))
        t=${targets[$(((j + round - 1) % n))]}
        [ "$contended" = 1 ] && [ "${t%%|*}" = nethttp-floor ] && continue
        log "== round $round, ${t%%|*}: $c clients, $([ "$contended" = 1 ] && echo contended || echo distinct), $DURATION"
        bench "$t" "$c" "$contended" "$DURATION" | tee -a "$tmp/results.jsonl" | cut -c1-160 >&2
        sleep 0.5
      done
    done
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

mkdir -p "$OUT"
cp "$tmp/results.jsonl" "$OUT/results.jsonl"
"$GO" run ./bench/report -in "$OUT/results.jsonl" -md "$tmp/table.md" -dat "$OUT/cycles.dat"
ncols=$(head -1 "$OUT/cycles.dat" | awk -F'\t' '{print NF}')
gnuplot -e "datafile='$OUT/cycles.dat'; outfile='$OUT/cycles.png'; ncols=$ncols" bench/cycles.gp

{
  echo "# make bench-compare — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "- machine: $(nproc) CPUs, $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(free -g | awk '/^Mem:/{print $2}') GiB RAM"
  echo "- $("$GO" version); $(etcd --version | head -1); $(redis-server --version | cut -d' ' -f1-3)"
  echo "- load average (1/5/15 min) before: $load_before; after: $load_after"
  echo "- placement (BENCH_PLACEMENT): $placement_note"
  echo "- each configuration: $ROUNDS runs of $DURATION, targets in a rotating order; the table shows the median run"
  echo "  by cycles/s; one \`octostore bench\` process at a time; all servers on 127.0.0.1 on the same machine"
  echo "- persistence: etcd defaults (its WAL is fsync'd before it answers); redis-server appendonly yes with"
  echo "  appendfsync everysec (or always where the row says), no RDB snapshots; SQLite WAL synchronous=FULL"
  echo "  (every acknowledged write fsync'd, group commit)"
  echo "- acquire latency is per request (a held answer included); \"wait\" is first attempt to acquired"
  echo "  (for etcd, whose lock blocks, the same as acquire)"
  echo
  cat "$tmp/table.md"
  echo "![cycles/s](cycles.png)"
} >"$OUT/results.md"
log "wrote $OUT/results.md and $OUT/cycles.png"
cat "$OUT/results.md"
