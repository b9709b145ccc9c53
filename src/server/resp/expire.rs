//! Expiry commands: EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT (with NX, XX, GT, LT),
//! TTL, PTTL, PERSIST, EXPIRETIME, PEXPIRETIME.
//!
//! Arguments are checked in Redis 7.0's order (`expireGenericCommand`): options
//! first, then the number, then overflow. A time in the past deletes the key, and
//! for GT/LT "no expiry" counts as infinitely far, as in Redis; the shard
//! implements both.

use bytes::Bytes;

use super::args::{int, is, key, Handled, Reject};
use super::plan::{Plan, Shape};
use super::Ctx;
use crate::shard::{Command, ExpireCond, Expiry};

/// Parses `NX | XX | GT | LT` like Redis's `parseExtendedExpireArgumentsOrReply`.
fn parse_cond(opts: &[Bytes]) -> Result<ExpireCond, Reject> {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in opts {
        if is(opt, "nx") {
            nx = true;
        } else if is(opt, "xx") {
            xx = true;
        } else if is(opt, "gt") {
            gt = true;
        } else if is(opt, "lt") {
            lt = true;
        } else {
            return Err(Reject::owned(format!(
                "ERR Unsupported option {}",
                super::args::shown(opt, usize::MAX)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(Reject::new(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(Reject::new(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(match (nx, xx, gt, lt) {
        (true, ..) => ExpireCond::Nx,
        // GT already requires an expiry, so XX adds nothing to it; LT does not.
        (_, _, true, _) => ExpireCond::Gt,
        (_, true, _, true) => ExpireCond::XxLt,
        (_, _, _, true) => ExpireCond::Lt,
        (_, true, ..) => ExpireCond::Xx,
        _ => ExpireCond::Always,
    })
}

fn expire_generic(
    ctx: &mut Ctx<'_>,
    args: &[Bytes],
    seconds: bool,
    absolute: bool,
    name: &str,
) -> Handled {
    let cond = parse_cond(&args[3..])?;
    let when = int(&args[2])?;
    // Negative times are allowed (they delete the key); only overflow is refused.
    let ms = if seconds {
        when.checked_mul(1000)
            .ok_or_else(|| Reject::expire_time(name))?
    } else {
        when
    };
    let expiry = if absolute {
        Expiry::AtMs(ms)
    } else {
        if ms.checked_add(now_ms()).is_none() {
            return Err(Reject::expire_time(name));
        }
        Expiry::AfterMs(ms)
    };
    let key = key(&args[1])?;
    let part = ctx.push(Command::Expire { key, expiry, cond });
    Ok(Plan::Shard {
        part,
        shape: Shape::Applied,
    })
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// `EXPIRE key seconds [NX | XX | GT | LT]`.
pub(crate) fn expire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    expire_generic(ctx, args, true, false, "expire")
}

/// `PEXPIRE key milliseconds [NX | XX | GT | LT]`.
pub(crate) fn pexpire(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    expire_generic(ctx, args, false, false, "pexpire")
}

/// `EXPIREAT key unix-seconds [NX | XX | GT | LT]`.
pub(crate) fn expireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    expire_generic(ctx, args, true, true, "expireat")
}

/// `PEXPIREAT key unix-ms [NX | XX | GT | LT]`.
pub(crate) fn pexpireat(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    expire_generic(ctx, args, false, true, "pexpireat")
}

fn read(ctx: &mut Ctx<'_>, args: &[Bytes], command: fn(Bytes) -> Command, shape: Shape) -> Handled {
    let key = key(&args[1])?;
    let part = ctx.push(command(key));
    Ok(Plan::Shard { part, shape })
}

/// `TTL key`.
pub(crate) fn ttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    read(
        ctx,
        args,
        |key| Command::Ttl { key },
        Shape::Ttl { ms: false },
    )
}

/// `PTTL key`.
pub(crate) fn pttl(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    read(
        ctx,
        args,
        |key| Command::Ttl { key },
        Shape::Ttl { ms: true },
    )
}

/// `EXPIRETIME key`.
pub(crate) fn expiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    read(
        ctx,
        args,
        |key| Command::ExpireTime { key },
        Shape::ExpireTime { ms: false },
    )
}

/// `PEXPIRETIME key`.
pub(crate) fn pexpiretime(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    read(
        ctx,
        args,
        |key| Command::ExpireTime { key },
        Shape::ExpireTime { ms: true },
    )
}

/// `PERSIST key`.
pub(crate) fn persist(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    read(
        ctx,
        args,
        |key| Command::Expire {
            key,
            expiry: Expiry::Never,
            cond: ExpireCond::Always,
        },
        Shape::Applied,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(words: &[&str]) -> Result<ExpireCond, Reject> {
        let args: Vec<Bytes> = words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse_cond(&args)
    }

    #[test]
    fn options_and_conflicts_follow_redis() {
        assert_eq!(cond(&[]), Ok(ExpireCond::Always));
        assert_eq!(cond(&["nx"]), Ok(ExpireCond::Nx));
        assert_eq!(cond(&["XX"]), Ok(ExpireCond::Xx));
        assert_eq!(cond(&["xx", "gt"]), Ok(ExpireCond::Gt));
        assert_eq!(cond(&["lt", "xx"]), Ok(ExpireCond::XxLt));
        assert_eq!(cond(&["lt"]), Ok(ExpireCond::Lt));
        assert_eq!(
            cond(&["nx", "gt"]).unwrap_err().0,
            "ERR NX and XX, GT or LT options at the same time are not compatible"
        );
        assert_eq!(
            cond(&["gt", "lt"]).unwrap_err().0,
            "ERR GT and LT options at the same time are not compatible"
        );
        assert_eq!(cond(&["foo"]).unwrap_err().0, "ERR Unsupported option foo");
    }
}
