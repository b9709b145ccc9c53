//! How to answer a planned command once its shard commands have run.
//!
//! A [`Plan`] is made while the batch is planned (arguments checked, shard commands
//! pushed) and turned into RESP by [`respond`] once [`Core::run`] returned every
//! reply. Replies are written for the connection's protocol at that moment, so a
//! `HELLO 3` in the middle of a pipeline changes the replies after it, not before.

use std::borrow::Cow;
use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::args::Reject;
use super::Session;
use crate::constants::RESP_REPLY_SIZE_MAX;
use crate::resp::{Protocol, ReplyWriter, Value};
use crate::server::core::Core;
use crate::shard::{Reply, ShardError};

/// A command that cannot be planned into the batch: everything before it runs
/// first, then it runs on its own.
#[derive(Debug)]
pub(crate) enum Barrier {
    /// `QUIT`: reply `+OK`, then close.
    Quit,
    /// `DEBUG SLEEP`: wait this many milliseconds.
    Sleep(u64),
    /// `KEYS pattern`: scans every shard, in as many rounds as it takes.
    Keys(Bytes),
    /// `EXEC`: needs the versions recorded by the `WATCH`es before it.
    Exec,
}

/// How to turn the reply of one shard command into RESP.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Shape {
    /// Value: bulk string; absent: null (GET, GETDEL, GETEX).
    Bulk,
    /// Written: `+OK`; condition failed: null (SET without GET).
    SetOk,
    /// The previous value, or null (SET ... GET, GETSET).
    SetGet,
    /// Written: 1; condition failed: 0 (SETNX).
    Flag,
    /// Written: `+OK` (SETEX, PSETEX).
    Ok,
    /// Expiry changed: 1; not changed or absent: 0 (EXPIRE family, PERSIST).
    Applied,
    /// Remaining time to live: -2 absent, -1 no expiry, else seconds (rounded) or ms.
    Ttl {
        /// Milliseconds (PTTL) rather than seconds (TTL).
        ms: bool,
    },
    /// Absolute expiry: -2 absent, -1 no expiry, else Unix seconds or ms.
    ExpireTime {
        /// Milliseconds (PEXPIRETIME) rather than seconds (EXPIRETIME).
        ms: bool,
    },
    /// The new integer (INCR family).
    Integer,
    /// The new length (APPEND, SETRANGE).
    Length,
    /// The new value as a bulk string (INCRBYFLOAT).
    Float,
    /// The value's length, 0 when absent (STRLEN).
    Strlen,
    /// A byte range of the value, Redis's GETRANGE arithmetic.
    GetRange {
        /// First byte (negative: from the end).
        start: i64,
        /// Last byte, inclusive (negative: from the end).
        end: i64,
    },
    /// `+string` or `+none` (TYPE, from an `Exists` reply).
    Type,
    /// The transaction ran: 1; a key existed: 0 (MSETNX).
    MSetNx,
    /// Value: this error; absent: null (GETEX with a bad time: Redis checks the
    /// time only once it found the key).
    ErrorIfFound(&'static str),
}

/// What a multi-shard reply is made of.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Tally {
    /// Keys deleted (DEL, UNLINK).
    Deleted,
    /// Keys found (EXISTS, from `Exists` replies).
    Found,
    /// Sum of shard counts (DBSIZE).
    Counted,
}

/// How to answer one command.
#[derive(Debug)]
pub(crate) enum Plan {
    /// Bytes that are the same in both protocols (`+OK`, `+PONG`, `+QUEUED`).
    Static(&'static [u8]),
    /// An error reply: the text after `-`.
    Error(Cow<'static, str>),
    /// A bulk string known at plan time.
    Bulk(Bytes),
    /// A bulk string or null known at plan time.
    BulkOrNull(Option<Bytes>),
    /// An integer known at plan time.
    Integer(i64),
    /// Any reply known at plan time, as a tree.
    Value(Value),
    /// The reply of one shard command.
    Shard {
        /// Index of the shard command.
        part: usize,
        /// How to read its reply.
        shape: Shape,
    },
    /// Bulk or null for each key (MGET).
    MGet(Range<usize>),
    /// `+OK` once every shard wrote its keys (MSET, FLUSHDB, FLUSHALL).
    AllOk(Range<usize>),
    /// An integer summed over several shard replies.
    Tally(Range<usize>, Tally),
    /// One random key among the shards' picks (RANDOMKEY).
    RandomKey {
        /// One `RandomKey` per shard.
        parts: Range<usize>,
        /// Which non-empty shard to take the key from.
        pick: usize,
    },
    /// A SCAN page.
    Scan(super::keys::ScanPlan),
    /// INFO.
    Info {
        /// One `Stats` per shard.
        parts: Range<usize>,
        /// The sections asked for.
        sections: super::server::Sections,
    },
    /// WATCH: record each key's version, then `+OK`.
    Watch {
        /// One `Exists` per key.
        parts: Range<usize>,
        /// The keys, in the same order.
        keys: Vec<Bytes>,
    },
    /// UNWATCH, DISCARD: forget the watched keys, then `+OK`. Done when the reply is
    /// written, like WATCH's recording, so the two keep their order in a pipeline.
    Unwatch,
    /// HELLO: switch protocol (`None`: keep it), then the connection's description.
    Hello(Option<Protocol>),
    /// Run on its own after everything planned before it.
    Barrier(Barrier),
}

impl From<Reject> for Plan {
    fn from(r: Reject) -> Plan {
        Plan::Error(r.0)
    }
}

/// Redis's text for a shard error.
pub(crate) fn error_text(err: &ShardError) -> Cow<'static, str> {
    Cow::Borrowed(match err {
        ShardError::NotInteger => "ERR value is not an integer or out of range",
        ShardError::NotFloat => "ERR value is not a valid float",
        ShardError::Overflow => "ERR increment or decrement would overflow",
        ShardError::NanOrInfinity => "ERR increment would produce NaN or Infinity",
        ShardError::ValueTooLarge => "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ShardError::NoSpace => "ERR no space left on device; the write was not acknowledged",
        ShardError::Io(e) => {
            return Cow::Owned(format!("ERR I/O error (nothing was acknowledged): {e}"))
        }
        ShardError::Invalid(e) => return Cow::Owned(format!("ERR {e}")),
    })
}

/// Writes the reply of one plan, given every shard reply of its batch.
pub(crate) fn respond(
    core: &Core,
    session: &mut Session,
    plan: Plan,
    replies: &[Reply],
    out: &mut BytesMut,
) {
    match plan {
        Plan::Hello(proto) => {
            if let Some(proto) = proto {
                session.proto = proto;
            }
            super::server::hello_reply(core, session).encode(out, session.proto);
        }
        Plan::Watch { parts, keys } => {
            match super::multi::record_watch(session, &replies[parts], keys) {
                Ok(()) => out.extend_from_slice(b"+OK\r\n"),
                Err(e) => ReplyWriter::new(out, session.proto).error(e.0.as_bytes()),
            }
        }
        Plan::Unwatch => {
            session.watched.clear();
            out.extend_from_slice(b"+OK\r\n");
        }
        plan => respond_plain(core, session.proto, plan, replies, out),
    }
}

/// Everything but the session-changing plans.
fn respond_plain(core: &Core, proto: Protocol, plan: Plan, replies: &[Reply], out: &mut BytesMut) {
    match plan {
        Plan::Static(bytes) => out.extend_from_slice(bytes),
        Plan::Error(text) => ReplyWriter::new(out, proto).error(text.as_bytes()),
        Plan::Bulk(data) => ReplyWriter::new(out, proto).bulk(&data),
        Plan::BulkOrNull(data) => ReplyWriter::new(out, proto).bulk_or_null(data.as_deref()),
        Plan::Integer(n) => ReplyWriter::new(out, proto).integer(n),
        Plan::Value(v) => v.encode(out, proto),
        Plan::Shard { part, shape } => {
            shaped(&mut ReplyWriter::new(out, proto), shape, &replies[part])
        }
        Plan::MGet(parts) => mget(out, proto, &replies[parts]),
        Plan::AllOk(parts) => {
            let mut w = ReplyWriter::new(out, proto);
            match replies[parts].iter().find_map(|r| match r {
                Reply::Error(e) => Some(e),
                _ => None,
            }) {
                Some(e) => w.error(error_text(e).as_bytes()),
                None => w.ok(),
            }
        }
        Plan::Tally(parts, tally) => {
            let n: u64 = replies[parts]
                .iter()
                .map(|r| match (tally, r) {
                    (Tally::Deleted, Reply::Done { .. }) => 1,
                    (Tally::Found, Reply::Exists { .. }) => 1,
                    (Tally::Counted, Reply::Count(n)) => *n,
                    _ => 0,
                })
                .sum();
            ReplyWriter::new(out, proto).integer(n.min(i64::MAX as u64) as i64);
        }
        Plan::RandomKey { parts, pick } => {
            let keys: Vec<&Bytes> = replies[parts]
                .iter()
                .filter_map(|r| match r {
                    Reply::Key(Some(k)) => Some(k),
                    _ => None,
                })
                .collect();
            let key = (!keys.is_empty()).then(|| keys[pick % keys.len()]);
            ReplyWriter::new(out, proto).bulk_or_null(key.map(|k| &k[..]));
        }
        Plan::Scan(scan) => super::keys::respond_scan(core, proto, scan, replies, out),
        Plan::Info { parts, sections } => {
            let text = super::server::info_text(core, &sections, &replies[parts]);
            ReplyWriter::new(out, proto).verbatim(*b"txt", text.as_bytes());
        }
        Plan::Hello(_) | Plan::Watch { .. } | Plan::Unwatch | Plan::Barrier(_) => {
            // Handled by `respond` / the connection; never reach here.
            ReplyWriter::new(out, proto).error(b"ERR internal: misplaced plan");
        }
    }
}

fn mget(out: &mut BytesMut, proto: Protocol, replies: &[Reply]) {
    let size: usize = replies
        .iter()
        .map(|r| match r {
            Reply::Value { value, .. } => value.len() + 16,
            _ => 5,
        })
        .sum();
    let mut w = ReplyWriter::new(out, proto);
    if size > RESP_REPLY_SIZE_MAX as usize {
        w.error(
            format!("ERR MGET reply of {size} bytes exceeds ringkv's limit of {RESP_REPLY_SIZE_MAX} bytes")
                .as_bytes(),
        );
        return;
    }
    w.array_len(replies.len());
    for r in replies {
        match r {
            Reply::Value { value, .. } => w.bulk(value),
            _ => w.null(),
        }
    }
}

/// Writes the reply of one shard command as `shape` says.
pub(crate) fn shaped(w: &mut ReplyWriter<'_>, shape: Shape, reply: &Reply) {
    if let Reply::Error(e) = reply {
        return w.error(error_text(e).as_bytes());
    }
    match (shape, reply) {
        (Shape::Bulk | Shape::Float, Reply::Value { value, .. }) => w.bulk(value),
        (Shape::Bulk, _) => w.null(),
        (Shape::SetOk, Reply::Done { .. }) => w.ok(),
        (Shape::SetOk, _) => w.null(),
        (Shape::SetGet, Reply::Done { old, .. } | Reply::CondFailed { old, .. }) => {
            w.bulk_or_null(old.as_deref())
        }
        (Shape::Flag, Reply::Done { .. }) => w.integer(1),
        (Shape::Flag, _) => w.integer(0),
        (Shape::Ok, _) => w.ok(),
        (Shape::Applied, Reply::Applied(true)) => w.integer(1),
        (Shape::Applied, _) => w.integer(0),
        (Shape::Ttl { ms }, Reply::Ttl(Some(left))) => {
            let left = (*left).min(i64::MAX as u64) as i64;
            // Redis rounds TTL to the nearest second: (ms + 500) / 1000.
            w.integer(if ms {
                left
            } else {
                left.saturating_add(500) / 1000
            })
        }
        (
            Shape::Ttl { .. } | Shape::ExpireTime { .. },
            Reply::Ttl(None) | Reply::ExpireAt(None),
        ) => w.integer(-1),
        (Shape::ExpireTime { ms }, Reply::ExpireAt(Some(at))) => {
            let at = (*at).min(i64::MAX as u64) as i64;
            w.integer(if ms { at } else { at / 1000 })
        }
        (Shape::Ttl { .. } | Shape::ExpireTime { .. }, _) => w.integer(-2),
        (Shape::Integer, Reply::Integer { value, .. }) => w.integer(*value),
        (Shape::Length, Reply::Length { len, .. }) => w.integer((*len).min(i64::MAX as u64) as i64),
        (Shape::Strlen, Reply::Value { value, .. }) => w.integer(value.len() as i64),
        (Shape::Strlen, _) => w.integer(0),
        (Shape::GetRange { start, end }, Reply::Value { value, .. }) => {
            w.bulk(get_range(value, start, end))
        }
        (Shape::GetRange { .. }, _) => w.bulk(b""),
        (Shape::Type, Reply::Exists { .. }) => w.simple(b"string"),
        (Shape::Type, _) => w.simple(b"none"),
        (Shape::MSetNx, Reply::Transaction(Some(_))) => w.integer(1),
        (Shape::MSetNx, _) => w.integer(0),
        (Shape::ErrorIfFound(text), Reply::Value { .. }) => w.error(text.as_bytes()),
        (Shape::ErrorIfFound(_), _) => w.null(),
        (shape, reply) => w.error(format!("ERR internal: {shape:?} got {reply:?}").as_bytes()),
    }
}

/// Redis 7.0's GETRANGE arithmetic (`getrangeCommand`).
pub(crate) fn get_range(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return b"";
    }
    let mut start = if start < 0 { len + start } else { start };
    let mut end = if end < 0 { len + end } else { end };
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return b"";
    }
    value.get(start as usize..=end as usize).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_range_matches_redis() {
        let v = b"Hello World";
        assert_eq!(get_range(v, 0, 3), b"Hell");
        assert_eq!(get_range(v, -3, -1), b"rld");
        assert_eq!(get_range(v, 0, -1), v);
        assert_eq!(get_range(v, 10, 100), b"d");
        assert_eq!(get_range(v, 5, 3), b"");
        assert_eq!(get_range(v, -1, -5), b"");
        assert_eq!(get_range(v, -100, 2), b"Hel");
        assert_eq!(get_range(b"", 0, -1), b"");
        assert_eq!(get_range(v, i64::MIN, i64::MAX), v);
    }
}
