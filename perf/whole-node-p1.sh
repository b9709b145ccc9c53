#!/usr/bin/env bash
# Scenario `whole-node-p1` (see shared BENCHMARKING.md): ringkv vs Redis vs memcached,
# placement "node", alternated ROUNDS times with identical `ringkv bench` flags.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
run_scenario whole-node-p1 node "redis memcached" \
    --data-size 32 --key-maximum 100000 --ratio 1:10 --key-pattern random --clients 25 --pipeline 1
python3 "$PERF_DIR/summarize.py" "$RESULTS_DIR"
