#!/usr/bin/env bash
# Scenario `restart` (shared BENCHMARKING.md): time from process start to serving with
# KEYS keys on disk (16 B keys `key:0000NNNNNNNN`, 32 B values), server on CPU 0.
#   ringkv: loaded by `ringkv bench --preload` (default --durability sync, periodic
#   hints on: the loading node's hint lines are kept in ringkv-load-hints.txt), then
#     kill:   SIGKILL, hint.dat removed, restart                  -> full scan (a crash
#             before any hint: the worst case)
#     clean:  SIGTERM (the node writes its hint), restart        -> hint used
#     crash:  TAIL overwrites (default KEYS/10) after that hint, SIGKILL, restart
#             -> the periodic hint plus a scan of the tail (a crash between hints)
#     (the first `kill` round is a real SIGKILL of the loader node; hint.dat is removed
#     before every `kill` restart)
#     serving = the `ready` line printed AND `ringkv get` of a key answers its value.
#   redis: loaded by `ringkv bench --protocol resp --preload`, SAVE (RDB), stopped;
#     restart -> serving = PING answers PONG and `INFO persistence` says loading:0.
# Each restart starts cold: the data files are evicted from the page cache first
# (ringkv reads with O_DIRECT anyway; Redis reads its RDB through the page cache).
# Cases alternate ringkv-kill, ringkv-clean, ringkv-crash, redis ROUNDS times. KEYS defaults to 10 M;
# RSS after each restart is recorded too.
source "$(dirname "$0")/storage-lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
NAME=restart
OUT="$RESULTS_DIR/$NAME"
mkdir -p "$OUT"
KEYS="${KEYS:-10000000}"
KMIN=10000000 # 8 digits after the 8-byte prefix: 16-byte keys
KMAX=$((KMIN + KEYS - 1))
PROBE_KEY="key:0000$((KMIN + KEYS / 2))"
TAIL="${TAIL:-$((KEYS / 10))}"
LOAD=(--threads 1 --cpus 1 --key-prefix key:0000 --key-minimum "$KMIN" --key-maximum "$KMAX"
    --data-size 32 --preload --ratio 0:1 --clients 1 --requests 1 --timeout-ms 60000 --no-progress)
{
    echo "scenario: $NAME"
    echo "placement: server taskset -c 0, loader taskset -c 1"
    echo "keys: $KEYS (16 B keys, 32 B values); loader: ringkv bench ${LOAD[*]}"
    echo "ringkv: serve --cores 1 (defaults: --durability sync, --cache-size-mib 1024, --hint-interval-secs 60)"
    echo "crash case: $TAIL overwrites (ringkv bench --ratio 1:0, random keys) after the hint, then SIGKILL"
    echo "redis: redis-server --save '' --appendonly no, RDB written by SAVE"
} >"$OUT/settings.txt"

RK_WORK="$(mktemp -d /tmp/ringkv-perf-restart-rk.XXXXXX)"
RD_WORK="$(mktemp -d /tmp/ringkv-perf-restart-rd.XXXXXX)"
trap 'stop_server; rm -rf "$RK_WORK" "$RD_WORK"' EXIT

load() { # KIND
    local t0 t1
    t0="$(now_ns)"
    timeout 1800 taskset -c 1 "$RINGKV" bench --addr "127.0.0.1:$SERVER_PORT" \
        --protocol "$(protocol_of "$1")" "${LOAD[@]}" --json-out "$OUT/load-$1.json" \
        >"$OUT/load-$1.txt" 2>"$OUT/load-$1.log"
    t1="$(now_ns)"
    log "$1 loaded $KEYS keys in $(((t1 - t0) / 1000000)) ms"
}

# record CASE ROUND T0 T1: a JSON row for the summary.
record() {
    local rss keys=""
    rss="$(rss_kib "$SERVER_PID")"
    if [[ $1 == redis ]]; then
        keys="$(redis-cli -p "$REDIS_PORT" dbsize)"
    else
        keys="$(ringkv_stat keys)"
    fi
    printf '{"case": "%s", "round": %d, "seconds_to_serving": %.3f, "keys": %s, "rss_kib": %s}\n' \
        "$1" "$2" "$(echo "($4 - $3) / 1000000000" | bc -l)" "${keys:-null}" "$rss" \
        >"$OUT/restart-$1-r$2.json"
    log "restart $1 round $2: $(echo "($4 - $3) / 1000000" | bc) ms, keys ${keys:-?}, rss ${rss} KiB"
}

ringkv_restart() { # CASE ROUND
    local t0 t1 i
    rm -f "$RK_WORK/out" "$RK_WORK/err"
    drop_file_cache "$RK_WORK/data"
    t0="$(now_ns)"
    start_ringkv_flags "$RK_WORK"
    for ((i = 0; i < 6000; i++)); do
        "$RINGKV" --addr "127.0.0.1:$RINGKV_PORT" get "$PROBE_KEY" >/dev/null 2>&1 && break
        sleep 0.005
    done
    t1="$(now_ns)"
    record "ringkv-$1" "$2" "$t0" "$t1"
    cp "$RK_WORK/err" "$OUT/ringkv-$1-r$2.stderr"
}

# overwrite_tail: TAIL random overwrites of loaded keys, so the log holds a tail after
# the last hint.
overwrite_tail() {
    taskset -c 1 "$RINGKV" bench --addr "127.0.0.1:$RINGKV_PORT" --threads 1 --cpus 1 \
        --key-prefix key:0000 --key-minimum "$KMIN" --key-maximum "$KMAX" --data-size 32 \
        --ratio 1:0 --clients 8 --pipeline 8 --requests $((TAIL / 8)) --timeout-ms 60000 \
        --no-progress >"$OUT/tail-r$1.txt" 2>&1
}

redis_restart() { # ROUND
    local t0 t1 i
    drop_file_cache "$RD_WORK/dump.rdb"
    t0="$(now_ns)"
    taskset -c 0 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$RD_WORK" \
        --save '' --appendonly no --daemonize no --logfile "$RD_WORK/redis.log" &
    SERVER_PID=$!
    SERVER_PORT="$REDIS_PORT"
    for ((i = 0; i < 60000; i++)); do
        if [[ "$(redis-cli -p "$REDIS_PORT" ping 2>/dev/null)" == PONG ]] &&
            redis-cli -p "$REDIS_PORT" info persistence 2>/dev/null | grep -q '^loading:0'; then
            break
        fi
        sleep 0.005
    done
    t1="$(now_ns)"
    record redis "$1" "$t0" "$t1"
}

log "$NAME: loading ringkv with $KEYS keys"
start_ringkv_flags "$RK_WORK"
load ringkv
ls -l "$RK_WORK"/data/shard-0 >"$OUT/ringkv-files.txt"
du -sh "$RK_WORK/data" >>"$OUT/ringkv-files.txt"
grep 'wrote a hint' "$RK_WORK/err" >"$OUT/ringkv-load-hints.txt" || true
kill_server KILL # round 1 of `kill`: the loader node dies

log "$NAME: loading redis with $KEYS keys"
start_redis_flags "$RD_WORK"
load redis
log "redis SAVE: $(redis-cli -p "$REDIS_PORT" save 2>&1), dir $(redis-cli -p "$REDIS_PORT" config get dir | tail -1), keys $(redis-cli -p "$REDIS_PORT" dbsize)"
ls -l "$RD_WORK" >"$OUT/redis-files.txt"
[[ -s "$RD_WORK/dump.rdb" ]] || { log "no RDB written"; tail -20 "$RD_WORK/redis.log" >&2; exit 1; }
kill_server TERM

for ((round = 1; round <= ROUNDS; round++)); do
    rm -f "$RK_WORK/data/shard-0/hint.dat"
    ringkv_restart kill "$round"
    kill_server TERM # writes the hint for the clean case
    ringkv_restart clean "$round"
    overwrite_tail "$round"
    kill_server KILL
    ringkv_restart crash "$round"
    kill_server TERM
    redis_restart "$round"
    kill_server TERM
done
python3 "$PERF_DIR/storage_summary.py" restart "$OUT" | tee "$OUT/summary.md"
