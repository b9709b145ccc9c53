# Shared by the storage scenarios (durable-set, restart, memory-per-key, beyond-ram):
# servers started with storage flags, data dirs on /tmp (ext4, the real disk), STATS
# snapshots, RSS. Builds on lib.sh (logging, build, results dir, stop_server + trap).
# Source it; do not run it.

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# WORK: the current case's scratch dir (data dir, logs); new_work makes one, and
# cleanup_work removes it (also on exit, with the server, once trap_cleanup is set).
WORK=""
new_work() { WORK="$(mktemp -d "/tmp/ringkv-perf-$1.XXXXXX")"; }
cleanup_work() { if [[ -n "$WORK" ]]; then rm -rf "$WORK"; fi; WORK=""; }
trap_cleanup() { trap 'stop_server; cleanup_work' EXIT; }

# start_ringkv_flags DATA_DIR EXTRA_FLAGS...: one shard on CPU 0, waits for `ready`
# (bounded). DATA_DIR is kept (the caller removes it) so restarts can reuse it.
start_ringkv_flags() {
    local dir="$1"
    shift
    mkdir -p "$dir"
    taskset -c 0 "$RINGKV" serve --bind 127.0.0.1 --port "$RINGKV_PORT" --cores 1 \
        --no-resp --data-dir "$dir/data" "$@" >"$dir/out" 2>"$dir/err" &
    SERVER_PID=$!
    wait_ringkv_ready "$dir" 6000 0.01
}

# start_redis_flags DIR EXTRA_FLAGS...: Redis on CPU 0 with its files in DIR.
start_redis_flags() {
    local dir="$1"
    shift
    mkdir -p "$dir"
    taskset -c 0 redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --dir "$dir" \
        --save '' --appendonly no --daemonize no --logfile "$dir/redis.log" "$@" &
    SERVER_PID=$!
    SERVER_PORT="$REDIS_PORT"
    wait_port "$REDIS_PORT"
}

# kill_server SIGNAL: signal the server, wait (bounded) for it to exit.
kill_server() {
    local sig="$1" i
    [[ -n "$SERVER_PID" ]] || return 0
    kill "-$sig" "$SERVER_PID" 2>/dev/null || true
    for ((i = 0; i < 6000; i++)); do
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.01
    done
    kill -9 "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
    SERVER_PID=""
}

# ringkv_stat NAME: one counter of the running node (0 when absent).
ringkv_stat() {
    "$RINGKV" --addr "127.0.0.1:$RINGKV_PORT" stats 2>/dev/null |
        awk -v k="$1" '{ gsub(/[:=]/, " ") } $1 == k { print $2; found = 1 } END { if (!found) print 0 }'
}

# rss_kib PID: resident set size in KiB.
rss_kib() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }

# now_ns: monotonic-enough wall clock in nanoseconds.
now_ns() { date +%s%N; }

# drop_file_cache FILE...: evict these files from the page cache (not the whole box's).
drop_file_cache() {
    python3 - "$@" <<'EOF'
import os, sys
for p in sys.argv[1:]:
    for root, _, files in (os.walk(p) if os.path.isdir(p) else [(os.path.dirname(p), None, [os.path.basename(p)])]):
        for f in files:
            fd = os.open(os.path.join(root, f), os.O_RDONLY)
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)
EOF
}
