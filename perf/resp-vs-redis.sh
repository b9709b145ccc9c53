#!/usr/bin/env bash
# ringkv's RESP port against Redis 7, same machine, per-core placement:
# each server on CPU 0 (ringkv with --cores 1), redis-benchmark on CPU 1.
#   redis-benchmark -c 50 -n 200000 -t get,set -d 32 -r 100000 -P {1,16} --csv
# alternated ROUNDS times (redis, ringkv, redis, ringkv, ...); prints the medians of
# ops/s and p99 per server, test and pipeline depth, and the ringkv/redis ratios.
# Each turn also runs our own generator, whose client costs less per request than
# redis-benchmark (which saturates its core near 1 M ops/s at depth 16):
#   ringkv bench --protocol resp --threads 1 --cpus 1 --clients 50 --pipeline {1,16}
#     --data-size 32 --key-maximum 100000 --ratio 1:10 --preload --test-time TEST_TIME
# Needs: redis-server, redis-benchmark (Debian redis-server, redis-tools), taskset,
# python3, and a release build (cargo build --release). Raw CSVs and JSON go to
# perf/tmp/.
set -euo pipefail

cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-200000}
TEST_TIME=${TEST_TIME:-8}
BIN=${RINGKV_BIN:-${CARGO_TARGET_DIR:-target}/release/ringkv}
OUT=perf/tmp
REDIS_PORT=${REDIS_PORT:-16379}
RINGKV_PORT=${RINGKV_PORT:-16380}
mkdir -p "$OUT"
rm -f "$OUT"/*.csv "$OUT"/bench-*.json

[ -x "$BIN" ] || { echo "no release binary at $BIN (cargo build --release)" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

data=$(mktemp -d /tmp/ringkv-bench-XXXXXX)
taskset -c 0 redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$data" >/dev/null 2>&1 &
pids+=($!)
# Redis runs without persistence, so ringkv runs as an in-memory cache too
# (RINGKV_SERVE_FLAGS= measures its durable default instead).
# shellcheck disable=SC2086
taskset -c 0 "$BIN" serve --cores 1 --port 0 --resp-port "$RINGKV_PORT" \
    --data-dir "$data/ringkv" ${RINGKV_SERVE_FLAGS---eviction lru} >"$OUT/ringkv.log" 2>&1 &
pids+=($!)
for port in "$REDIS_PORT" "$RINGKV_PORT"; do
    for _ in $(seq 100); do
        redis-cli -p "$port" PING >/dev/null 2>&1 && break
        sleep 0.1
    done
done

for round in $(seq "$ROUNDS"); do
    for pipeline in 1 16; do
        for server in redis ringkv; do
            port=$REDIS_PORT
            pid=${pids[0]}
            if [ "$server" = ringkv ]; then port=$RINGKV_PORT; pid=${pids[1]}; fi
            redis-cli -p "$port" FLUSHALL >/dev/null
            taskset -c 1 redis-benchmark -p "$port" -c 50 -n "$REQUESTS" -t get,set -d 32 \
                -r 100000 -P "$pipeline" --csv >"$OUT/$server-P$pipeline-$round.csv"
            redis-cli -p "$port" FLUSHALL >/dev/null
            taskset -c 1 "$BIN" bench --addr "127.0.0.1:$port" --protocol resp --threads 1 \
                --cpus 1 --clients 50 --pipeline "$pipeline" --data-size 32 \
                --key-maximum 100000 --ratio 1:10 --key-pattern random --preload --warmup 1 \
                --test-time "$TEST_TIME" --server-pid "$pid" --no-progress \
                --json-out "$OUT/bench-$server-P$pipeline-$round.json" >/dev/null
            echo "round $round P=$pipeline $server done" >&2
        done
    done
done

python3 - "$OUT" <<'PY'
import csv, glob, statistics, sys
out = sys.argv[1]
rows = {}
for path in glob.glob(f"{out}/*.csv"):
    name = path.rsplit("/", 1)[1][:-4]
    server, pipeline, _round = name.split("-")
    with open(path) as f:
        for rec in csv.DictReader(f):
            key = (rec["test"], pipeline, server)
            rows.setdefault(key, []).append((float(rec["rps"]), float(rec["p99_latency_ms"])))
print("| test | P | redis ops/s | ringkv ops/s | ratio | redis p99 ms | ringkv p99 ms |")
print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
for test in ("SET", "GET"):
    for pipeline in ("P1", "P16"):
        r = rows.get((test, pipeline, "redis"), [])
        k = rows.get((test, pipeline, "ringkv"), [])
        if not r or not k:
            continue
        r_ops = statistics.median(x[0] for x in r)
        k_ops = statistics.median(x[0] for x in k)
        r_p99 = statistics.median(x[1] for x in r)
        k_p99 = statistics.median(x[1] for x in k)
        print(f"| {test} | {pipeline[1:]} | {r_ops:,.0f} | {k_ops:,.0f} | {k_ops / r_ops:.2f}x "
              f"| {r_p99:.3f} | {k_p99:.3f} |")
print(f"\n(medians of {len(r)} runs each)")
PY
python3 - "$OUT" <<'PY'
import glob, json, statistics, sys
out = sys.argv[1]
rows = {}
for path in glob.glob(f"{out}/bench-*.json"):
    _, server, pipeline, _round = path.rsplit("/", 1)[1][:-5].split("-")
    with open(path) as f:
        j = json.load(f)
    total = j["totals"]
    rows.setdefault((pipeline, server), []).append(
        (total["ops_per_sec"], total["latency_us"]["p99"], j["server_cpu_percent"], j["client_cpu_percent"]))
print("\nringkv bench --protocol resp (get-set, SET:GET 1:10):\n")
print("| P | redis ops/s | ringkv ops/s | ratio | redis p99 us | ringkv p99 us "
      "| client CPU % redis / ringkv |")
print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
for pipeline in ("P1", "P16"):
    r, k = rows.get((pipeline, "redis"), []), rows.get((pipeline, "ringkv"), [])
    if not r or not k:
        continue
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"| {pipeline[1:]} | {med(r, 0):,.0f} | {med(k, 0):,.0f} | {med(k, 0) / med(r, 0):.2f}x "
          f"| {med(r, 1):,.0f} | {med(k, 1):,.0f} | {med(r, 3):.0f} / {med(k, 3):.0f} |")
print(f"\n(medians of {len(r)} runs each)")
PY
rm -rf "$data"
