//! One native-protocol connection: read a batch of pipelined frames, route their
//! commands to the owning shards, answer them in request order with one write.
//!
//! ```text
//! socket ──read──▶ buffer ──check/decode──▶ plans + parts ──▶ local shard (inline)
//!                                                        └──▶ other cores (one batch each)
//! socket ◀─write── responses, in request order ◀── replies ◀─┘
//! ```
//! A connection has at most one batch (≤ `PIPELINE_DEPTH_MAX` requests) in flight; more
//! pipelined requests wait in the socket, which is TCP backpressure, not loss.

use std::io::ErrorKind;
use std::ops::Range;
use std::rc::Rc;

use bytes::{BufMut, Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;

use super::core::{Core, Parts, SyncNeed};
use super::idle;
use super::inbox::Inbox;
use super::stats::{self, CoreCounters};
use crate::constants::{FRAME_BODY_SIZE_MAX, PIPELINE_DEPTH_MAX};
use crate::hash::shard_of;
use crate::proto::frame::{self, FrameError, PROTOCOL_VERSION_MIN};
use crate::proto::op::{encode_response, ResponseWriter, FLAG_NO_SYNC, FLAG_SYNC};
use crate::proto::{
    decode_request, Opcode, Refusal, Request, SetMode, Status, MAGIC_REQUEST, PROTOCOL_VERSION,
};
use crate::shard::{Command, Cond, ExpireCond, Expiry, Reply, ShardError, ShardStats};

/// Bits of a SCAN cursor that hold the slot; the shard number sits above them.
const SCAN_SLOT_BITS: u32 = 40;

/// Initial capacity of a connection's output buffer.
const OUTPUT_CAPACITY: usize = 16 * 1024;

/// Decoded requests of one read, in arrival order (a refusal keeps its place).
type Batch = Vec<(frame::Header, Result<Request, Refusal>)>;

/// How to answer one request once its parts have run.
enum Plan {
    Refused {
        id: u32,
        opcode: u8,
        refusal: Refusal,
    },
    Ping {
        id: u32,
        payload: Bytes,
    },
    Hello {
        id: u32,
        min: u8,
        max: u8,
    },
    Topology {
        id: u32,
    },
    One {
        id: u32,
        opcode: Opcode,
        part: usize,
    },
    MGet {
        id: u32,
        parts: Range<usize>,
    },
    MSet {
        id: u32,
        parts: Range<usize>,
    },
    Scan {
        id: u32,
        shard: u64,
        part: usize,
    },
    Stats {
        id: u32,
        parts: Range<usize>,
    },
}

/// Serves one connection until the peer closes, it times out, it sends a malformed
/// frame, or the node stops.
pub async fn serve(core: Rc<Core>, mut stream: TcpStream) {
    let counters = core.counters();
    let watch = idle::watch(&core);
    let mut inbox = Inbox::new();
    let mut output = BytesMut::with_capacity(OUTPUT_CAPACITY);
    loop {
        let (batch, fatal) = parse_batch(&mut inbox.buf);
        if batch.is_empty() && fatal.is_none() {
            if core.stopping() {
                break;
            }
            match inbox
                .read_more(&mut stream, &watch, rest_of_frame(&inbox.buf))
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
        execute(&core, batch, &mut output).await;
        if let Some(err) = fatal {
            stats::bump(&counters.frames_malformed);
            encode_frame_error(&mut output, err);
        }
        // Let the other connections that have requests run theirs first, so answers go
        // out together and a client reading many connections wakes once for them.
        futures_lite::future::yield_now().await;
        if let Err(e) = stream.write_all(&output).await {
            if e.kind() == ErrorKind::TimedOut {
                stats::bump(&counters.connections_timed_out);
            }
            break;
        }
        output.clear();
        if fatal.is_some() {
            break;
        }
    }
}

/// Bytes still missing from the frame at the front of `input`, once its header is in
/// (`check` has already refused a header above `FRAME_BODY_SIZE_MAX`); 0 otherwise.
fn rest_of_frame(input: &[u8]) -> usize {
    match input.first_chunk::<{ frame::HEADER_SIZE }>() {
        Some(head) => (frame::HEADER_SIZE + frame::Header::decode(head).body_len as usize)
            .saturating_sub(input.len()),
        None => 0,
    }
}

/// Splits complete frames off the front of `input`, at most `PIPELINE_DEPTH_MAX`.
#[allow(clippy::type_complexity)] // a batch and what stopped it, used once
/// Stops at the first malformed frame, which ends the connection.
fn parse_batch(input: &mut BytesMut) -> (Batch, Option<FrameError>) {
    let mut batch = Vec::new();
    while batch.len() < PIPELINE_DEPTH_MAX as usize {
        match frame::check(input, MAGIC_REQUEST) {
            Ok(Some((header, len))) => {
                let bytes = input.split_to(len).freeze();
                batch.push((header, decode_request(&header, &bytes)));
            }
            Ok(None) => break,
            Err(e) => return (batch, Some(e)),
        }
    }
    (batch, None)
}

/// Answers a frame that cannot be parsed; the connection closes after it.
fn encode_frame_error(output: &mut BytesMut, err: FrameError) {
    match err {
        FrameError::BadVersion(_) => {
            // Tell the client which versions we speak, then close.
            let mut value = BytesMut::new();
            value.put_u8(PROTOCOL_VERSION_MIN);
            value.put_u8(PROTOCOL_VERSION);
            value.put_slice(err.to_string().as_bytes());
            encode_response(output, 0, 0, Status::BadVersion, 0, &[], &value);
        }
        _ => encode_response(
            output,
            0,
            0,
            Status::BadFrame,
            0,
            &[],
            err.to_string().as_bytes(),
        ),
    }
}

fn ttl_expiry(ttl_ms: u64) -> Expiry {
    if ttl_ms == 0 {
        Expiry::Never
    } else {
        Expiry::AfterMs(ttl_ms.min(i64::MAX as u64) as i64)
    }
}

/// Turns one request into a plan and the shard commands it needs.
fn plan(
    core: &Core,
    header: &frame::Header,
    request: Result<Request, Refusal>,
    parts: &mut Parts,
) -> Plan {
    let id = header.request_id;
    let request = match request {
        Ok(r) => r,
        Err(refusal) => {
            return Plan::Refused {
                id,
                opcode: header.opcode,
                refusal,
            }
        }
    };
    let owner = |key: &[u8]| shard_of(key, core.count as u32) as usize;
    let mut one = |opcode: Opcode, key: &Bytes, command: Command| {
        let part = parts.push(owner(key), command);
        Plan::One { id, opcode, part }
    };
    match request {
        Request::Ping { payload } => Plan::Ping { id, payload },
        Request::Hello { min, max } => Plan::Hello { id, min, max },
        Request::Topology => Plan::Topology { id },
        Request::Get { key } => one(Opcode::Get, &key.clone(), Command::Get { key }),
        Request::Set {
            key,
            value,
            ttl_ms,
            mode,
        } => {
            let (opcode, cond) = match mode {
                SetMode::Always => (Opcode::Set, Cond::Always),
                SetMode::IfAbsent => (Opcode::Insert, Cond::IfAbsent),
                SetMode::IfPresent => (Opcode::Update, Cond::IfPresent),
            };
            let expiry = ttl_expiry(ttl_ms);
            one(
                opcode,
                &key.clone(),
                Command::Set {
                    key,
                    value,
                    expiry,
                    cond,
                    get_old: false,
                },
            )
        }
        Request::Cas {
            key,
            value,
            ttl_ms,
            expected,
            delete,
        } => {
            let cond = Cond::IfVersion(expected);
            let command = if delete {
                Command::Delete {
                    key: key.clone(),
                    cond,
                }
            } else {
                Command::Set {
                    key: key.clone(),
                    value,
                    expiry: ttl_expiry(ttl_ms),
                    cond,
                    get_old: false,
                }
            };
            one(Opcode::Cas, &key, command)
        }
        Request::Delete { key } => one(
            Opcode::Delete,
            &key.clone(),
            Command::Delete {
                key,
                cond: Cond::Always,
            },
        ),
        Request::Expire { key, ttl_ms } => {
            let expiry = Expiry::AfterMs(ttl_ms.min(i64::MAX as u64) as i64);
            one(
                Opcode::Expire,
                &key.clone(),
                Command::Expire {
                    key,
                    expiry,
                    cond: ExpireCond::Always,
                },
            )
        }
        Request::Persist { key } => one(
            Opcode::Persist,
            &key.clone(),
            Command::Expire {
                key,
                expiry: Expiry::Never,
                cond: ExpireCond::Always,
            },
        ),
        Request::Ttl { key } => one(Opcode::Ttl, &key.clone(), Command::Ttl { key }),
        Request::Incr { key, delta } => {
            one(Opcode::Incr, &key.clone(), Command::IncrBy { key, delta })
        }
        Request::MGet { keys } => {
            let start = parts.len();
            for key in keys {
                parts.push(owner(&key), Command::Get { key });
            }
            Plan::MGet {
                id,
                parts: start..parts.len(),
            }
        }
        Request::MSet { pairs, ttl_ms } => {
            let start = parts.len();
            let expiry = ttl_expiry(ttl_ms);
            for (key, value) in pairs {
                let command = Command::Set {
                    key: key.clone(),
                    value,
                    expiry,
                    cond: Cond::Always,
                    get_old: false,
                };
                parts.push(owner(&key), command);
            }
            Plan::MSet {
                id,
                parts: start..parts.len(),
            }
        }
        Request::Scan {
            cursor,
            count,
            prefix,
        } => {
            let shard = cursor >> SCAN_SLOT_BITS;
            if shard >= core.count as u64 {
                let refusal = Refusal {
                    status: Status::Invalid,
                    message: format!("SCAN cursor {cursor} is not valid"),
                };
                return Plan::Refused {
                    id,
                    opcode: Opcode::Scan as u8,
                    refusal,
                };
            }
            let slot = cursor & ((1 << SCAN_SLOT_BITS) - 1);
            let part = parts.push(
                shard as usize,
                Command::Scan {
                    cursor: slot,
                    count,
                    prefix,
                },
            );
            Plan::Scan { id, shard, part }
        }
        Request::Stats => {
            let start = parts.len();
            for shard in 0..core.count {
                parts.push(shard, Command::Stats);
            }
            Plan::Stats {
                id,
                parts: start..parts.len(),
            }
        }
    }
}

/// Plans, runs and answers one batch, appending the responses to `output` in order.
async fn execute(core: &Core, batch: Batch, output: &mut BytesMut) {
    let mut parts = Parts::default();
    let need = sync_need(&batch);
    let plans: Vec<Plan> = batch
        .into_iter()
        .map(|(header, request)| plan(core, &header, request, &mut parts))
        .collect();
    let replies = core.run(parts, need).await;
    for plan in plans {
        respond(core, plan, &replies, output);
    }
}

/// The batch-wide durability request: any `SYNC` flag forces a flush; `NO_SYNC` skips
/// the wait only when every request in the batch carries it.
fn sync_need(batch: &Batch) -> SyncNeed {
    let flags = || batch.iter().map(|(h, _)| h.flags_or_status);
    if flags().any(|f| f & FLAG_SYNC != 0) {
        SyncNeed::Force
    } else if !batch.is_empty() && flags().all(|f| f & FLAG_NO_SYNC != 0) {
        SyncNeed::Skip
    } else {
        SyncNeed::Default
    }
}

fn error_status(err: &ShardError) -> Status {
    match err {
        ShardError::NotInteger | ShardError::NotFloat => Status::NotANumber,
        ShardError::Overflow | ShardError::NanOrInfinity => Status::Overflow,
        ShardError::ValueTooLarge => Status::TooLarge,
        ShardError::NoSpace => Status::NoSpace,
        ShardError::Invalid(_) => Status::Invalid,
        ShardError::Io(_) => Status::IoError,
    }
}

fn error_message(err: &ShardError) -> String {
    match err {
        ShardError::NotInteger => "value is not an integer or out of range".into(),
        ShardError::NotFloat => "value is not a valid float".into(),
        ShardError::Overflow => "increment or decrement would overflow".into(),
        ShardError::NanOrInfinity => "increment would produce NaN or Infinity".into(),
        ShardError::ValueTooLarge => "resulting value exceeds the value size limit".into(),
        ShardError::NoSpace => "no space left on device; the write was not acknowledged".into(),
        ShardError::Io(e) => format!("I/O error (nothing was acknowledged): {e}"),
        ShardError::Invalid(e) => e.clone(),
    }
}

/// Encodes the response of a single-key request.
fn respond_one(out: &mut BytesMut, id: u32, opcode: Opcode, reply: &Reply) {
    let op = opcode as u8;
    let status_only = |out: &mut BytesMut, status: Status, version: u64| {
        encode_response(out, op, id, status, version, &[], &[])
    };
    match (opcode, reply) {
        (_, Reply::Error(err)) => encode_response(
            out,
            op,
            id,
            error_status(err),
            0,
            &[],
            error_message(err).as_bytes(),
        ),
        (_, Reply::NotFound) => status_only(out, Status::NotFound, 0),
        (Opcode::Get, Reply::Value { value, version }) => {
            encode_response(out, op, id, Status::Ok, *version, &[], value)
        }
        (_, Reply::Done { version, .. }) => status_only(out, Status::Ok, *version),
        (Opcode::Insert, Reply::CondFailed { version, .. }) => {
            status_only(out, Status::Exists, version.unwrap_or(0))
        }
        (
            Opcode::Cas | Opcode::Delete,
            Reply::CondFailed {
                version: Some(v), ..
            },
        ) => status_only(out, Status::VersionMismatch, *v),
        (_, Reply::CondFailed { version, .. }) => {
            status_only(out, Status::NotFound, version.unwrap_or(0))
        }
        (Opcode::Persist, Reply::Applied(changed)) => {
            encode_response(out, op, id, Status::Ok, 0, &[], &[u8::from(*changed)])
        }
        (_, Reply::Applied(_)) => status_only(out, Status::Ok, 0),
        (_, Reply::Ttl(ms)) => {
            let ttl = ms.map_or(-1, |ms| ms.min(i64::MAX as u64) as i64);
            encode_response(out, op, id, Status::Ok, 0, &ttl.to_le_bytes(), &[]);
        }
        (_, Reply::Integer { value, version }) => {
            encode_response(out, op, id, Status::Ok, *version, &value.to_le_bytes(), &[])
        }
        (_, other) => {
            let message = format!("unexpected shard reply {other:?}");
            encode_response(out, op, id, Status::IoError, 0, &[], message.as_bytes());
        }
    }
}

/// Encodes the response of one plan.
fn respond(core: &Core, plan: Plan, replies: &[Reply], out: &mut BytesMut) {
    let counters = core.counters();
    match plan {
        Plan::Refused {
            id,
            opcode,
            refusal,
        } => {
            stats::bump(&counters.requests_refused);
            encode_response(
                out,
                opcode,
                id,
                refusal.status,
                0,
                &[],
                refusal.message.as_bytes(),
            );
        }
        Plan::Ping { id, payload } => {
            encode_response(out, Opcode::Ping as u8, id, Status::Ok, 0, &[], &payload)
        }
        Plan::Hello { id, min, max } => {
            let op = Opcode::Hello as u8;
            if min <= PROTOCOL_VERSION && max >= PROTOCOL_VERSION_MIN {
                encode_response(
                    out,
                    op,
                    id,
                    Status::Ok,
                    0,
                    &[],
                    &[max.min(PROTOCOL_VERSION)],
                );
            } else {
                encode_response(
                    out,
                    op,
                    id,
                    Status::BadVersion,
                    0,
                    &[],
                    &[PROTOCOL_VERSION_MIN, PROTOCOL_VERSION],
                );
            }
        }
        Plan::Topology { id } => {
            let mut value = BytesMut::new();
            core.topology.encode(&mut value);
            encode_response(out, Opcode::Topology as u8, id, Status::Ok, 0, &[], &value);
        }
        Plan::One { id, opcode, part } => respond_one(out, id, opcode, &replies[part]),
        Plan::MGet { id, parts } => {
            let mut w = ResponseWriter::start(out, Opcode::MGet as u8, id, Status::Ok, 0, &[]);
            for reply in &replies[parts] {
                if w.value_len() > FRAME_BODY_SIZE_MAX as usize {
                    break;
                }
                let v = w.value();
                match reply {
                    Reply::Value { value, version } => {
                        v.put_u8(1);
                        v.put_u64_le(*version);
                        v.put_u32_le(value.len() as u32);
                        v.put_slice(value);
                    }
                    _ => {
                        v.put_u8(0);
                        v.put_u64_le(0);
                        v.put_u32_le(0);
                    }
                }
            }
            if w.value_len() > FRAME_BODY_SIZE_MAX as usize {
                w.abandon();
                let message =
                    format!("MGET response exceeds the frame limit of {FRAME_BODY_SIZE_MAX} bytes");
                encode_response(
                    out,
                    Opcode::MGet as u8,
                    id,
                    Status::TooLarge,
                    0,
                    &[],
                    message.as_bytes(),
                );
            } else {
                w.finish();
            }
        }
        Plan::MSet { id, parts } => {
            if let Some(Reply::Error(err)) = replies[parts.clone()]
                .iter()
                .find(|r| matches!(r, Reply::Error(_)))
            {
                let message = format!("MSET partly failed: {}", error_message(err));
                encode_response(
                    out,
                    Opcode::MSet as u8,
                    id,
                    error_status(err),
                    0,
                    &[],
                    message.as_bytes(),
                );
                return;
            }
            let mut w = ResponseWriter::start(out, Opcode::MSet as u8, id, Status::Ok, 0, &[]);
            for reply in &replies[parts] {
                let version = if let Reply::Done { version, .. } = reply {
                    *version
                } else {
                    0
                };
                w.value().put_u64_le(version);
            }
            w.finish();
        }
        Plan::Scan { id, shard, part } => {
            let Reply::Keys { next, keys } = &replies[part] else {
                return respond_one(out, id, Opcode::Scan, &replies[part]);
            };
            let cursor = match next {
                Some(slot) => (shard << SCAN_SLOT_BITS) | slot,
                None if shard + 1 < core.count as u64 => (shard + 1) << SCAN_SLOT_BITS,
                None => 0,
            };
            let mut w = ResponseWriter::start(
                out,
                Opcode::Scan as u8,
                id,
                Status::Ok,
                0,
                &cursor.to_le_bytes(),
            );
            for key in keys {
                w.value().put_u16_le(key.len() as u16);
                w.value().put_slice(key);
            }
            w.finish();
        }
        Plan::Stats { id, parts } => {
            let text = stats_text(core, &replies[parts]);
            encode_response(
                out,
                Opcode::Stats as u8,
                id,
                Status::Ok,
                0,
                &[],
                text.as_bytes(),
            );
        }
    }
}

/// `name value` lines: node, summed per-core connection counters, summed shard counters.
pub fn stats_text(core: &Core, shard_replies: &[Reply]) -> String {
    let mut total = ShardStats::default();
    for reply in shard_replies {
        if let Reply::Stats(s) = reply {
            total.add(s);
        }
    }
    let mut lines = vec![
        ("version", env!("CARGO_PKG_VERSION").to_string()),
        ("uptime_secs", core.started.elapsed().as_secs().to_string()),
        ("cores", core.count.to_string()),
    ];
    let mut sums: Vec<(&'static str, u64)> = CoreCounters::default().snapshot();
    for counters in core.counters.iter() {
        for (sum, (_, value)) in sums.iter_mut().zip(counters.snapshot()) {
            sum.1 += value;
        }
    }
    let sum = |name: &str| sums.iter().find(|(k, _)| *k == name).map_or(0, |(_, v)| *v);
    let (data, garbage) = (sum("log_data_bytes"), sum("log_garbage_bytes"));
    let derived = [
        ("log_live_bytes", data.saturating_sub(garbage).to_string()),
        (
            "log_garbage_percent",
            (garbage * 100).checked_div(data).unwrap_or(0).to_string(),
        ),
        (
            "durable_wait_us_avg",
            sum("durable_wait_us")
                .checked_div(sum("durable_waits"))
                .unwrap_or(0)
                .to_string(),
        ),
    ];
    lines.extend(sums.iter().map(|(k, v)| (*k, v.to_string())));
    lines.extend(derived);
    lines.extend(total.fields().into_iter().map(|(k, v)| (k, v.to_string())));
    lines
        .into_iter()
        .map(|(k, v)| format!("{k} {v}\n"))
        .collect()
}
