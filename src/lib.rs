//! ringkv: a shared-nothing, thread-per-core key-value node.
//!
//! The map (see `ARCHITECTURE.md` for the pictures):
//! - [`constants`]: every limit, with compile-time checks of how they relate.
//! - [`hash`]: the stable key-to-shard function clients compute too.
//! - [`proto`]: the native binary protocol, shared by server, client and bench.
//! - [`resp`]: the Redis protocol codec (RESP2/RESP3), for the second front-end.
//! - [`shard`]: one core's key space and the commands that change it; no I/O.
//! - [`storage`]: the per-shard durable log (segments, group commit, recovery,
//!   compaction) and its I/O seam.
//! - [`server`]: executors, listeners, connections, cross-core routing.
//! - [`client`]: blocking and glommio clients of the native protocol.
//! - [`config`]: node settings from flags and a TOML file.
//! - [`bench`]: the load generator (`ringkv bench`).

#![deny(missing_docs)]
#![deny(clippy::unwrap_used)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bench;
pub mod client;
pub mod config;
pub mod constants;
pub mod hash;
pub mod proto;
pub mod resp;
pub mod server;
pub mod shard;
pub mod storage;
