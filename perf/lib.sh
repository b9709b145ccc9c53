# Shared by the perf/ scripts: build, start and stop servers with a fixed CPU
# placement, run `ringkv bench`, and clean up by pid whatever we started.
# Source it; do not run it.

set -euo pipefail

PERF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$PERF_DIR/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$REPO/target}"
# RINGKV names another binary to measure (CI's smoke run uses the test build's).
RINGKV="${RINGKV:-$CARGO_TARGET_DIR/release/ringkv}"

# Ports of our own choosing on loopback, away from the usual defaults other
# people's servers on a shared machine may hold (ringkv also takes the next ones
# for its per-core ports).
RINGKV_PORT="${RINGKV_PORT:-27878}"
REDIS_PORT="${REDIS_PORT:-26379}"
MEMCACHED_PORT="${MEMCACHED_PORT:-21311}"
NULL_PORT="${NULL_PORT:-21312}"

# How a run is measured (BENCHMARKING.md: warm up, then a fixed time; >= 3 rounds).
ROUNDS="${ROUNDS:-3}"
WARMUP="${WARMUP:-2}"
TEST_TIME="${TEST_TIME:-10}"

SERVER_PID=""
SERVER_DIR=""

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

cleanup() {
    stop_server
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Installs what a run needs when it is missing (Debian packages; Python plots).
ensure_tools() {
    local missing=()
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v redis-benchmark >/dev/null || missing+=(redis-tools)
    command -v memcached >/dev/null || missing+=(memcached)
    command -v taskset >/dev/null || missing+=(util-linux)
    if ((${#missing[@]})); then
        log "installing ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    ensure_matplotlib
}

# True when python3 is Debian's own interpreter (a file of a Debian package), whose
# pip refuses to install into the system (PEP 668: externally managed).
debian_python() {
    local exe
    exe="$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)" || return 1
    exe="$(readlink -f "$exe")"
    command -v dpkg >/dev/null && dpkg -S "$exe" >/dev/null 2>&1
}

# matplotlib for the plots: Debian's python3-matplotlib for Debian's python3, pip
# for any other (pyenv, a venv) or when the package did not make it importable.
# Without it summarize.py still writes summary.md, only no plots: a warning, not a
# failed run.
ensure_matplotlib() {
    python3 -c 'import matplotlib' 2>/dev/null && return 0
    if debian_python && command -v apt-get >/dev/null; then
        log "installing python3-matplotlib (Debian's python3)"
        apt-get update -qq || true
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null || true
        python3 -c 'import matplotlib' 2>/dev/null && return 0
    fi
    log "installing matplotlib with pip ($(python3 -c 'import sys; print(sys.executable)'))"
    python3 -m pip install -q matplotlib ||
        log "matplotlib not installed: summaries will have no plots"
}

build() {
    log "building ringkv (release) into $CARGO_TARGET_DIR"
    (cd "$REPO" && cargo build --release -q)
}

# The results directory of this invocation: perf/results/<date>-<commit>/.
results_dir() {
    if [[ -z "${RESULTS_DIR:-}" ]]; then
        local commit
        commit="$(git -C "$REPO" rev-parse --short HEAD)"
        if ! git -C "$REPO" diff --quiet HEAD -- src Cargo.toml Cargo.lock; then
            commit="$commit-dirty"
        fi
        RESULTS_DIR="$PERF_DIR/results/$(date -u +%Y-%m-%d)-$commit"
    fi
    mkdir -p "$RESULTS_DIR"
    export RESULTS_DIR
    if [[ ! -f "$RESULTS_DIR/env.txt" ]]; then
        {
            echo "commit: $(git -C "$REPO" rev-parse HEAD)"
            echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
            echo "kernel: $(uname -r)"
            echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) vCPUs"
            echo "rustc: $(rustc --version)"
            echo "redis: $(redis-server --version)"
            echo "memcached: $(memcached -V)"
        } >"$RESULTS_DIR/env.txt"
    fi
    echo "$RESULTS_DIR"
}

# Fixes RESULTS_DIR for this shell and the scripts it starts.
init_results() {
    RESULTS_DIR="$(results_dir)"
    export RESULTS_DIR
}

# Waits until 127.0.0.1:$1 accepts a connection (bounded).
wait_port() {
    local port="$1" i
    for ((i = 0; i < 200; i++)); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    log "port $port did not open"
    return 1
}

# wait_ringkv_ready DIR TRIES INTERVAL: waits (bounded) for the ringkv started as
# SERVER_PID, writing to DIR/out and DIR/err, to print `ready`; sets SERVER_PORT.
wait_ringkv_ready() {
    local dir="$1" tries="$2" interval="$3" i
    for ((i = 0; i < tries; i++)); do
        grep -q ready "$dir/out" 2>/dev/null && break
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$dir/err" >&2; return 1; }
        sleep "$interval"
    done
    grep -q ready "$dir/out" || { log "ringkv did not get ready"; return 1; }
    SERVER_PORT="$RINGKV_PORT"
}

# start_server KIND PLACEMENT: KIND is ringkv|redis|memcached; PLACEMENT is
# "core" (server on CPU 0, one core) or "node" (every core, no pinning).
start_server() {
    local kind="$1" placement="$2" pin=() i port
    [[ "$placement" == core ]] && pin=(taskset -c 0)
    # A server already on our port would be measured instead of ours (and ringkv
    # binds with SO_REUSEPORT, so it would even share the port): refuse.
    case "$kind" in
    ringkv) port="$RINGKV_PORT" ;; redis) port="$REDIS_PORT" ;; null) port="$NULL_PORT" ;;
    *) port="$MEMCACHED_PORT" ;;
    esac
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        log "port $port is already in use: pick another with RINGKV_PORT/REDIS_PORT/MEMCACHED_PORT/NULL_PORT"
        return 1
    fi
    case "$kind" in
    ringkv)
        local cores=1
        [[ "$placement" == node ]] && cores="$(nproc)"
        SERVER_DIR="$(mktemp -d /tmp/ringkv-perf.XXXXXX)"
        # Redis runs without persistence here, so ringkv runs as an in-memory cache too
        # (RINGKV_SERVE_FLAGS= measures its durable default instead).
        # No Redis-protocol port unless asked for: its default (6380) may be taken.
        local resp=(--no-resp)
        [[ "${RINGKV_SERVE_FLAGS-}" == *--resp-port* ]] && resp=()
        # shellcheck disable=SC2086
        "${pin[@]}" "$RINGKV" serve --bind 127.0.0.1 --port "$RINGKV_PORT" --cores "$cores" \
            --data-dir "$SERVER_DIR/data" "${resp[@]}" ${RINGKV_SERVE_FLAGS---eviction lru} \
            >"$SERVER_DIR/out" 2>"$SERVER_DIR/err" &
        SERVER_PID=$!
        wait_ringkv_ready "$SERVER_DIR" 400 0.05 || return 1
        ;;
    redis)
        "${pin[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save '' \
            --appendonly no --daemonize no --logfile /dev/null &
        SERVER_PID=$!
        SERVER_PORT="$REDIS_PORT"
        wait_port "$REDIS_PORT"
        ;;
    memcached)
        local threads=1
        [[ "$placement" == node ]] && threads="$(nproc)"
        # -m 2048: the 4 KiB scenario holds ~400 MB; the default 64 MB would evict.
        "${pin[@]}" memcached -t "$threads" -u root -l 127.0.0.1 -p "$MEMCACHED_PORT" \
            -m 2048 -c 4096 &
        SERVER_PID=$!
        SERVER_PORT="$MEMCACHED_PORT"
        wait_port "$MEMCACHED_PORT"
        ;;
    null)
        # perf/null-server.c: answers without storing anything (see perf/ceiling.sh).
        local bin="$CARGO_TARGET_DIR/null-server"
        [[ "$bin" -nt "$PERF_DIR/null-server.c" ]] || cc -O2 -o "$bin" "$PERF_DIR/null-server.c"
        "${pin[@]}" "$bin" "$NULL_PORT" &
        SERVER_PID=$!
        SERVER_PORT="$NULL_PORT"
        wait_port "$NULL_PORT"
        ;;
    *)
        log "unknown server $kind"
        return 1
        ;;
    esac
}

stop_server() {
    if [[ -n "$SERVER_PID" ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        local i
        for ((i = 0; i < 200; i++)); do
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.05
        done
        kill -9 "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    if [[ -n "$SERVER_DIR" ]]; then
        rm -rf "$SERVER_DIR"
        SERVER_DIR=""
    fi
}

protocol_of() {
    case "$1" in
    ringkv) echo ringkv ;;
    redis | null) echo resp ;;
    memcached) echo memcache ;;
    esac
}

# run_scenario NAME PLACEMENT "PEERS" BENCH_FLAGS...
# Alternates ringkv and each peer (A B C A B C ...) ROUNDS times with identical flags.
run_scenario() {
    local name="$1" placement="$2" peers="$3"
    shift 3
    local out round kind load=() threads_flags=()
    out="$RESULTS_DIR/$name"
    mkdir -p "$out"
    if [[ "$placement" == core ]]; then
        load=(taskset -c 1)
        threads_flags=(--threads 1 --cpus 1)
    else
        threads_flags=(--threads "$(nproc)" --cpus "$(seq -s, 0 $(($(nproc) - 1)))")
    fi
    local flags=("${threads_flags[@]}" --preload --warmup "$WARMUP" --test-time "$TEST_TIME" "$@")
    {
        echo "scenario: $name"
        echo "placement: $placement ($([[ $placement == core ]] && echo 'server taskset -c 0, load taskset -c 1' || echo 'server on every core, load on every core'))"
        echo "servers: ringkv $peers"
        echo "bench flags: ${flags[*]}"
    } >"$out/settings.txt"
    for ((round = 1; round <= ROUNDS; round++)); do
        for kind in ringkv $peers; do
            log "$name round $round/$ROUNDS: $kind (load average $(cut -d' ' -f1 /proc/loadavg))"
            start_server "$kind" "$placement"
            echo "$(date -u +%H:%M:%S) $kind round $round load $(cut -d' ' -f1-3 /proc/loadavg)" >>"$out/loadavg.txt"
            "${load[@]}" "$RINGKV" bench --addr "127.0.0.1:$SERVER_PORT" \
                --protocol "$(protocol_of "$kind")" --server-pid "$SERVER_PID" --no-progress \
                --json-out "$out/$kind-r$round.json" --hdr-out "$out/$kind-r$round" \
                "${flags[@]}" >"$out/$kind-r$round.txt" 2>"$out/$kind-r$round.log"
            stop_server
        done
    done
    log "$name done: $out"
}
