#!/usr/bin/env bash
# Every scenario, into one results directory, then the summary and plots.
source "$(dirname "$0")/lib.sh"
ensure_tools
build
init_results
for scenario in get-set-p1 get-set-p16 large-values whole-node-p1 whole-node-p16; do
    SKIP_SETUP=1 "$PERF_DIR/$scenario.sh"
done
log "results: $RESULTS_DIR"
