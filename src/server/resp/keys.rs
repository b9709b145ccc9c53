//! Keyspace commands: DEL, UNLINK, EXISTS, TOUCH, TYPE, SCAN, KEYS, DBSIZE,
//! RANDOMKEY, FLUSHDB, FLUSHALL.
//!
//! Multi-key commands are split per owning shard and merged; whole-keyspace ones
//! ask every shard. A SCAN cursor names a shard and a slot in it:
//!
//! ```text
//!  63            40 39                              0
//! ┌────────────────┬─────────────────────────────────┐
//! │ shard          │ slot in that shard's index      │   (the same as native SCAN)
//! └────────────────┴─────────────────────────────────┘
//! ```
//! so cursor 0 starts at shard 0, and a shard's last page continues at the next
//! shard's slot 0. A key present for the whole iteration is returned exactly once,
//! as Redis promises (the index slots never move). Like Redis, SCAN accepts any
//! unsigned 64-bit cursor: one whose shard the node does not have ends the scan.

use std::ops::Range;

use bytes::{Bytes, BytesMut};

use super::args::{int, is, key, Handled, Reject};
use super::glob::{literal_prefix, string_match};
use super::plan::{error_text, Barrier, Plan, Shape, Tally};
use super::Ctx;
use crate::constants::{RESP_REPLY_SIZE_MAX, SCAN_COUNT_MAX};
use crate::resp::{Protocol, ReplyWriter, Value};
use crate::server::core::{Core, Parts, SyncNeed};
use crate::shard::{Command, Cond, Reply};

/// Bits of a SCAN cursor that hold the slot; the shard number sits above them.
pub(crate) const SCAN_SLOT_BITS: u32 = 40;

/// `DEL key [key ...]` and `UNLINK`: one delete per key, counted.
pub(crate) fn del(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let keys = args[1..].iter().map(key).collect::<Result<Vec<_>, _>>()?;
    let start = ctx.parts.len();
    for key in keys {
        let command = Command::Delete {
            key,
            cond: Cond::Always,
        };
        ctx.push(command);
    }
    Ok(Plan::Tally(start..ctx.parts.len(), Tally::Deleted))
}

/// `EXISTS key [key ...]` and `TOUCH`: a repeated key counts each time, as in Redis.
/// Answered from the index: no value is read, so none is fetched from disk, and a
/// key whose value cannot be read back still counts (as TTL and DBSIZE count it).
pub(crate) fn exists(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let keys = args[1..].iter().map(key).collect::<Result<Vec<_>, _>>()?;
    // TOUCH is a use of each value, EXISTS is not (as Redis's LRU clock sees them).
    let access = args[0].eq_ignore_ascii_case(b"touch");
    let start = ctx.parts.len();
    for key in keys {
        ctx.push(Command::Exists { key, access });
    }
    Ok(Plan::Tally(start..ctx.parts.len(), Tally::Found))
}

/// `TYPE key`: every ringkv value is a string, so the index answers it.
pub(crate) fn type_of(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let key = key(&args[1])?;
    let part = ctx.push(Command::Exists { key, access: false });
    Ok(Plan::Shard {
        part,
        shape: Shape::Type,
    })
}

/// One command per shard; the range of their parts.
fn every_shard(ctx: &mut Ctx<'_>, command: impl Fn() -> Command) -> Range<usize> {
    let start = ctx.parts.len();
    for shard in 0..ctx.core.count {
        ctx.parts.push(shard, command());
    }
    start..ctx.parts.len()
}

/// `DBSIZE`.
pub(crate) fn dbsize(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    Ok(Plan::Tally(
        every_shard(ctx, || Command::Count),
        Tally::Counted,
    ))
}

/// `RANDOMKEY`: every shard picks one, then one of the picks is taken at random.
/// (Like Redis, not uniform over keys: a key on a small shard is likelier.)
pub(crate) fn randomkey(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    let parts = every_shard(ctx, || Command::RandomKey);
    let pick = ctx.core.started.elapsed().subsec_nanos() as usize;
    Ok(Plan::RandomKey { parts, pick })
}

/// `FLUSHDB [ASYNC | SYNC]` and `FLUSHALL`: both empty every shard (one database).
pub(crate) fn flush(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    match args.get(1..) {
        Some([]) => {}
        Some([mode]) if is(mode, "async") || is(mode, "sync") => {}
        _ => return Err(Reject::syntax()),
    }
    Ok(Plan::AllOk(every_shard(ctx, || Command::Flush)))
}

/// A SCAN page being fetched.
#[derive(Debug)]
pub(crate) struct ScanPlan {
    shard: u64,
    part: usize,
    pattern: Option<Bytes>,
    /// False when `TYPE` named a type other than `string`: nothing matches.
    type_ok: bool,
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`.
pub(crate) fn scan(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let cursor = parse_cursor(&args[1]).ok_or_else(|| Reject::new("ERR invalid cursor"))?;
    let mut count: i64 = 10;
    let mut pattern = None;
    let mut type_ok = true;
    let mut rest = &args[2..];
    while let [opt, value, tail @ ..] = rest {
        if is(opt, "count") {
            count = int(value)?;
            if count < 1 {
                return Err(Reject::syntax());
            }
        } else if is(opt, "match") {
            // "*" matches everything: no filtering, as in Redis.
            pattern = (&value[..] != b"*").then(|| value.clone());
        } else if is(opt, "type") {
            type_ok = is(value, "string");
        } else {
            return Err(Reject::syntax());
        }
        rest = tail;
    }
    if !rest.is_empty() {
        return Err(Reject::syntax());
    }
    let shard = cursor >> SCAN_SLOT_BITS;
    if shard >= ctx.core.count as u64 {
        // Redis takes any unsigned 64-bit cursor; one naming a shard this node does
        // not have (a cursor from another node, or made up) has nothing left to visit.
        return Ok(Plan::Value(Value::Array(vec![
            Value::Bulk(Bytes::from_static(b"0")),
            Value::Array(Vec::new()),
        ])));
    }
    let prefix = pattern
        .as_ref()
        .map_or_else(Bytes::new, |p| Bytes::copy_from_slice(literal_prefix(p)));
    let command = Command::Scan {
        cursor: cursor & ((1 << SCAN_SLOT_BITS) - 1),
        count: count.clamp(1, i64::from(SCAN_COUNT_MAX)) as u32,
        prefix,
    };
    let part = ctx.parts.push(shard as usize, command);
    Ok(Plan::Scan(ScanPlan {
        shard,
        part,
        pattern,
        type_ok,
    }))
}

/// A cursor as Redis 7.0's `parseScanCursorOrReply` takes it, with `strtoul`: no
/// leading space, an optional sign, decimal digits, nothing after them. A negative
/// cursor wraps modulo 2^64 (`-1` is `u64::MAX`); a magnitude past `u64::MAX` is
/// refused. As in C, the argument ends at its first NUL byte, and an empty one is 0.
fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let arg = arg.split(|&b| b == 0).next().unwrap_or_default();
    if arg.is_empty() {
        // strtoul converts nothing and leaves the end pointer on the NUL.
        return Some(0);
    }
    let (negative, digits) = match arg {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    Some(if negative {
        magnitude.wrapping_neg()
    } else {
        magnitude
    })
}

fn matches(pattern: Option<&Bytes>, key: &[u8]) -> bool {
    pattern.is_none_or(|p| string_match(p, key, false))
}

/// Writes a SCAN reply: `[next cursor, [keys...]]`.
pub(crate) fn respond_scan(
    core: &Core,
    proto: Protocol,
    scan: ScanPlan,
    replies: &[Reply],
    out: &mut BytesMut,
) {
    let mut w = ReplyWriter::new(out, proto);
    let (next, keys) = match &replies[scan.part] {
        Reply::Keys { next, keys } => (next, keys),
        Reply::Error(e) => return w.error(error_text(e).as_bytes()),
        other => return w.error(format!("ERR internal: SCAN got {other:?}").as_bytes()),
    };
    let cursor = match next {
        Some(slot) => (scan.shard << SCAN_SLOT_BITS) | slot,
        None if scan.shard + 1 < core.count as u64 => (scan.shard + 1) << SCAN_SLOT_BITS,
        None => 0,
    };
    let keep: Vec<&Bytes> = keys
        .iter()
        .filter(|k| scan.type_ok && matches(scan.pattern.as_ref(), k))
        .collect();
    w.array_len(2);
    w.bulk(cursor.to_string().as_bytes());
    w.array_len(keep.len());
    for key in keep {
        w.bulk(key);
    }
}

/// `KEYS pattern`: a barrier, since it scans every shard to the end.
pub(crate) fn keys_plan(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    Ok(Plan::Barrier(Barrier::Keys(args[1].clone())))
}

/// Runs KEYS: every shard scanned in parallel, in rounds of `SCAN_COUNT_MAX` keys,
/// filtered by the pattern; refused if the reply would exceed `RESP_REPLY_SIZE_MAX`.
pub(crate) async fn keys(core: &Core, proto: Protocol, pattern: &Bytes, out: &mut BytesMut) {
    let pattern = (&pattern[..] != b"*").then_some(pattern);
    let prefix = pattern.map_or_else(Bytes::new, |p| Bytes::copy_from_slice(literal_prefix(p)));
    let mut cursors: Vec<Option<u64>> = vec![Some(0); core.count];
    let mut found: Vec<Bytes> = Vec::new();
    let mut size = 0usize;
    while cursors.iter().any(Option::is_some) {
        let mut parts = Parts::default();
        let mut asked = Vec::new();
        for (shard, cursor) in cursors.iter().enumerate() {
            if let Some(cursor) = *cursor {
                let command = Command::Scan {
                    cursor,
                    count: SCAN_COUNT_MAX,
                    prefix: prefix.clone(),
                };
                parts.push(shard, command);
                asked.push(shard);
            }
        }
        let replies = core.run(parts, SyncNeed::Default).await;
        for (shard, reply) in asked.into_iter().zip(replies) {
            let Reply::Keys { next, keys } = reply else {
                let mut w = ReplyWriter::new(out, proto);
                return match reply {
                    Reply::Error(e) => w.error(error_text(&e).as_bytes()),
                    other => w.error(format!("ERR internal: KEYS got {other:?}").as_bytes()),
                };
            };
            cursors[shard] = next;
            for key in keys {
                if matches(pattern, &key) {
                    size += key.len() + 16;
                    found.push(key);
                }
            }
        }
        if size > RESP_REPLY_SIZE_MAX as usize {
            let text = format!(
                "ERR KEYS reply exceeds ringkv's limit of {RESP_REPLY_SIZE_MAX} bytes; use SCAN"
            );
            return ReplyWriter::new(out, proto).error(text.as_bytes());
        }
    }
    let mut w = ReplyWriter::new(out, proto);
    w.array_len(found.len());
    for key in &found {
        w.bulk(key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_parse_like_strtoul() {
        // Each checked against redis-server 7.0.15.
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"-0"), Some(0));
        assert_eq!(parse_cursor(b"-18446744073709551615"), Some(1));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"1\0abc"), Some(1));
        assert_eq!(parse_cursor(b"\0"), Some(0));
        for bad in [
            &b"abc"[..],
            b" 1",
            b"\t1",
            b"1 ",
            b"1\n",
            b"18446744073709551616",
            b"-18446744073709551616",
            b"1.5",
            b"1e3",
            b"0x10",
            b"-",
            b"+",
            b"+-1",
            b"- 1",
        ] {
            assert_eq!(parse_cursor(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn error_text_is_redis_wording() {
        assert_eq!(
            error_text(&crate::shard::ShardError::NotInteger),
            "ERR value is not an integer or out of range"
        );
    }
}
