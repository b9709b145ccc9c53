//! Transactions: MULTI, EXEC, DISCARD, WATCH, UNWATCH.
//!
//! A shard applies the commands it is given one at a time, with nothing in between,
//! so a transaction whose keys all live on one shard is made atomic by sending it
//! there as one `Transaction` command. Keys on several shards cannot be (that would
//! need locks or two-phase commit across cores), so such an EXEC is refused with
//! `CROSSSLOT` and nothing runs.
//!
//! WATCH records the version of each key (the log position of its last write; none
//! when absent) when it is watched. EXEC hands those versions to the shard, which
//! runs the transaction only if every watched key still has them, checked in the
//! same step that runs the commands. A key that was absent, then written and
//! deleted again before EXEC, still counts as unchanged; and an EXPIRE or PERSIST
//! alone does not change a version. Redis would abort in both cases.

use std::collections::HashSet;

use bytes::{Bytes, BytesMut};

use super::args::{key, Handled, Reject};
use super::plan::{respond, Barrier, Plan};
use super::{table, Ctx, Queued, Session};
use crate::constants::RESP_WATCH_KEYS_MAX;
use crate::resp::ReplyWriter;
use crate::server::core::{Core, Parts, SyncNeed};
use crate::shard::{Command, Reply};

/// `MULTI`.
pub(crate) fn multi(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    if ctx.session.multi.is_some() {
        return Err(Reject::new("ERR MULTI calls can not be nested"));
    }
    ctx.session.multi = Some(Queued::default());
    Ok(Plan::Static(b"+OK\r\n"))
}

/// `EXEC`: a barrier, so the WATCHes before it have recorded their versions.
pub(crate) fn exec_plan(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    if ctx.session.multi.is_none() {
        return Err(Reject::new("ERR EXEC without MULTI"));
    }
    Ok(Plan::Barrier(Barrier::Exec))
}

/// `DISCARD`.
pub(crate) fn discard(ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    if ctx.session.multi.take().is_none() {
        return Err(Reject::new("ERR DISCARD without MULTI"));
    }
    // The watched keys go as for UNWATCH, in reply order.
    Ok(Plan::Unwatch)
}

/// `ERR` past `RESP_WATCH_KEYS_MAX` watched keys.
fn too_many_watched() -> Reject {
    Reject::owned(format!(
        "ERR ringkv watches at most {RESP_WATCH_KEYS_MAX} keys per connection"
    ))
}

/// `WATCH key [key ...]`: reads the version of each key; the reply records those of
/// keys not watched yet. Only they count against `RESP_WATCH_KEYS_MAX`: watching a
/// key again (Redis keeps its first watch) or naming it twice takes no more room.
pub(crate) fn watch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    if ctx.session.multi.is_some() {
        return Err(Reject::new("ERR WATCH inside MULTI is not allowed"));
    }
    let keys = args[1..].iter().map(key).collect::<Result<Vec<_>, _>>()?;
    let mut seen = HashSet::new();
    let distinct: Vec<&Bytes> = keys.iter().filter(|k| seen.insert(&k[..])).collect();
    // Which keys are new is known only when the reply is recorded, in order (an
    // UNWATCH planned before this WATCH in the same batch has not run yet), so the
    // limit is checked there; here only a WATCH that can never fit is refused early.
    if distinct.len() > RESP_WATCH_KEYS_MAX as usize {
        return Err(too_many_watched());
    }
    let start = ctx.parts.len();
    for key in &distinct {
        // The version is all WATCH needs: the index has it, no value is read.
        ctx.push(Command::Exists {
            key: (*key).clone(),
            access: false,
        });
    }
    // Copies: the session keeps them, and slices would pin read buffers.
    let keys = distinct.iter().map(|k| Bytes::copy_from_slice(k)).collect();
    Ok(Plan::Watch {
        parts: start..ctx.parts.len(),
        keys,
    })
}

/// `UNWATCH`: forgets the watched keys when its reply is written, after the WATCHes
/// planned before it in the batch have recorded theirs.
pub(crate) fn unwatch(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    Ok(Plan::Unwatch)
}

/// Records the versions WATCH read; a key watched already keeps its first version.
/// All or nothing: a WATCH that would take the connection past `RESP_WATCH_KEYS_MAX`
/// records none of its keys.
pub(crate) fn record_watch(
    session: &mut Session,
    replies: &[Reply],
    keys: Vec<Bytes>,
) -> Result<(), Reject> {
    let watched: HashSet<&[u8]> = session.watched.iter().map(|(k, _)| &k[..]).collect();
    let fresh: Vec<bool> = keys.iter().map(|k| !watched.contains(&k[..])).collect();
    let adding = fresh.iter().filter(|&&f| f).count();
    if session.watched.len() + adding > RESP_WATCH_KEYS_MAX as usize {
        return Err(too_many_watched());
    }
    for ((key, reply), fresh) in keys.into_iter().zip(replies).zip(fresh) {
        if !fresh {
            continue;
        }
        let version = match reply {
            Reply::Exists { version } => Some(*version),
            _ => None,
        };
        session.watched.push((key, version));
    }
    Ok(())
}

/// Runs `EXEC`: plans the queued commands, checks they (and the watched keys) live
/// on one shard, and runs them there as one `Transaction`.
pub(crate) async fn exec(core: &Core, session: &mut Session, out: &mut BytesMut) {
    let proto = session.proto;
    let watched = std::mem::take(&mut session.watched);
    let Some(queued) = session.multi.take() else {
        return ReplyWriter::new(out, proto).error(b"ERR EXEC without MULTI");
    };
    if queued.dirty {
        return ReplyWriter::new(out, proto)
            .error(b"EXECABORT Transaction discarded because of previous errors.");
    }
    let mut parts = Parts::default();
    let mut plans = Vec::with_capacity(queued.commands.len());
    for args in &queued.commands {
        let mut ctx = Ctx {
            core,
            session: &mut *session,
            parts: &mut parts,
        };
        let plan = match table::dispatch(&mut ctx, args) {
            // Barrier commands are refused at queuing time; never run one here.
            Plan::Barrier(_) => Plan::Error("ERR command not allowed inside MULTI".into()),
            plan => plan,
        };
        plans.push(plan);
    }
    let owner = |key: &[u8]| crate::hash::shard_of(key, core.count as u32) as usize;
    let mut shards: Vec<usize> = parts.shards().to_vec();
    shards.extend(watched.iter().map(|(k, _)| owner(k)));
    shards.sort_unstable();
    shards.dedup();
    let replies = match shards[..] {
        [] => Vec::new(),
        [shard] => {
            let mut one = Parts::default();
            let transaction = Command::Transaction {
                watch: watched,
                commands: parts.into_commands(),
            };
            one.push(shard, transaction);
            match core.run(one, SyncNeed::Default).await.pop() {
                Some(Reply::Transaction(Some(replies))) => replies,
                Some(Reply::Transaction(None)) => {
                    return ReplyWriter::new(out, proto).null_array();
                }
                other => {
                    let text = format!("ERR internal: EXEC got {other:?}");
                    return ReplyWriter::new(out, proto).error(text.as_bytes());
                }
            }
        }
        _ => {
            return ReplyWriter::new(out, proto).error(
                b"CROSSSLOT Keys in the transaction (watched keys included) don't hash to the same shard; ringkv runs MULTI/EXEC atomically only within one shard",
            );
        }
    };
    ReplyWriter::new(out, proto).array_len(plans.len());
    for plan in plans {
        respond(core, session, plan, &replies, out);
    }
}
