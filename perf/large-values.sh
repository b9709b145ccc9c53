#!/usr/bin/env bash
# Scenario `large-values` (see shared BENCHMARKING.md): ringkv vs Redis vs memcached,
# placement "core", alternated ROUNDS times with identical `ringkv bench` flags.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
run_scenario large-values core "redis memcached" \
    --data-size 4096 --key-maximum 100000 --ratio 1:4 --key-pattern random --clients 50 --pipeline 4
python3 "$PERF_DIR/summarize.py" "$RESULTS_DIR"
