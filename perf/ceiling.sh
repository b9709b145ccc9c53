#!/usr/bin/env bash
# The harness's ceiling: how many requests/s the per-core placement can show at all.
# `get-set-p1` and `get-set-p16` (same flags as those scenarios) against ringkv, Redis
# and perf/null-server.c, a server that stores nothing and answers with one recv and
# one send per readable connection. No server on the kernel's TCP stack can do less
# per request, so the null server's figure bounds what any server, ringkv included,
# can reach under this generator on these CPUs; alternated ROUNDS times. Then the
# same with redis-benchmark as the client.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
common=(--data-size 32 --key-maximum 100000 --ratio 1:10 --key-pattern random --clients 50)
run_scenario ceiling-p1 core "redis null" "${common[@]}" --pipeline 1
run_scenario ceiling-p16 core "redis null" "${common[@]}" --pipeline 16
python3 "$PERF_DIR/summarize.py" "$RESULTS_DIR"

# The same question for redis-benchmark, the client of perf/resp-vs-redis.sh (ringkv's
# RESP port is measured there): Redis and the null server, alternated, depth 1 and 16.
out="$RESULTS_DIR/ceiling-redis-benchmark"
mkdir -p "$out"
for ((round = 1; round <= ROUNDS; round++)); do
    for pipeline in 1 16; do
        for kind in redis null; do
            log "ceiling-redis-benchmark round $round/$ROUNDS: $kind, depth $pipeline"
            start_server "$kind" core
            taskset -c 1 redis-benchmark -p "$SERVER_PORT" -c 50 -n "${REQUESTS:-300000}" \
                -t set,get -d 32 -r 100000 -P "$pipeline" --csv >"$out/$kind-P$pipeline-r$round.csv"
            stop_server
        done
    done
done
python3 - "$out" <<'PY' | tee "$out/summary.md"
import csv, glob, os, statistics, sys
rows = {}
for path in sorted(glob.glob(os.path.join(sys.argv[1], "*-P*-r*.csv"))):
    kind, pipeline, _ = os.path.basename(path)[:-4].split("-")
    for rec in csv.DictReader(open(path)):
        rows.setdefault((rec["test"], pipeline[1:], kind), []).append(float(rec["rps"]))
print("| test | depth | Redis ops/s (min-max) | null ops/s (min-max) | null / Redis |")
print("| --- | --- | ---: | ---: | ---: |")
for pipeline in ("1", "16"):
    for test in ("SET", "GET"):
        r, n = rows[(test, pipeline, "redis")], rows[(test, pipeline, "null")]
        rm, nm = statistics.median(r), statistics.median(n)
        print(f"| {test} | {pipeline} | {rm:,.0f} ({min(r):,.0f}-{max(r):,.0f}) "
              f"| {nm:,.0f} ({min(n):,.0f}-{max(n):,.0f}) | {nm / rm:.2f}x |")
PY
