#!/usr/bin/env bash
# growth.sh — `make bench-growth`: does OctoStore slow down as the number of
# held locks grows? For each store (SQLite file; redis-server with
# appendonly yes, appendfsync everysec) it runs `octostore serve`, seeds
# 1,000 held locks (10 accounts × 100, TTL 1 h) through the Store interface
# (bench/growth), runs the load (32 clients, distinct names), then seeds up
# to 1,000,000 held locks (10,000 accounts × 100) and runs the same load
# again. It records Redis used_memory and the server's RSS at each step.
# Everything listens on 127.0.0.1 in a temp dir and is stopped at the end.
#
# Writes bench/results/growth.{jsonl,md}. Environment: BENCH_DURATION (10s),
# BENCH_ACCOUNTS (10000), BENCH_OUT (bench/results), BENCH_PORT_BASE
# (24800), BENCH_BIN (an octostore binary to use instead of building one),
# BENCH_STORES ("sqlite redis").
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}
DURATION=${BENCH_DURATION:-10s}
ACCOUNTS=${BENCH_ACCOUNTS:-10000}
OUT=${BENCH_OUT:-bench/results}
BASE=${BENCH_PORT_BASE:-24800}
STORES=${BENCH_STORES:-"sqlite redis"}
log() { printf '%s\n' "$*" >&2; }

need=()
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v curl >/dev/null || need+=(curl)
if [ "${#need[@]}" -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/octostore-growth.XXXXXX")
pids=()
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
wait_until() {
  local i
  for i in $(seq 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "timed out waiting for: $*"
  return 1
}

bin="$tmp/octostore"
if [ -n "${BENCH_BIN:-}" ]; then cp "$BENCH_BIN" "$bin"; else CGO_ENABLED=0 "$GO" build -trimpath -o "$bin" ./cmd/octostore; fi
"$GO" build -o "$tmp/growth" ./bench/growth

REDIS=$BASE OS_PORT=$((BASE + 1))
rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
used_memory() { redis-cli -p "$REDIS" info memory | tr -d '\r' | awk -F: '/^used_memory:/{print $2}'; }

: >"$tmp/growth.jsonl"
for store in $STORES; do
  log "== $store"
  if [ "$store" = redis ]; then
    mkdir -p "$tmp/redis"
    redis-server --port "$REDIS" --bind 127.0.0.1 --protected-mode no --dir "$tmp/redis" --save "" \
      --appendonly yes --appendfsync everysec --daemonize no >"$tmp/redis/redis.log" 2>&1 &
    rpid=$!
    pids+=("$rpid")
    wait_until redis-cli -p "$REDIS" ping
    flags=(--redis-url "redis://127.0.0.1:$REDIS")
  else
    flags=(--db "$tmp/octostore.db")
  fi
  tok=$("$bin" token create --login bench "${flags[@]}")
  "$bin" serve --addr "127.0.0.1:$OS_PORT" "${flags[@]}" >"$tmp/serve-$store.log" 2>&1 &
  spid=$!
  pids+=("$spid")
  wait_until curl -fsS "http://127.0.0.1:$OS_PORT/health"

  step() { # held-label
    sleep 2
    local rss mem=""
    OCTOSTORE_TOKEN=$tok "$bin" bench --json --quiet --duration "$DURATION" --clients 32 \
      --url "http://127.0.0.1:$OS_PORT" --label "octostore-$store|$1 held" | tee -a "$tmp/growth.jsonl" | cut -c1-200 >&2
    rss=$(rss_kib "$spid")
    [ "$store" = redis ] && mem=$(used_memory)
    printf '%s %s %s %s\n' "$store" "$1" "$rss" "$mem" >>"$tmp/memory.txt"
  }
  seed_flags=("${flags[@]}")
  [ "$store" = redis ] && seed_flags=(-redis-url "redis://127.0.0.1:$REDIS") || seed_flags=(-db "$tmp/octostore.db")
  workers=64
  [ "$store" = sqlite ] && workers=256
  mem0=""
  [ "$store" = redis ] && mem0=$(used_memory)
  printf '%s %s %s %s\n' "$store" 0 "$(rss_kib "$spid")" "$mem0" >>"$tmp/memory.txt"
  "$tmp/growth" "${seed_flags[@]}" -from 0 -accounts 10 -per 100 -workers "$workers" >&2
  step 1000
  t0=$(date +%s)
  "$tmp/growth" "${seed_flags[@]}" -from 10 -accounts "$ACCOUNTS" -per 100 -workers "$workers" >&2
  log "seeding took $(($(date +%s) - t0)) s"
  step $((ACCOUNTS * 100))

  kill "$spid"
  wait "$spid" 2>/dev/null || true
  if [ "$store" = redis ]; then
    kill "$rpid"
    wait "$rpid" 2>/dev/null || true
  fi
done

mkdir -p "$OUT"
cp "$tmp/growth.jsonl" "$OUT/growth.jsonl"
{
  echo "# make bench-growth — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "32 clients, distinct names, $DURATION per run; seeded locks have TTL 1 h; load average at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
  echo
  echo "| store | held locks | cycles/s | acquire p50 ms | p99 ms | release p99 ms | errors |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  python3 - "$tmp/growth.jsonl" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    name, held = r["label"].split("|")
    print(f"| {name} | {held.split()[0]} | {r['cycles_per_sec']:.0f} | {r['acquire']['p50_ms']:.3f} | {r['acquire']['p99_ms']:.3f} | {r['release']['p99_ms']:.3f} | {r['errors']} |")
EOF
  echo
  echo "Memory (server RSS from /proc; Redis used_memory from INFO memory):"
  echo
  echo "| store | held locks | server RSS KiB | Redis used_memory bytes |"
  echo "|---|---:|---:|---:|"
  awk '{printf "| %s | %s | %s | %s |\n", $1, $2, $3, ($4 == "" ? "—" : $4)}' "$tmp/memory.txt"
  echo
  awk -v n=$((ACCOUNTS * 100 - 1000)) '
    $2 == 1000 { rss1[$1] = $3; mem1[$1] = $4 }
    $2 > 1000  { rss2[$1] = $3; mem2[$1] = $4 }
    END {
      for (s in rss2) {
        printf "- %s: server RSS grew %.1f MiB for %d more held locks (%.1f bytes per lock)", s, (rss2[s] - rss1[s]) / 1024, n, (rss2[s] - rss1[s]) * 1024 / n
        if (mem2[s] != "") printf "; Redis used_memory grew %.1f MiB (%.1f bytes per lock)", (mem2[s] - mem1[s]) / 1048576, (mem2[s] - mem1[s]) / n
        printf "\n"
      }
    }' "$tmp/memory.txt"
  if [ -f "$tmp/octostore.db" ]; then
    echo "- sqlite: database file $(du -m "$tmp/octostore.db" | cut -f1) MiB (+ WAL $(du -m "$tmp/octostore.db-wal" 2>/dev/null | cut -f1 || echo 0) MiB) with $((ACCOUNTS * 100)) held locks"
  fi
} >"$OUT/growth.md"
cat "$OUT/growth.md"
