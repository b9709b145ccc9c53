//! String commands: GET, SET and its variants, MGET, MSET, MSETNX, the INCR family,
//! APPEND, STRLEN, GETRANGE, SETRANGE.
//!
//! Each handler checks its arguments as Redis 7.0 does (same order, same error
//! texts), then pushes shard commands; the shard implements the semantics.

use bytes::Bytes;

use super::args::{int, is, key, Handled, Reject, NOT_FLOAT, NOT_INTEGER};
use super::plan::{Plan, Shape};
use super::Ctx;
use crate::constants::VALUE_SIZE_MAX;
use crate::shard::ld::Ld;
use crate::shard::{Command, Cond, Expiry};

/// Plans one single-key command.
fn one(ctx: &mut Ctx<'_>, command: Command, shape: Shape) -> Handled {
    let part = ctx.push(command);
    Ok(Plan::Shard { part, shape })
}

/// Which command the extended options are parsed for (Redis's `COMMAND_SET` /
/// `COMMAND_GET`): SET takes NX, XX, GET, KEEPTTL; GETEX takes PERSIST.
#[derive(Clone, Copy, PartialEq, Eq)]
enum For {
    Set,
    GetEx,
}

/// The options of SET / GETEX, as parsed by Redis's
/// `parseExtendedStringArgumentsOrReply`.
#[derive(Default)]
struct Options<'a> {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// Which of EX, PX, EXAT, PXAT, and its argument.
    expire: Option<(Unit, &'a [u8])>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

fn parse_options<'a>(args: &'a [Bytes], command: For) -> Result<Options<'a>, Reject> {
    let mut o = Options::default();
    let mut j = 0;
    while let Some(opt) = args.get(j) {
        let next = args.get(j + 1);
        let set = command == For::Set;
        let no_expire = o.expire.is_none();
        let expire_unit = |unit: Unit| {
            // The same unit may repeat (the last wins); two different ones may not.
            !o.keepttl && !o.persist && o.expire.is_none_or(|(u, _)| u == unit)
        };
        if is(opt, "nx") && !o.xx && set {
            o.nx = true;
        } else if is(opt, "xx") && !o.nx && set {
            o.xx = true;
        } else if is(opt, "get") && set {
            o.get = true;
        } else if is(opt, "keepttl") && !o.persist && no_expire && set {
            o.keepttl = true;
        } else if is(opt, "persist") && command == For::GetEx && no_expire && !o.keepttl {
            o.persist = true;
        } else if let (Some(unit), Some(next)) = (unit_of(opt), next) {
            if !expire_unit(unit) {
                return Err(Reject::syntax());
            }
            o.expire = Some((unit, next));
            j += 1;
        } else {
            return Err(Reject::syntax());
        }
        j += 1;
    }
    Ok(o)
}

fn unit_of(opt: &[u8]) -> Option<Unit> {
    [
        ("ex", Unit::Ex),
        ("px", Unit::Px),
        ("exat", Unit::ExAt),
        ("pxat", Unit::PxAt),
    ]
    .into_iter()
    .find(|(word, _)| is(opt, word))
    .map(|(_, unit)| unit)
}

/// An expiry argument, checked like Redis's `getExpireMillisecondsOrReply`: an
/// integer, positive, and not overflowing once in milliseconds.
fn expiry(unit: Unit, arg: &[u8], command: &str) -> Result<Expiry, Reject> {
    let n = int(arg)?;
    let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(Reject::expire_time(command));
    }
    let ms = if seconds { n * 1000 } else { n };
    Ok(match unit {
        Unit::Ex | Unit::Px => {
            // Redis adds the current time and refuses an overflow.
            if ms.checked_add(now_ms()).is_none() {
                return Err(Reject::expire_time(command));
            }
            Expiry::AfterMs(ms)
        }
        Unit::ExAt | Unit::PxAt => Expiry::AtMs(ms),
    })
}

/// Wall-clock milliseconds, only to check overflows as Redis does.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn value(arg: &Bytes) -> Bytes {
    // The parser already bounds bulk arguments to RESP_BULK_LEN_MAX = VALUE_SIZE_MAX.
    arg.clone()
}

/// `GET key`.
pub(crate) fn get(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let key = key(&args[1])?;
    one(ctx, Command::Get { key }, Shape::Bulk)
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT t | PXAT t | KEEPTTL]`.
pub(crate) fn set(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let o = parse_options(&args[3..], For::Set)?;
    let expiry = match o.expire {
        Some((unit, arg)) => expiry(unit, arg, "set")?,
        None if o.keepttl => Expiry::Keep,
        None => Expiry::Never,
    };
    let cond = match (o.nx, o.xx) {
        (true, _) => Cond::IfAbsent,
        (_, true) => Cond::IfPresent,
        _ => Cond::Always,
    };
    let key = key(&args[1])?;
    let command = Command::Set {
        key,
        value: value(&args[2]),
        expiry,
        cond,
        get_old: o.get,
    };
    let shape = if o.get { Shape::SetGet } else { Shape::SetOk };
    one(ctx, command, shape)
}

fn set_with(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    cond: Cond,
    expiry: Expiry,
    get_old: bool,
    shape: Shape,
) -> Handled {
    let key = key(&args[1])?;
    let command = Command::Set {
        key,
        value: value(args.last().unwrap_or(&args[1])),
        expiry,
        cond,
        get_old,
    };
    one(ctx, command, shape)
}

/// `SETNX key value`.
pub(crate) fn setnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    set_with(ctx, args, Cond::IfAbsent, Expiry::Never, false, Shape::Flag)
}

/// `SETEX key seconds value`.
pub(crate) fn setex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let expiry = expiry(Unit::Ex, &args[2], "setex")?;
    set_with(ctx, args, Cond::Always, expiry, false, Shape::Ok)
}

/// `PSETEX key milliseconds value`.
pub(crate) fn psetex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let expiry = expiry(Unit::Px, &args[2], "psetex")?;
    set_with(ctx, args, Cond::Always, expiry, false, Shape::Ok)
}

/// `GETSET key value`.
pub(crate) fn getset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    set_with(ctx, args, Cond::Always, Expiry::Never, true, Shape::SetGet)
}

/// `GETDEL key`.
pub(crate) fn getdel(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let key = key(&args[1])?;
    one(ctx, Command::GetDel { key }, Shape::Bulk)
}

/// `GETEX key [EX s | PX ms | EXAT t | PXAT t | PERSIST]`.
pub(crate) fn getex(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let o = parse_options(&args[2..], For::GetEx)?;
    let key = key(&args[1])?;
    let expiry = match o.expire.map(|(unit, arg)| expiry(unit, arg, "getex")) {
        Some(Ok(expiry)) => expiry,
        // Redis looks the key up before it checks the time: a missing key is a null
        // reply even with a bad time, a present one gets the error.
        Some(Err(reject)) => {
            let text = if reject.0 == NOT_INTEGER {
                NOT_INTEGER
            } else {
                "ERR invalid expire time in 'getex' command"
            };
            let shape = Shape::ErrorIfFound(text);
            return one(ctx, Command::Get { key }, shape);
        }
        None if o.persist => Expiry::Never,
        None => Expiry::Keep,
    };
    one(ctx, Command::GetEx { key, expiry }, Shape::Bulk)
}

/// `MGET key [key ...]`: one `Get` per key, on its owner.
pub(crate) fn mget(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let keys = args[1..].iter().map(key).collect::<Result<Vec<_>, _>>()?;
    let start = ctx.parts.len();
    for key in keys {
        ctx.push(Command::Get { key });
    }
    Ok(Plan::MGet(start..ctx.parts.len()))
}

/// The key-value pairs of MSET / MSETNX (arity -3, and an odd count in all).
fn pairs(args: &[Bytes], name: &str) -> Result<Vec<(Bytes, Bytes)>, Reject> {
    if args.len() % 2 == 0 {
        return Err(Reject::arity(name));
    }
    args[1..]
        .chunks(2)
        .map(|p| Ok((key(&p[0])?, value(&p[1]))))
        .collect()
}

fn plain_set(key: Bytes, value: Bytes) -> Command {
    Command::Set {
        key,
        value,
        expiry: Expiry::Never,
        cond: Cond::Always,
        get_old: false,
    }
}

/// `MSET key value [key value ...]`: the writes of each shard run together, in
/// order; shards run independently (atomic per shard, not across shards).
pub(crate) fn mset(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let pairs = pairs(args, "mset")?;
    let start = ctx.parts.len();
    for (key, value) in pairs {
        ctx.push(plain_set(key, value));
    }
    Ok(Plan::AllOk(start..ctx.parts.len()))
}

/// `MSETNX key value [key value ...]`: all or nothing, which ringkv can promise
/// only when every key lives on one shard (one `Transaction` there, checking every
/// key is absent). Keys on several shards are refused with `CROSSSLOT`, never half
/// done.
pub(crate) fn msetnx(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let pairs = pairs(args, "msetnx")?;
    let shard = ctx.owner(&pairs[0].0);
    if pairs.iter().any(|(k, _)| ctx.owner(k) != shard) {
        return Err(Reject::new(
            "CROSSSLOT Keys in request don't hash to the same shard (ringkv runs MSETNX atomically only within one shard)",
        ));
    }
    let watch = pairs.iter().map(|(k, _)| (k.clone(), None)).collect();
    let commands = pairs.into_iter().map(|(k, v)| plain_set(k, v)).collect();
    let part = ctx
        .parts
        .push(shard, Command::Transaction { watch, commands });
    Ok(Plan::Shard {
        part,
        shape: Shape::MSetNx,
    })
}

fn incr_by(ctx: &mut Ctx<'_>, args: &[Bytes], delta: i64) -> Handled {
    let key = key(&args[1])?;
    one(ctx, Command::IncrBy { key, delta }, Shape::Integer)
}

/// `INCR key`.
pub(crate) fn incr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    incr_by(ctx, args, 1)
}

/// `DECR key`.
pub(crate) fn decr(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    incr_by(ctx, args, -1)
}

/// `INCRBY key increment`.
pub(crate) fn incrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let delta = int(&args[2])?;
    incr_by(ctx, args, delta)
}

/// `DECRBY key decrement`.
pub(crate) fn decrby(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let delta = int(&args[2])?;
    // Redis refuses to negate LLONG_MIN with its own wording.
    let delta = delta
        .checked_neg()
        .ok_or_else(|| Reject::new("ERR decrement would overflow"))?;
    incr_by(ctx, args, delta)
}

/// `INCRBYFLOAT key increment`: parsed like Redis's `string2ld`, added by the shard
/// in 80-bit extended precision, as Redis does.
pub(crate) fn incrbyfloat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let delta = Ld::parse(&args[2]).ok_or_else(|| Reject::new(NOT_FLOAT))?;
    let key = key(&args[1])?;
    one(ctx, Command::IncrByFloat { key, delta }, Shape::Float)
}

/// `APPEND key value`.
pub(crate) fn append(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let key = key(&args[1])?;
    let value = value(&args[2]);
    one(ctx, Command::Append { key, value }, Shape::Length)
}

/// `STRLEN key`.
pub(crate) fn strlen(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let key = key(&args[1])?;
    one(ctx, Command::Get { key }, Shape::Strlen)
}

/// `GETRANGE key start end` (and its old name SUBSTR).
pub(crate) fn getrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let start = int(&args[2])?;
    let end = int(&args[3])?;
    let key = key(&args[1])?;
    one(ctx, Command::Get { key }, Shape::GetRange { start, end })
}

/// `SETRANGE key offset value`.
pub(crate) fn setrange(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let offset = int(&args[2])?;
    if offset < 0 {
        return Err(Reject::new("ERR offset is out of range"));
    }
    let value = value(&args[3]);
    if !value.is_empty() && offset.saturating_add(value.len() as i64) > i64::from(VALUE_SIZE_MAX) {
        return Err(Reject::new(
            "ERR string exceeds maximum allowed size (proto-max-bulk-len)",
        ));
    }
    let key = key(&args[1])?;
    // An empty patch never writes, so any offset is fine; the shard ignores it.
    let offset = u32::try_from(offset).unwrap_or(u32::MAX);
    one(ctx, Command::SetRange { key, offset, value }, Shape::Length)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(words: &[&str], command: For) -> Result<(bool, bool, bool, bool, bool), Reject> {
        let args: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse_options(&args, command).map(|o| (o.nx, o.xx, o.get, o.keepttl, o.persist))
    }

    #[test]
    fn set_options_follow_redis() {
        assert!(opts(&["nx", "xx"], For::Set).is_err());
        assert!(opts(&["xx", "nx"], For::Set).is_err());
        assert!(opts(&["nx", "nx", "get"], For::Set).is_ok());
        assert!(opts(&["ex", "1", "px", "1"], For::Set).is_err());
        assert!(opts(&["ex", "1", "ex", "2"], For::Set).is_ok());
        assert!(opts(&["ex", "1", "keepttl"], For::Set).is_err());
        assert!(opts(&["keepttl", "ex", "1"], For::Set).is_err());
        assert!(opts(&["ex"], For::Set).is_err());
        assert!(opts(&["persist"], For::Set).is_err());
        assert!(opts(&["persist"], For::GetEx).is_ok());
        assert!(opts(&["persist", "ex", "1"], For::GetEx).is_err());
        assert!(opts(&["nx"], For::GetEx).is_err());
        assert!(opts(&["GeT", "KEEPTTL", "Nx"], For::Set).is_ok());
        assert_eq!(
            opts(&["bogus"], For::Set).unwrap_err(),
            Reject::new("ERR syntax error")
        );
    }

    #[test]
    fn expire_arguments_follow_redis() {
        assert_eq!(
            expiry(Unit::Ex, b"0", "set").unwrap_err().0,
            "ERR invalid expire time in 'set' command"
        );
        assert_eq!(
            expiry(Unit::Px, b"-5", "getex").unwrap_err().0,
            "ERR invalid expire time in 'getex' command"
        );
        assert_eq!(
            expiry(Unit::Ex, b"x", "set").unwrap_err().0,
            "ERR value is not an integer or out of range"
        );
        assert!(expiry(Unit::Ex, b"9223372036854776", "set").is_err());
        assert!(expiry(Unit::Px, b"9223372036854775807", "set").is_err());
        assert_eq!(expiry(Unit::ExAt, b"5", "set"), Ok(Expiry::AtMs(5000)));
        assert_eq!(expiry(Unit::Px, b"5", "set"), Ok(Expiry::AfterMs(5)));
    }
}
