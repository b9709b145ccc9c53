#!/usr/bin/env bash
# What periodic hints cost a loaded node: the `durable-set` load (100 % SET, 256 B
# values, 50 connections, 1 M random keys, --durability sync) against ringkv with
# periodic hints on (the default) and off (--hint-interval-secs 0), alternated ROUNDS
# times, server on CPU 0, load on CPU 1. Keys grow from zero during each run, so the
# node writes hints at doubling sizes (100 K records and up) while it is saturated.
# Records each run's hints_written and hint_us (build + write time of the hints).
source "$(dirname "$0")/storage-lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
NAME=hint-cost
OUT="$RESULTS_DIR/$NAME"
mkdir -p "$OUT"
FLAGS=(--threads 1 --cpus 1 --clients 50 --pipeline 1 --ratio 1:0 --data-size 256
    --key-minimum 1 --key-maximum 1000000 --key-pattern random
    --warmup "$WARMUP" --test-time "$TEST_TIME" --timeout-ms 5000)
{
    echo "scenario: $NAME"
    echo "placement: core (server taskset -c 0, load taskset -c 1)"
    echo "servers: ringkv-hints (serve --cores 1, defaults) ringkv-nohints (--hint-interval-secs 0)"
    echo "bench flags: ${FLAGS[*]}"
} >"$OUT/settings.txt"

trap_cleanup

for ((round = 1; round <= ROUNDS; round++)); do
    for kind in ringkv-hints ringkv-nohints; do
        log "$NAME round $round/$ROUNDS: $kind"
        new_work hints
        if [[ $kind == ringkv-hints ]]; then
            start_ringkv_flags "$WORK"
        else
            start_ringkv_flags "$WORK" --hint-interval-secs 0
        fi
        timeout $((WARMUP + TEST_TIME + 60)) taskset -c 1 "$RINGKV" bench \
            --addr "127.0.0.1:$RINGKV_PORT" --server-pid "$SERVER_PID" --no-progress \
            --json-out "$OUT/$kind-r$round.json" --hdr-out "$OUT/$kind-r$round" \
            "${FLAGS[@]}" >"$OUT/$kind-r$round.txt" 2>"$OUT/$kind-r$round.log"
        printf '{"case": "%s", "round": %d, "hints_written": %s, "hint_ms": %s}\n' \
            "$kind" "$round" "$(ringkv_stat hints_written)" "$(($(ringkv_stat hint_us) / 1000))" \
            >"$OUT/hints-$kind-r$round.json"
        kill_server TERM
        cp "$WORK/err" "$OUT/$kind-r$round.stderr"
        cleanup_work
    done
done
python3 "$PERF_DIR/storage_summary.py" "$NAME" "$OUT" | tee "$OUT/summary.md"
