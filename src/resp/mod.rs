//! RESP, the Redis serialization protocol: ringkv's second front-end codec (RESP2,
//! and RESP3 after `HELLO 3`).
//!
//! This module owns the bytes only: turning what a Redis client sends into argument
//! vectors, and replies into what the client expects, for both protocol versions.
//! It never does I/O, never interprets a command, and never allocates in proportion
//! to a size a peer merely *declares*. It depends on `std` and `bytes` alone, so the
//! server, the client and the load generator share one codec and cannot disagree.
//!
//! - `parse.rs`: the request parser ([`RequestParser`] for connections, [`parse`]
//!   for a slice), its [`Limits`] and Redis 7.0's exact protocol errors
//!   ([`RespError`]); plus [`encode_command`] for clients.
//! - `reply.rs`: the reply encoder ([`ReplyWriter`], writing straight into the
//!   output buffer) and the reply tree [`Value`], each for a [`Protocol`].
//! - `decode.rs`: the reply decoder for clients ([`parse_reply`], [`reply_len`]).
//! - `num.rs`: the digit writer, Redis's `string2ll`, and `%.17g` doubles.
//! - `fuzz.rs`: [`fuzz_parse`] and [`fuzz_parse_reply`], invariant-checking drivers
//!   for cargo-fuzz and the property tests.
//!
//! ```text
//! server:  socket bytes -> RequestParser::parse -> Vec<Bytes> args -> (commands)
//!          (command results) -> ReplyWriter (RESP2 | RESP3) -> output BytesMut
//! client:  encode_command -> socket ...... socket bytes -> parse_reply -> Value
//! ```
//!
//! The limits below are the defaults of [`Limits`]; the server passes its configured
//! values through `Limits`.

// Input here is untrusted: no panicking index, no unwrap outside tests.
#![deny(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

/// Default largest bulk argument, in bytes (4 MiB). Redis calls it
/// `proto-max-bulk-len` (512 MiB there). A larger declared length is refused with
/// "invalid bulk length", as Redis does past its limit.
pub const BULK_LEN_MAX: usize = 4 * 1024 * 1024;

/// Default largest number of arguments of one command (1024 * 1024, the limit Redis
/// enforced before 7.0). A larger declared count is refused with "invalid multibulk
/// length".
pub const ARGS_MAX: usize = 1024 * 1024;

/// Default largest inline request line, and largest `*` / `$` header line, in bytes
/// (Redis's `PROTO_INLINE_MAX_SIZE`, 64 KiB).
pub const INLINE_LEN_MAX: usize = 64 * 1024;

/// Largest argument count accepted while the connection must still authenticate
/// (Redis 7.0: "unauthenticated multibulk length" past it).
pub const UNAUTH_ARGS_MAX: usize = 10;

/// Largest bulk length accepted while the connection must still authenticate
/// (Redis 7.0: "unauthenticated bulk length" past it).
pub const UNAUTH_BULK_LEN_MAX: usize = 16 * 1024;

/// Deepest aggregate nesting accepted in a reply (Redis nests a few levels at
/// most); deeper input is refused rather than risking the stack.
pub const REPLY_DEPTH_MAX: usize = 128;

mod decode;
mod fuzz;
mod num;
mod parse;
mod reply;

pub use decode::{parse_reply, reply_len, ReplyError};
pub use fuzz::{fuzz_parse, fuzz_parse_reply};
pub use parse::{encode_command, parse, Args, Limits, RequestParser, RespError};
pub use reply::{Protocol, ReplyWriter, Value};
