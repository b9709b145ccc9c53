#!/usr/bin/env bash
# Is `ringkv bench` a fair load generator? Run it and redis-benchmark against the
# same Redis (server on CPU 0, both generators on CPU 1) with the same settings:
# 50 clients, 32 B values, 100 K keys, SET alone then GET alone, pipeline 1 and 16,
# alternated ROUNDS times. Reports each generator's median ops/s and the ratio.
# Keys differ only in their digits: redis-benchmark's -r pads them to 12 digits.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
out="$RESULTS_DIR/trust"
mkdir -p "$out"
TRUST_TIME="${TRUST_TIME:-8}"
start_server redis core
{
    echo "scenario: trust (redis-benchmark vs ringkv bench --protocol resp, same Redis)"
    echo "placement: redis-server taskset -c 0, each generator taskset -c 1"
    echo "redis-benchmark: -c 50 -P {1,16} -d 32 -r 100000 -t {set,get} -n <about ${TRUST_TIME}s of work>"
    echo "ringkv bench: --protocol resp --threads 1 --cpus 1 --clients 50 --pipeline {1,16} --data-size 32 --key-maximum 100000 --ratio {1:0,0:1} --warmup 1 --test-time $TRUST_TIME (GET runs --preload)"
} >"$out/settings.txt"
echo "round,pipeline,test,generator,ops_per_sec,p50_us,p99_us" >"$out/runs.csv"
# Requests for redis-benchmark so it runs about as long as ours: from our last rate.
declare -A last_rate
for ((round = 1; round <= ROUNDS; round++)); do
    for p in 1 16; do
        for t in set get; do
            ratio=1:0
            preload=()
            [[ $t == get ]] && ratio=0:1 && preload=(--preload)
            log "trust round $round: pipeline $p $t: ringkv bench"
            taskset -c 1 "$RINGKV" bench --addr "127.0.0.1:$REDIS_PORT" --protocol resp \
                --threads 1 --cpus 1 --clients 50 --pipeline "$p" --data-size 32 \
                --key-maximum 100000 --ratio "$ratio" "${preload[@]}" --warmup 1 \
                --test-time "$TRUST_TIME" --no-progress --server-pid "$SERVER_PID" \
                --json-out "$out/ringkv-bench-p$p-$t-r$round.json" >/dev/null 2>&1
            read -r ops p50 p99 < <(python3 -c "
import json,sys; j=json.load(open(sys.argv[1]))['totals']
print(j['ops_per_sec'], j['latency_us']['p50'], j['latency_us']['p99'])" \
                "$out/ringkv-bench-p$p-$t-r$round.json")
            echo "$round,$p,$t,ringkv-bench,$ops,$p50,$p99" >>"$out/runs.csv"
            n="$(python3 -c "print(max(50000, int($ops * $TRUST_TIME)))")"
            log "trust round $round: pipeline $p $t: redis-benchmark -n $n"
            taskset -c 1 redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -c 50 -P "$p" -d 32 \
                -r 100000 -n "$n" -t "$t" --csv >"$out/redis-benchmark-p$p-$t-r$round.csv" 2>/dev/null
            python3 -c "
import csv,sys; rows=list(csv.DictReader(open(sys.argv[1])))
r=rows[-1]; print(f\"{sys.argv[2]},{sys.argv[3]},{sys.argv[4]},redis-benchmark,{r['rps']},{float(r['p50_latency_ms'])*1000},{float(r['p99_latency_ms'])*1000}\")" \
                "$out/redis-benchmark-p$p-$t-r$round.csv" "$round" "$p" "$t" >>"$out/runs.csv"
        done
    done
done
stop_server
python3 - "$out" <<'PY' | tee "$out/summary.md"
import csv, statistics, sys, os
rows = list(csv.DictReader(open(os.path.join(sys.argv[1], "runs.csv"))))
print("| pipeline | test | redis-benchmark ops/s (median, min-max) | ringkv bench ops/s (median, min-max) | ratio ringkv bench / redis-benchmark | p50 us (rb / ours) | p99 us (rb / ours) |")
print("|---|---|---|---|---|---|---|")
for p in ("1", "16"):
    for t in ("set", "get"):
        def pick(g, k):
            return [float(r[k]) for r in rows if r["pipeline"] == p and r["test"] == t and r["generator"] == g]
        rb, ours = pick("redis-benchmark", "ops_per_sec"), pick("ringkv-bench", "ops_per_sec")
        m_rb, m_ours = statistics.median(rb), statistics.median(ours)
        ratio = m_ours / m_rb
        flag = "within 15 %" if abs(ratio - 1) <= 0.15 else "OUTSIDE 15 %"
        print(f"| {p} | {t.upper()} | {m_rb:,.0f} ({min(rb):,.0f}-{max(rb):,.0f}) | {m_ours:,.0f} ({min(ours):,.0f}-{max(ours):,.0f}) "
              f"| {ratio:.2f} ({flag}) | {statistics.median(pick('redis-benchmark','p50_us')):,.0f} / {statistics.median(pick('ringkv-bench','p50_us')):,.0f} "
              f"| {statistics.median(pick('redis-benchmark','p99_us')):,.0f} / {statistics.median(pick('ringkv-bench','p99_us')):,.0f} |")
PY
