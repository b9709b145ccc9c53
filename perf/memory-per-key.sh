#!/usr/bin/env bash
# Scenario `memory-per-key` (shared BENCHMARKING.md): resident bytes per key with KEYS
# keys (16 B keys `key:0000NNNNNNNN`, 32 B values) loaded by `ringkv bench --preload`
# (loader on CPU 1, server on CPU 0), RSS from /proc/PID/status after the load:
#   ringkv-cached:   serve --cores 1 --cache-size-mib 4096 (every value in memory)
#   ringkv-uncached: serve --cores 1 --cache-size-mib 1 (values evicted: the index alone)
#   redis:           redis-server (appendonly no, save '')
#   memcached:       memcached -t 1 -m 4096
# Also records the RSS of an idle, empty server of each kind (the baseline subtracted
# for bytes per key). ROUNDS defaults to 1 here (memory does not drift like ops/s).
source "$(dirname "$0")/storage-lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
ROUNDS="${MEM_ROUNDS:-1}"
NAME=memory-per-key
OUT="$RESULTS_DIR/$NAME"
mkdir -p "$OUT"
KEYS="${KEYS:-10000000}"
KMIN=10000000
KMAX=$((KMIN + KEYS - 1))
LOAD=(--threads 1 --cpus 1 --key-prefix key:0000 --key-minimum "$KMIN" --key-maximum "$KMAX"
    --data-size 32 --preload --ratio 0:1 --clients 1 --requests 1 --timeout-ms 60000 --no-progress)
{
    echo "scenario: $NAME"
    echo "placement: server taskset -c 0, loader taskset -c 1"
    echo "keys: $KEYS (16 B keys, 32 B values); loader: ringkv bench ${LOAD[*]}"
} >"$OUT/settings.txt"

trap_cleanup

start_case() { # CASE
    new_work mem
    case "$1" in
    ringkv-cached) start_ringkv_flags "$WORK" --cache-size-mib 4096 ;;
    ringkv-uncached) start_ringkv_flags "$WORK" --cache-size-mib 1 ;;
    redis) start_redis_flags "$WORK" ;;
    memcached)
        taskset -c 0 memcached -t 1 -u root -l 127.0.0.1 -p "$MEMCACHED_PORT" -m 4096 -c 4096 &
        SERVER_PID=$!
        SERVER_PORT="$MEMCACHED_PORT"
        wait_port "$MEMCACHED_PORT"
        ;;
    esac
}

proto() { case "$1" in ringkv*) echo ringkv ;; redis) echo resp ;; memcached) echo memcache ;; esac; }

for ((round = 1; round <= ROUNDS; round++)); do
    for c in ringkv-uncached ringkv-cached redis memcached; do
        start_case "$c"
        sleep 0.5
        base="$(rss_kib "$SERVER_PID")"
        t0="$(now_ns)"
        timeout 1800 taskset -c 1 "$RINGKV" bench --addr "127.0.0.1:$SERVER_PORT" \
            --protocol "$(proto "$c")" "${LOAD[@]}" --json-out "$OUT/load-$c-r$round.json" \
            >"$OUT/load-$c-r$round.txt" 2>"$OUT/load-$c-r$round.log"
        t1="$(now_ns)"
        sleep 2
        rss="$(rss_kib "$SERVER_PID")"
        extra=""
        case "$c" in
        ringkv*)
            "$RINGKV" --addr "127.0.0.1:$RINGKV_PORT" stats >"$OUT/$c-r$round.stats"
            extra="$(ringkv_stat cached_bytes)"
            ;;
        redis) redis-cli -p "$REDIS_PORT" info memory >"$OUT/$c-r$round.info" ;;
        memcached) printf 'stats\r\nquit\r\n' | timeout 5 bash -c "exec 3<>/dev/tcp/127.0.0.1/$MEMCACHED_PORT; cat >&3; cat <&3" >"$OUT/$c-r$round.stats" || true ;;
        esac
        python3 - "$c" "$round" "$KEYS" "$base" "$rss" "$((t1 - t0))" "${extra:-0}" \
            >"$OUT/memory-$c-r$round.json" <<'EOF'
import json, sys
case, rnd, keys, base, rss, ns, cached = sys.argv[1:]
keys, base, rss = int(keys), int(base) * 1024, int(rss) * 1024
per_key = (rss - base) / keys
print(json.dumps({
    "case": case, "round": int(rnd), "keys": keys,
    "rss_mib": rss / 2**20, "idle_rss_mib": base / 2**20,
    "bytes_per_key": per_key,
    # Beyond the key's own 16 bytes (and, when cached, the value's 32).
    "overhead_per_key": per_key - 16 - (32 if case != "ringkv-uncached" else 0),
    "load_seconds": int(ns) / 1e9, "cached_bytes": int(cached),
}))
EOF
        log "$c: $(cat "$OUT/memory-$c-r$round.json")"
        kill_server TERM
        cleanup_work
    done
done
python3 "$PERF_DIR/storage_summary.py" memory-per-key "$OUT" | tee "$OUT/summary.md"
