#!/usr/bin/env bash
# Scenario `durable-set` (shared BENCHMARKING.md): 100 % SET, 256 B values, 50
# connections, pipeline 1, every write acknowledged only once on disk:
#   ringkv serve (default --durability sync: group commit, fdatasync before the ack)
#   redis-server --appendonly yes --appendfsync always
# Placement "core": server on CPU 0, `ringkv bench` on CPU 1; alternated ROUNDS times.
# Data dirs on /tmp (ext4 on the virtio disk). Besides the bench figures it records
# ringkv's durable_waits, durable_wait_us, log writes and syncs over the run (client
# writes per commit, mean commit time, mean group-commit wait).
#
# CEILING=1 adds three servers that keep nothing on disk, under the same load: ringkv
# in memory (--eviction lru, no log), Redis without AOF or RDB, and perf/null-server.c
# (answers +OK, stores nothing). The first two show what each request path does with
# no durability at all, the most the durable run of the same server could reach; the
# null server shows the most any server can show with this generator and placement.
source "$(dirname "$0")/storage-lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
NAME=durable-set
OUT="$RESULTS_DIR/$NAME"
mkdir -p "$OUT"
KEYS="${KEYS:-1000000}"
FLAGS=(--threads 1 --cpus 1 --clients 50 --pipeline 1 --ratio 1:0 --data-size 256
    --key-minimum 1 --key-maximum "$KEYS" --key-pattern random
    --warmup "$WARMUP" --test-time "$TEST_TIME" --timeout-ms 5000)
{
    echo "scenario: $NAME"
    echo "placement: core (server taskset -c 0, load taskset -c 1)"
    echo "servers: ringkv (serve --cores 1, --durability sync default) redis (--appendonly yes --appendfsync always)"
    if [[ ${CEILING:-} == 1 ]]; then
        echo "ceiling: ringkv-memory (serve --cores 1 --eviction lru, no log) redis-memory (--appendonly no --save '') null (perf/null-server.c)"
    fi
    echo "bench flags: ${FLAGS[*]}"
} >"$OUT/settings.txt"

KINDS=(ringkv redis)
[[ ${CEILING:-} == 1 ]] && KINDS+=(ringkv-memory redis-memory null)

trap_cleanup

for ((round = 1; round <= ROUNDS; round++)); do
    for kind in "${KINDS[@]}"; do
        log "$NAME round $round/$ROUNDS: $kind (load average $(cut -d' ' -f1 /proc/loadavg))"
        new_work durable
        case $kind in
        ringkv) start_ringkv_flags "$WORK" ;;
        redis) start_redis_flags "$WORK" --appendonly yes --appendfsync always ;;
        ringkv-memory) start_ringkv_flags "$WORK" --eviction lru ;;
        redis-memory) start_redis_flags "$WORK" ;;
        null) start_server null core ;;
        esac
        echo "$(date -u +%H:%M:%S) $kind round $round load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/loadavg.txt"
        t0="$(now_ns)"
        timeout $((WARMUP + TEST_TIME + 60)) taskset -c 1 "$RINGKV" bench \
            --addr "127.0.0.1:$SERVER_PORT" --protocol "$(protocol_of "${kind%-memory}")" \
            --server-pid "$SERVER_PID" --no-progress \
            --json-out "$OUT/$kind-r$round.json" --hdr-out "$OUT/$kind-r$round" \
            "${FLAGS[@]}" >"$OUT/$kind-r$round.txt" 2>"$OUT/$kind-r$round.log"
        t1="$(now_ns)"
        if [[ $kind == ringkv ]]; then
            # Whole run (warmup included): syncs per second, writes per sync, mean wait.
            "$RINGKV" --addr "127.0.0.1:$RINGKV_PORT" stats >"$OUT/ringkv-r$round.stats"
            python3 - "$OUT/ringkv-r$round.stats" "$((t1 - t0))" >"$OUT/ringkv-r$round.commit.json" <<'EOF'
import json, re, sys
stats = {}
for line in open(sys.argv[1]):
    m = re.match(r"\s*([a-z_]+)\s*[:=]?\s*(\d+)\s*$", line)
    if m:
        stats[m.group(1)] = int(m.group(2))
secs = int(sys.argv[2]) / 1e9
waits, wait_us = stats.get("durable_waits", 0), stats.get("durable_wait_us", 0)
writes, syncs = stats.get("log_flushes", 0), stats.get("log_syncs", 0)
# A commit is one O_DSYNC write (write-through, the default in sync mode) or one
# fdatasync covering earlier writes.
commits = syncs or writes
print(json.dumps({
    "seconds": secs,
    "durable_waits": waits,
    "durable_wait_us": wait_us,
    "mean_durable_wait_us": wait_us / waits if waits else None,
    "log_writes": writes,
    "log_write_us": stats.get("log_write_us", 0),
    "log_syncs": syncs,
    "log_sync_us": stats.get("log_sync_us", 0),
    "commits_per_sec": commits / secs,
    "writes_per_commit": waits / commits if commits else None,
    "mean_commit_us": (stats.get("log_sync_us", 0) / syncs if syncs
                       else stats.get("log_write_us", 0) / writes if writes else None),
}))
EOF
        elif [[ $kind == redis ]]; then
            redis-cli -p "$REDIS_PORT" info persistence >"$OUT/redis-r$round.persistence"
        fi
        kill_server TERM
        cleanup_work
    done
done
python3 "$PERF_DIR/storage_summary.py" durable-set "$OUT" | tee "$OUT/summary.md"
