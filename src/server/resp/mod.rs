//! The Redis protocol front-end: one RESP2/RESP3 connection, served like a native
//! one. Read a buffer, parse the pipelined commands in it, plan each into shard
//! commands, run them all on their owning shards at once, write the replies in
//! order with one write.
//!
//! ```text
//! socket ──read──▶ input ──RequestParser──▶ args ──table::dispatch──▶ plans + parts
//!                                                                      │
//!     local shard (inline) ◀── Core::run ◀──────────────────────────────┘
//!     other cores (one batch each)        │
//! socket ◀─write── output ◀── plan::respond (RESP2 | RESP3) ◀── replies
//! ```
//!
//! This module owns the connection: its buffers, its [`Session`] (protocol version,
//! name, `MULTI` queue, watched keys) and the order of replies. It never touches a
//! shard directly: every key goes through [`Parts`] and [`Core::run`], exactly as
//! native requests do, so both protocols share commands, log and durability.
//!
//! The command layer is split by group, one file each: `strings.rs` (GET, SET,
//! INCR, ...), `keys.rs` (DEL, EXISTS, SCAN, KEYS, ...), `expire.rs` (EXPIRE
//! family, TTL), `server.rs` (PING, HELLO, INFO, CONFIG, COMMAND, CLIENT, ...),
//! `multi.rs` (MULTI, EXEC, WATCH). `table.rs` is the command table (names, arity,
//! flags) and the dispatcher, `plan.rs` turns shard replies into RESP replies,
//! `args.rs` holds argument parsing and Redis's error texts, `glob.rs` Redis's
//! `stringmatchlen`, `watch.rs` the idle timeout and shutdown of connections, and
//! `tests.rs` runs the golden vectors through this layer in process.
//!
//! Most commands are *planned*: their shard commands join the batch and their reply
//! is written once the batch has run. A few are *barriers* (EXEC, KEYS, QUIT,
//! DEBUG SLEEP): they need the results of everything before them, or several rounds
//! of shard commands, so the batch planned so far runs first.

mod args;
mod expire;
mod glob;
mod keys;
mod multi;
mod plan;
mod server;
mod strings;
mod table;

#[cfg(test)]
mod tests;

use std::cell::Cell;
use std::io::ErrorKind;
use std::rc::Rc;

use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use self::plan::{Barrier, Plan};
use super::core::{Core, Parts, SyncNeed};
use super::idle;
use super::inbox::Inbox;
use super::stats;
use crate::constants::{
    PIPELINE_DEPTH_MAX, RESP_ARGS_MAX, RESP_BATCH_PARTS_MAX, RESP_BULK_LEN_MAX,
    RESP_INLINE_LEN_MAX, RESP_OUTPUT_FLUSH_BYTES, RESP_QUERY_BUFFER_MAX,
};
use crate::hash::shard_of;
use crate::resp::{Limits, Protocol, ReplyWriter, RequestParser, RespError};
use crate::shard::Command;

/// Initial capacity of a connection's output buffer.
const OUTPUT_CAPACITY: usize = 16 * 1024;

/// The Redis version whose command semantics and error texts ringkv follows; `INFO`
/// and `HELLO` report it, and client libraries pick features by it.
pub const REDIS_VERSION: &str = "7.0.15";

thread_local! {
    /// Connections this core has accepted, for `CLIENT ID`.
    static CLIENTS_ACCEPTED: Cell<u64> = const { Cell::new(0) };
}

/// The parser limits of a RESP connection.
pub fn limits() -> Limits {
    Limits {
        bulk_len_max: RESP_BULK_LEN_MAX as usize,
        args_max: RESP_ARGS_MAX as usize,
        inline_len_max: RESP_INLINE_LEN_MAX as usize,
    }
}

/// A `MULTI` block being queued.
#[derive(Debug, Default)]
pub(crate) struct Queued {
    /// The commands, as received.
    pub commands: Vec<Vec<Bytes>>,
    /// Bytes of all queued arguments.
    pub bytes: usize,
    /// A command was refused while queuing: `EXEC` must abort.
    pub dirty: bool,
}

/// What a connection remembers between commands.
#[derive(Debug)]
pub(crate) struct Session {
    /// RESP2 until `HELLO 3`.
    pub proto: Protocol,
    /// `CLIENT ID`: unique on this node while it runs.
    pub id: u64,
    /// `CLIENT SETNAME`.
    pub name: Option<Bytes>,
    /// `CLIENT SETINFO LIB-NAME` / `LIB-VER`.
    pub lib: (Option<Bytes>, Option<Bytes>),
    /// `Some` between `MULTI` and `EXEC`/`DISCARD`.
    pub multi: Option<Queued>,
    /// Watched keys and the version each had when watched (`None`: absent).
    pub watched: Vec<(Bytes, Option<u64>)>,
    /// Set by `QUIT`: close once the replies so far are written.
    pub closing: bool,
}

impl Session {
    fn new(id: u64) -> Session {
        Session {
            proto: Protocol::Resp2,
            id,
            name: None,
            lib: (None, None),
            multi: None,
            watched: Vec::new(),
            closing: false,
        }
    }
}

/// What a command handler sees while planning.
pub(crate) struct Ctx<'a> {
    /// This core.
    pub core: &'a Core,
    /// The connection's state.
    pub session: &'a mut Session,
    /// The shard commands of the batch being planned.
    pub parts: &'a mut Parts,
}

impl Ctx<'_> {
    /// The shard that owns `key`.
    pub fn owner(&self, key: &[u8]) -> usize {
        shard_of(key, self.core.count as u32) as usize
    }

    /// Adds a command for the owner of its key (this core's shard for a keyless
    /// command); returns its index among the replies.
    pub fn push(&mut self, command: Command) -> usize {
        let shard = command.key().map_or(self.core.id, |key| self.owner(key));
        self.parts.push(shard, command)
    }
}

/// One connection.
struct Conn {
    core: Rc<Core>,
    watch: Rc<idle::Watch>,
    stream: TcpStream,
    inbox: Inbox,
    output: BytesMut,
    parser: RequestParser,
    session: Session,
}

/// Serves one RESP connection until the peer closes or quits, it times out, it sends
/// malformed input, or the node stops.
pub async fn serve(core: Rc<Core>, stream: TcpStream) {
    let seq = CLIENTS_ACCEPTED.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    // Unique across cores without sharing a counter: core k hands out k+1, k+1+n, ...
    let id = (seq - 1) * core.count as u64 + core.id as u64 + 1;
    let mut conn = Conn {
        watch: idle::watch(&core),
        core,
        stream,
        inbox: Inbox::new(),
        output: BytesMut::with_capacity(OUTPUT_CAPACITY),
        parser: RequestParser::new(limits()),
        session: Session::new(id),
    };
    conn.run().await;
}

/// Why a connection ends.
enum End {
    /// The peer closed, or a write failed.
    Closed,
    /// Malformed input: answer with Redis's protocol error, then close.
    Protocol(RespError),
    /// One command grew past `RESP_QUERY_BUFFER_MAX` without completing.
    QueryBufferFull,
}

impl Conn {
    async fn run(&mut self) {
        let core = self.core.clone();
        let counters = core.counters();
        loop {
            let (batch, fatal) = self.parse_batch();
            if batch.is_empty() && fatal.is_none() {
                if self.core.stopping() {
                    break;
                }
                if self.inbox.buf.len() >= RESP_QUERY_BUFFER_MAX as usize {
                    self.end(End::QueryBufferFull).await;
                    break;
                }
                match (self.inbox)
                    .read_more(&mut self.stream, &self.watch, 0)
                    .await
                {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        if e.kind() == ErrorKind::TimedOut {
                            stats::bump(&counters.connections_timed_out);
                        }
                        break;
                    }
                }
            }
            stats::add(&counters.requests, batch.len() as u64);
            if self.execute(batch).await.is_err() {
                break;
            }
            if let Some(e) = fatal {
                self.end(End::Protocol(e)).await;
                break;
            }
            if self.write_out().await.is_err() || self.session.closing {
                break;
            }
        }
        let _ = self.stream.close().await;
    }

    /// Writes the last words of a connection that is being closed.
    async fn end(&mut self, why: End) {
        let counters = self.core.counters();
        match why {
            End::Closed => {}
            End::Protocol(e) => {
                stats::bump(&counters.frames_malformed);
                e.write_reply(&mut self.output);
            }
            End::QueryBufferFull => {
                stats::bump(&counters.frames_malformed);
                ReplyWriter::new(&mut self.output, self.session.proto).error(
                    format!(
                        "ERR Protocol error: a command exceeds ringkv's query buffer limit of {} bytes",
                        RESP_QUERY_BUFFER_MAX
                    )
                    .as_bytes(),
                );
            }
        }
        let _ = self.write_out().await;
    }

    /// Splits complete commands off the front of the input, at most
    /// `PIPELINE_DEPTH_MAX`; stops at the first malformed one, which ends the
    /// connection after the commands before it are answered (as Redis does).
    fn parse_batch(&mut self) -> (Vec<Vec<Bytes>>, Option<RespError>) {
        let mut batch = Vec::new();
        while batch.len() < PIPELINE_DEPTH_MAX as usize {
            match self.parser.parse(&mut self.inbox.buf) {
                Ok(Some(args)) => batch.push(args),
                Ok(None) => break,
                Err(e) => return (batch, Some(e)),
            }
        }
        (batch, None)
    }

    /// Writes and clears the output buffer.
    async fn write_out(&mut self) -> Result<(), End> {
        if self.output.is_empty() {
            return Ok(());
        }
        // As on the native front: answers of one turn go out together.
        futures_lite::future::yield_now().await;
        if let Err(e) = self.stream.write_all(&self.output).await {
            if e.kind() == ErrorKind::TimedOut {
                stats::bump(&self.core.counters().connections_timed_out);
            }
            return Err(End::Closed);
        }
        self.output.clear();
        Ok(())
    }

    /// Plans, runs and answers one batch of commands, in order.
    async fn execute(&mut self, batch: Vec<Vec<Bytes>>) -> Result<(), End> {
        let mut parts = Parts::default();
        let mut plans: Vec<Plan> = Vec::with_capacity(batch.len());
        for args in batch {
            if self.session.closing {
                break;
            }
            if parts.len() >= RESP_BATCH_PARTS_MAX as usize {
                self.finish(std::mem::take(&mut parts), std::mem::take(&mut plans))
                    .await?;
            }
            let plan = {
                let mut ctx = Ctx {
                    core: &self.core,
                    session: &mut self.session,
                    parts: &mut parts,
                };
                table::dispatch(&mut ctx, &args)
            };
            match plan {
                Plan::Barrier(barrier) => {
                    self.finish(std::mem::take(&mut parts), std::mem::take(&mut plans))
                        .await?;
                    self.barrier(barrier).await?;
                }
                plan => plans.push(plan),
            }
        }
        self.finish(parts, plans).await
    }

    /// Runs the parts of the planned commands and writes their replies.
    async fn finish(&mut self, parts: Parts, plans: Vec<Plan>) -> Result<(), End> {
        if plans.is_empty() {
            return Ok(());
        }
        let replies = self.core.run(parts, SyncNeed::Default).await;
        for plan in plans {
            plan::respond(
                &self.core,
                &mut self.session,
                plan,
                &replies,
                &mut self.output,
            );
            if self.output.len() >= RESP_OUTPUT_FLUSH_BYTES as usize {
                self.write_out().await?;
            }
        }
        Ok(())
    }

    /// Runs a command that needs the replies of the commands before it, or several
    /// rounds of shard commands.
    async fn barrier(&mut self, barrier: Barrier) -> Result<(), End> {
        match barrier {
            Barrier::Quit => {
                self.output.extend_from_slice(b"+OK\r\n");
                self.session.closing = true;
            }
            Barrier::Sleep(ms) => {
                // Redis blocks the whole server; here only this connection waits.
                self.write_out().await?;
                let watch = &self.watch;
                futures_lite::future::or(
                    glommio::timer::sleep(std::time::Duration::from_millis(ms)),
                    async {
                        // A stopping node does not wait for a sleeping connection.
                        watch.closed().await;
                    },
                )
                .await;
                self.output.extend_from_slice(b"+OK\r\n");
            }
            Barrier::Keys(pattern) => {
                keys::keys(&self.core, self.session.proto, &pattern, &mut self.output).await;
            }
            Barrier::Exec => {
                multi::exec(&self.core, &mut self.session, &mut self.output).await;
            }
        }
        Ok(())
    }
}
