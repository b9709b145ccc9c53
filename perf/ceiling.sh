#!/usr/bin/env bash
# The harness's ceiling: how many requests/s the per-core placement can show at all.
# `get-set-p1` and `get-set-p16` (same flags as those scenarios) against ringkv, Redis
# and perf/null-server.c, a server that stores nothing and answers with one recv and
# one send per readable connection. No server on the kernel's TCP stack can do less
# per request, so the null server's figure bounds what any server, ringkv included,
# can reach under this generator on these CPUs; alternated ROUNDS times.
source "$(dirname "$0")/lib.sh"
if [[ "${SKIP_SETUP:-}" != 1 ]]; then ensure_tools; build; fi
init_results
common=(--data-size 32 --key-maximum 100000 --ratio 1:10 --key-pattern random --clients 50)
run_scenario ceiling-p1 core "redis null" "${common[@]}" --pipeline 1
run_scenario ceiling-p16 core "redis null" "${common[@]}" --pipeline 16
python3 "$PERF_DIR/summarize.py" "$RESULTS_DIR"
