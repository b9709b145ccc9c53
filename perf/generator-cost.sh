#!/usr/bin/env bash
# What does one request cost the load generator, per protocol and per server?
# `ringkv bench` with the get-set workload (placement "core": server on CPU 0,
# generator on CPU 1) against one ringkv node twice, over its native port
# (`--protocol ringkv`) and over its RESP port (`--protocol resp`), then against Redis
# (`--protocol resp`), pipeline 1 and 16, alternated ROUNDS times. Reports the
# generator's CPU microseconds per request. The two runs against ringkv separate the
# cost of the generator's protocol path from the cost of the server's reply pattern.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
out="$RESULTS_DIR/generator-cost"
mkdir -p "$out"
RINGKV_RESP_PORT="${RINGKV_RESP_PORT:-27870}"
export RINGKV_SERVE_FLAGS="${RINGKV_SERVE_FLAGS---eviction lru} --resp-port $RINGKV_RESP_PORT"
flags=(--threads 1 --cpus 1 --data-size 32 --key-maximum 100000 --ratio 1:10
    --key-pattern random --clients 50 --preload --warmup "$WARMUP" --test-time "$TEST_TIME")
{
    echo "scenario: generator-cost (client CPU per request, same workload, three paths)"
    echo "placement: server taskset -c 0, ringkv bench taskset -c 1"
    echo "paths: ringkv-native (--protocol ringkv), ringkv-resp (--protocol resp to ringkv's RESP port), redis-resp"
    echo "ringkv serve flags: $RINGKV_SERVE_FLAGS"
    echo "bench flags: ${flags[*]} --pipeline {1,16}"
} >"$out/settings.txt"
for ((round = 1; round <= ROUNDS; round++)); do
    for p in 1 16; do
        for path in ringkv-native ringkv-resp redis-resp; do
            case "$path" in
            ringkv-native) kind=ringkv protocol=ringkv ;;
            ringkv-resp) kind=ringkv protocol=resp ;;
            redis-resp) kind=redis protocol=resp ;;
            esac
            log "generator-cost round $round: pipeline $p $path (load average $(cut -d' ' -f1 /proc/loadavg))"
            start_server "$kind" core
            port="$SERVER_PORT"
            [[ $path == ringkv-resp ]] && port="$RINGKV_RESP_PORT"
            echo "$(date -u +%H:%M:%S) $path p$p round $round load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.txt"
            taskset -c 1 "$RINGKV" bench --addr "127.0.0.1:$port" --protocol "$protocol" \
                --pipeline "$p" --server-pid "$SERVER_PID" --no-progress "${flags[@]}" \
                --json-out "$out/$path-p$p-r$round.json" >/dev/null 2>"$out/$path-p$p-r$round.log"
            stop_server
        done
    done
done
python3 - "$out" <<'PY' | tee "$out/summary.md"
import glob, json, os, re, statistics, sys
runs = {}
for f in glob.glob(os.path.join(sys.argv[1], "*.json")):
    path, p = re.match(r"(.+)-p(\d+)-r\d+\.json", os.path.basename(f)).groups()
    j = json.load(open(f))
    ops, cpu = j["totals"]["ops_per_sec"], j["client_cpu_percent"]
    runs.setdefault((int(p), path), []).append((cpu / 100 / ops * 1e6, ops, cpu))
print("| pipeline | path | client CPU us per request (median, min-max) | ops/s (median) | client CPU % (median) |")
print("|---|---|---|---:|---:|")
for (p, path), rs in sorted(runs.items()):
    us = [r[0] for r in rs]
    print(f"| {p} | {path} | {statistics.median(us):.2f} ({min(us):.2f}-{max(us):.2f}) "
          f"| {statistics.median(r[1] for r in rs):,.0f} | {statistics.median(r[2] for r in rs):.1f} |")
PY
