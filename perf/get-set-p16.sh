#!/usr/bin/env bash
# Scenario `get-set-p16` (see shared BENCHMARKING.md): ringkv vs Redis vs memcached,
# placement "core", alternated ROUNDS times with identical `ringkv bench` flags.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
init_results
run_scenario get-set-p16 core "redis memcached" \
    --data-size 32 --key-maximum 100000 --ratio 1:10 --key-pattern random --clients 50 --pipeline 16
python3 "$PERF_DIR/summarize.py" "$RESULTS_DIR"
