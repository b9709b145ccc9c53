//! Every limit ringkv enforces, in one place.
//!
//! A limit that is not here is not a limit. Relations between limits are checked at
//! compile time, so a change that breaks one fails the build instead of a node.
//! Names put the qualifier last (`key_size_max`), sizes are explicit integers.

/// Largest key, in bytes (native and RESP). memcached allows 250, Redis 512 MiB;
/// 4 KiB keeps the index small and still fits every key format we have seen.
pub const KEY_SIZE_MAX: u32 = 4 * 1024;

/// Largest value, in bytes.
pub const VALUE_SIZE_MAX: u32 = 4 * 1024 * 1024;

/// Size of the fixed frame header of the native protocol.
pub const FRAME_HEADER_SIZE: u32 = 24;

/// Largest frame body (extras + key + value) of the native protocol, requests and
/// responses alike. A response that would be larger (a big MGET) is refused with
/// `TOO_LARGE` rather than built.
pub const FRAME_BODY_SIZE_MAX: u32 = 8 * 1024 * 1024;

/// Largest number of keys in one MGET / MSET / DEL batch.
pub const BATCH_KEYS_MAX: u32 = 1024;

/// Largest number of requests a connection may have in flight: the server parses at
/// most this many pipelined frames before it answers them. More stay unread in the
/// socket (TCP backpressure), they are never dropped.
pub const PIPELINE_DEPTH_MAX: u32 = 1024;

/// Largest number of keys one SCAN call may return.
pub const SCAN_COUNT_MAX: u32 = 10_000;

/// Default SCAN page size when the request says 0.
pub const SCAN_COUNT_DEFAULT: u32 = 10;

/// Default limit of open client connections per node (all ports, all cores).
pub const CONNECTIONS_MAX_DEFAULT: u32 = 10_000;

/// Default seconds a connection may stay silent (or stall mid-frame, or not read its
/// responses) before the server closes it.
pub const IDLE_TIMEOUT_SECS_DEFAULT: u64 = 300;

/// Capacity, in messages, of each one-way channel between two cores.
pub const CORE_CHANNEL_CAPACITY: usize = 1024;

/// Largest number of requests in one message forwarded to another core.
pub const FORWARD_BATCH_MAX: u32 = PIPELINE_DEPTH_MAX;

/// Largest number of cores (and so shards) a node runs.
pub const CORES_MAX: u32 = 256;

/// Default native port; the per-core ports follow it (`port + 1 + core`).
pub const PORT_DEFAULT: u16 = 7878;

/// Default Redis-protocol (RESP) port, shared by all cores. Not Redis's 6379, so a
/// node can run beside a Redis server on the same machine.
pub const RESP_PORT_DEFAULT: u16 = 6380;

/// Largest RESP bulk argument, in bytes (Redis's `proto-max-bulk-len`, 512 MiB
/// there): a value can never be larger, so a larger declared length is refused at
/// once with Redis's "invalid bulk length" instead of being buffered.
pub const RESP_BULK_LEN_MAX: u32 = VALUE_SIZE_MAX;

/// Largest number of arguments of one RESP command. Redis allows 2^31; ringkv
/// bounds it so one command's bookkeeping (one part per key) stays small.
pub const RESP_ARGS_MAX: u32 = 64 * 1024;

/// Largest RESP inline request line, and largest `*`/`$` header line (Redis's
/// `PROTO_INLINE_MAX_SIZE`).
pub const RESP_INLINE_LEN_MAX: u32 = 64 * 1024;

/// Most bytes a RESP connection may buffer for one command that has not fully
/// arrived (Redis's `client-query-buffer-limit`, 1 GiB there). Past it the
/// connection gets an error and is closed, so a huge declared array that never
/// arrives costs bounded memory.
pub const RESP_QUERY_BUFFER_MAX: u32 = 16 * 1024 * 1024;

/// Output bytes a RESP connection accumulates before it writes them out, even in
/// the middle of a pipelined batch, so a batch of large replies never builds up in
/// memory all at once.
pub const RESP_OUTPUT_FLUSH_BYTES: u32 = 256 * 1024;

/// Largest reply to one multi-key RESP read (`MGET`, `KEYS`); a larger one is
/// refused with an error instead of being built (`SCAN` pages through any size).
pub const RESP_REPLY_SIZE_MAX: u32 = 64 * 1024 * 1024;

/// Most shard commands one pipelined RESP batch gathers before running them, so a
/// pipeline of large MGETs is split into several rounds of bounded size.
pub const RESP_BATCH_PARTS_MAX: u32 = 4 * FORWARD_BATCH_MAX;

/// Most commands queued by one `MULTI` block.
pub const RESP_MULTI_QUEUE_MAX: u32 = 10_000;

/// Most argument bytes queued by one `MULTI` block.
pub const RESP_MULTI_BYTES_MAX: u32 = 16 * 1024 * 1024;

/// Most distinct keys one connection may `WATCH` at once (a key watched again counts
/// once).
pub const RESP_WATCH_KEYS_MAX: u32 = 1024;

/// Milliseconds between two rounds of the per-core task that closes idle connections
/// (native and RESP) and, once the node stops, all of them: the idle timeout's precision.
pub const IDLE_TICK_MS: u64 = 100;

/// Longest `DEBUG SLEEP`, in milliseconds (it delays only the calling connection).
pub const RESP_DEBUG_SLEEP_MS_MAX: u64 = 10_000;

/// Milliseconds between two rounds of the active TTL sweeper on each core.
pub const EXPIRE_SWEEP_INTERVAL_MS: u64 = 100;

/// Index slots the active TTL sweeper visits per round, per core.
pub const EXPIRE_SWEEP_SLOTS: u32 = 2_000;

/// glommio io memory per executor. The locked-memory limit on our machines is 8 MiB,
/// and each io_uring needs at least 512 KiB of it.
pub const EXECUTOR_IO_MEMORY: usize = 512 * 1024;

// A frame must be able to carry the largest key and value plus a record's extras.
const _: () = assert!(KEY_SIZE_MAX + VALUE_SIZE_MAX + 64 <= FRAME_BODY_SIZE_MAX);
// The key length travels as a u16 in the frame header.
const _: () = assert!(KEY_SIZE_MAX <= u16::MAX as u32);
// A forwarded batch never exceeds what a connection may have in flight.
const _: () = assert!(FORWARD_BATCH_MAX <= PIPELINE_DEPTH_MAX);
const _: () = assert!(SCAN_COUNT_DEFAULT <= SCAN_COUNT_MAX);
// Cross-core batches are bounded by the channel capacity times the batch size.
const _: () = assert!(CORE_CHANNEL_CAPACITY >= 64);
// A RESP command can always carry the largest key and value (SET key value EX n).
const _: () = assert!(RESP_BULK_LEN_MAX >= VALUE_SIZE_MAX && RESP_BULK_LEN_MAX >= KEY_SIZE_MAX);
const _: () = assert!(RESP_QUERY_BUFFER_MAX >= KEY_SIZE_MAX + VALUE_SIZE_MAX + 1024);
const _: () = assert!(RESP_REPLY_SIZE_MAX >= VALUE_SIZE_MAX + 64);
const _: () = assert!(RESP_MULTI_BYTES_MAX <= RESP_QUERY_BUFFER_MAX * 4);
