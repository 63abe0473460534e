# lib.sh — shell helpers shared by compare.sh and growth.sh (sourced, not
# run). They expect `set -euo pipefail`, the repository root as the working
# directory and GO set to the go command.

log() { printf '%s\n' "$*" >&2; }

# install_missing CMD:PACKAGE...: installs from Debian's packages the
# PACKAGE of every CMD that is not on the PATH (nothing when all are there).
install_missing() {
  local need=() pair
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
  done
  if [ "${#need[@]}" -gt 0 ]; then
    log "installing: ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
}

# start_workdir NAME: makes the temp dir $tmp and arranges that, however the
# script ends, every process whose pid is in pids is stopped and $tmp is
# removed (kept when BENCH_KEEP=1).
start_workdir() {
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")
  pids=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}
cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ "${BENCH_KEEP:-}" = 1 ]; then log "kept $tmp"; else rm -rf "$tmp"; fi
}

# port_free PORT: true when nothing listens on 127.0.0.1:PORT.
port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_until CMD...: retry for up to 20 s.
wait_until() {
  local i
  for i in $(seq 200); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "timed out waiting for: $*"
  return 1
}

# build_octostore: sets bin to an octostore binary in $tmp: a copy of
# BENCH_BIN when set, else one built from this tree.
build_octostore() {
  bin="$tmp/octostore"
  if [ -n "${BENCH_BIN:-}" ]; then
    cp "$BENCH_BIN" "$bin"
  else
    log "building octostore"
    CGO_ENABLED=0 "$GO" build -trimpath -o "$bin" ./cmd/octostore
  fi
}
