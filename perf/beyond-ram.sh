#!/usr/bin/env bash
# Scenario `beyond-ram` (shared BENCHMARKING.md): 1 KiB values, KEYS keys (1 M = 1 GiB of
# values) against a value cache of CACHE_MIB (64 MiB): most values live only on disk.
# ringkv serve --cores 1 --cache-size-mib 64 on CPU 0 (data dir on /tmp), loaded once by
# `ringkv bench --preload`; then ROUNDS measured runs of 100 % GET with Zipf 0.99 keys
# (50 connections, pipeline 1, load on CPU 1), and one run of uniform keys (the
# worst case: nearly every GET is a disk read). value_fetches (GETs that read the log)
# come from STATS before and after each run. No peer: Redis cannot hold more than RAM.
source "$(dirname "$0")/storage-lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
NAME=beyond-ram
OUT="$RESULTS_DIR/$NAME"
mkdir -p "$OUT"
KEYS="${KEYS:-1000000}"
CACHE_MIB="${CACHE_MIB:-64}"
COMMON=(--threads 1 --cpus 1 --key-minimum 1 --key-maximum "$KEYS" --data-size 1024)
RUN=(--clients 50 --pipeline 1 --ratio 0:1 --warmup "$WARMUP" --test-time "$TEST_TIME" --no-progress)
{
    echo "scenario: $NAME"
    echo "placement: core (server taskset -c 0, load taskset -c 1)"
    echo "server: ringkv serve --cores 1 --cache-size-mib $CACHE_MIB; $KEYS keys x 1 KiB"
    echo "bench flags: ${COMMON[*]} ${RUN[*]} --key-pattern zipf --key-zipf-exp 0.99 (and one run --key-pattern random)"
} >"$OUT/settings.txt"

WORK="$(mktemp -d /tmp/ringkv-perf-beyond.XXXXXX)"
trap 'stop_server; rm -rf "$WORK"' EXIT

start_ringkv_flags "$WORK" --cache-size-mib "$CACHE_MIB"
t0="$(now_ns)"
timeout 1800 taskset -c 1 "$RINGKV" bench --addr "127.0.0.1:$RINGKV_PORT" "${COMMON[@]}" \
    --preload --ratio 0:1 --clients 1 --requests 1 --timeout-ms 60000 --no-progress \
    >"$OUT/load.txt" 2>"$OUT/load.log"
log "loaded $KEYS x 1 KiB in $((($(now_ns) - t0) / 1000000)) ms"
"$RINGKV" --addr "127.0.0.1:$RINGKV_PORT" stats >"$OUT/after-load.stats"

measure() { # CASE ROUND PATTERN_FLAGS...
    local c="$1" r="$2" f0 f1 t0 t1 cached
    shift 2
    f0="$(ringkv_stat value_fetches)"
    t0="$(now_ns)"
    timeout $((WARMUP + TEST_TIME + 60)) taskset -c 1 "$RINGKV" bench \
        --addr "127.0.0.1:$RINGKV_PORT" --server-pid "$SERVER_PID" "${COMMON[@]}" "${RUN[@]}" "$@" \
        --json-out "$OUT/$c-r$r.json" --hdr-out "$OUT/$c-r$r" \
        >"$OUT/$c-r$r.txt" 2>"$OUT/$c-r$r.log"
    t1="$(now_ns)"
    f1="$(ringkv_stat value_fetches)"
    cached="$(ringkv_stat cached_bytes)"
    "$RINGKV" --addr "127.0.0.1:$RINGKV_PORT" stats >"$OUT/$c-r$r.stats"
    python3 - "$c" "$r" "$f0" "$f1" "$((t1 - t0))" "$cached" "$OUT/$c-r$r.json" \
        >"$OUT/fetch-$c-r$r.json" <<'EOF'
import json, sys
case, rnd, f0, f1, ns, cached, bench = sys.argv[1:]
secs = int(ns) / 1e9
fetches = int(f1) - int(f0)
j = json.load(open(bench))
ops = j["totals"]["ops_per_sec"]
print(json.dumps({
    "case": case, "round": int(rnd),
    # Over the whole run, warmup included (STATS is cumulative).
    "value_fetches_per_sec": fetches / secs,
    "fetch_share": fetches / secs / ops if ops else None,
    "cached_mib": int(cached) / 2**20,
}))
EOF
    log "$c round $r: $(cat "$OUT/fetch-$c-r$r.json")"
}

for ((round = 1; round <= ROUNDS; round++)); do
    measure ringkv "$round" --key-pattern zipf --key-zipf-exp 0.99
done
measure uniform 1 --key-pattern random
python3 "$PERF_DIR/storage_summary.py" beyond-ram "$OUT" | tee "$OUT/summary.md"
