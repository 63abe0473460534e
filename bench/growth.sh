#!/usr/bin/env bash
# growth.sh — `make bench-growth`: does OctoStore slow down as the number of
# held locks grows? For each store it runs two `octostore serve`: A on a
# store holding 1,000 locks (10 accounts × 100) and B on one holding
# 1,000,000 (10,000 accounts × 100), seeded through the Store interface
# (bench/growth, TTL 1 h). Then it loads A and B in turn, several rounds
# (32 clients, distinct names), so that a change of load on the machine
# hits both alike, and compares the medians. It records the servers' RSS and
# Redis used_memory after seeding. SQLite stores are files; Redis stores are
# two redis-servers with appendonly yes, appendfsync everysec. Everything
# listens on 127.0.0.1 in a temp dir and is stopped at the end.
#
# Writes bench/results/growth.{jsonl,md}. Environment: BENCH_DURATION (5s
# per run), BENCH_ROUNDS (4), BENCH_ACCOUNTS (10000), BENCH_OUT
# (bench/results), BENCH_PORT_BASE (24800), BENCH_BIN (an octostore binary
# to use instead of building one), BENCH_STORES ("sqlite redis"), BENCH_KEEP=1
# keeps the temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
GO=${GO:-go}
DURATION=${BENCH_DURATION:-5s}
ROUNDS=${BENCH_ROUNDS:-4}
ACCOUNTS=${BENCH_ACCOUNTS:-10000}
OUT=${BENCH_OUT:-bench/results}
BASE=${BENCH_PORT_BASE:-24800}
STORES=${BENCH_STORES:-"sqlite redis"}
. bench/lib.sh
install_missing redis-server:redis-server redis-cli:redis-tools curl:curl python3:python3
start_workdir octostore-growth
build_octostore
"$GO" build -o "$tmp/growth" ./bench/growth

rss_kib() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
used_memory() { redis-cli -p "$1" info memory | tr -d '\r' | awk -F: '/^used_memory:/{print $2}'; }

: >"$tmp/growth.jsonl"
: >"$tmp/memory.txt"
port=$BASE
for store in $STORES; do
  declare -A spid=() url=() tok=() rport=() seed=()
  for side in A B; do
    if [ "$store" = redis ]; then
      rport[$side]=$port
      port=$((port + 1))
      mkdir -p "$tmp/redis-$side"
      redis-server --port "${rport[$side]}" --bind 127.0.0.1 --protected-mode no --dir "$tmp/redis-$side" --save "" \
        --appendonly yes --appendfsync everysec --daemonize no >"$tmp/redis-$side/redis.log" 2>&1 &
      pids+=($!)
      wait_until redis-cli -p "${rport[$side]}" ping
      flags=(--redis-url "redis://127.0.0.1:${rport[$side]}")
      seed[$side]="-redis-url redis://127.0.0.1:${rport[$side]}"
    else
      flags=(--db "$tmp/$side.db")
      seed[$side]="-db $tmp/$side.db"
    fi
    tok[$side]=$("$bin" token create --login bench "${flags[@]}")
    "$bin" serve --addr "127.0.0.1:$port" "${flags[@]}" >"$tmp/serve-$store-$side.log" 2>&1 &
    spid[$side]=$!
    pids+=($!)
    url[$side]="http://127.0.0.1:$port"
    port=$((port + 1))
    wait_until curl -fsS "${url[$side]}/health"
  done
  workers=64
  [ "$store" = sqlite ] && workers=256
  log "== $store: seeding A with 1,000 and B with $((ACCOUNTS * 100)) held locks"
  # shellcheck disable=SC2086
  "$tmp/growth" ${seed[A]} -from 0 -accounts 10 -per 100 -workers "$workers" >&2
  t0=$(date +%s)
  # shellcheck disable=SC2086
  "$tmp/growth" ${seed[B]} -from 0 -accounts "$ACCOUNTS" -per 100 -workers "$workers" >&2
  log "seeding B took $(($(date +%s) - t0)) s"
  sleep 2
  for side in A B; do
    held=1000
    [ "$side" = B ] && held=$((ACCOUNTS * 100))
    mem=""
    [ "$store" = redis ] && mem=$(used_memory "${rport[$side]}")
    printf '%s %s %s %s\n' "$store" "$held" "$(rss_kib "${spid[$side]}")" "$mem" >>"$tmp/memory.txt"
  done
  for r in $(seq "$ROUNDS"); do
    # A then B in odd rounds, B then A in even ones: the machine's drift
    # within a round then favours neither side.
    sides="A B"
    [ $((r % 2)) = 0 ] && sides="B A"
    for side in $sides; do
      held=1000
      [ "$side" = B ] && held=$((ACCOUNTS * 100))
      OCTOSTORE_TOKEN=${tok[$side]} "$bin" bench --json --quiet --duration "$DURATION" --clients 32 \
        --url "${url[$side]}" --label "octostore-$store|$held|$r" | tee -a "$tmp/growth.jsonl" | cut -c1-160 >&2
    done
  done
  if [ "$store" = sqlite ]; then
    log "sqlite files: A $(du -k "$tmp/A.db" | cut -f1) KiB, B $(du -k "$tmp/B.db" | cut -f1) KiB"
    printf 'sqlite-file %s %s\n' "$(du -k "$tmp/A.db" | cut -f1)" "$(du -k "$tmp/B.db" | cut -f1)" >>"$tmp/memory.txt"
  fi
  for side in A B; do kill "${spid[$side]}" 2>/dev/null || true; done
done

mkdir -p "$OUT"
cp "$tmp/growth.jsonl" "$OUT/growth.jsonl"
{
  echo "# make bench-growth — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  echo "32 clients, distinct names; $ROUNDS rounds of $DURATION on A (1,000 held locks) and B"
  echo "($((ACCOUNTS * 100)) held locks) in turn, B first in even rounds; seeded locks have TTL 1 h. Load average at the end:"
  echo "$(cut -d' ' -f1-3 /proc/loadavg)."
  echo
  python3 - "$tmp/growth.jsonl" "$tmp/memory.txt" <<'EOF'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    name, held, rnd = r["label"].split("|")
    runs.setdefault((name, int(held)), []).append(r)
print("| store | held locks | cycles/s per round | median cycles/s | median acquire p50 ms | median acquire p99 ms | errors |")
print("|---|---:|---|---:|---:|---:|---:|")
med = {}
for (name, held), rs in runs.items():
    cps = [r["cycles_per_sec"] for r in rs]
    med[(name, held)] = statistics.median(cps)
    print(f"| {name} | {held} | {', '.join(f'{c:.0f}' for c in cps)} | {statistics.median(cps):.0f} | "
          f"{statistics.median(r['acquire']['p50_ms'] for r in rs):.3f} | {statistics.median(r['acquire']['p99_ms'] for r in rs):.3f} | "
          f"{sum(r['errors'] for r in rs)} |")
print()
for name in sorted({n for n, _ in med}):
    hs = sorted(h for n, h in med if n == name)
    lo, hi = med[(name, hs[0])], med[(name, hs[-1])]
    verdict = "within 20%" if hi >= 0.8 * lo else "**more than 20% slower**"
    print(f"- {name}: median with {hs[-1]:,} held locks / with {hs[0]:,}: {hi:.0f} / {lo:.0f} = {hi / lo:.2f} ({verdict})")
print()
mem = {}
files = None
for line in open(sys.argv[2]):
    f = line.split()
    if f[0] == "sqlite-file":
        files = (int(f[1]), int(f[2]))
        continue
    mem[(f[0], int(f[1]))] = (int(f[2]), int(f[3]) if len(f) > 3 else None)
print("| store | held locks | server RSS KiB | Redis used_memory bytes |")
print("|---|---:|---:|---:|")
for (s, h), (rss, um) in mem.items():
    print(f"| {s} | {h} | {rss} | {um if um is not None else '—'} |")
print()
for s in sorted({s for s, _ in mem}):
    hs = sorted(h for t, h in mem if t == s)
    (r1, u1), (r2, u2) = mem[(s, hs[0])], mem[(s, hs[-1])]
    n = hs[-1] - hs[0]
    line = f"- {s}: server RSS {r2 - r1:+d} KiB for {n:,} more held locks ({(r2 - r1) * 1024 / n:.1f} bytes per lock)"
    if u1 is not None:
        line += f"; Redis used_memory {(u2 - u1) / 1048576:+.1f} MiB ({(u2 - u1) / n:.0f} bytes per lock)"
    print(line)
if files:
    hs = sorted(h for t, h in mem if t == "sqlite")
    n = hs[-1] - hs[0]
    print(f"- sqlite: database file {files[0]} KiB with 1,000 held locks, {files[1]} KiB with {hs[-1]:,} "
          f"({(files[1] - files[0]) * 1024 / n:.0f} bytes per lock on disk; the server keeps no lock in memory)")
EOF
} >"$OUT/growth.md"
cat "$OUT/growth.md"
