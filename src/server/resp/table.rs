//! The command table and the dispatcher: name lookup, arity, `MULTI` queuing, then
//! the command's handler.
//!
//! Checks happen in Redis 7.0's order (`processCommand`): unknown command, then
//! arity, then queuing inside `MULTI`, then the command's own argument parsing. So
//! the same bad input gets the same error as from Redis, and inside `MULTI` the same
//! errors abort the transaction (`EXECABORT`) while argument errors found by the
//! handler show up in `EXEC`'s reply, as in Redis.

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;

use super::args::{shown, Handled, Reject};
use super::plan::Plan;
use super::{expire, keys, multi, server, strings, Ctx};
use crate::constants::{RESP_MULTI_BYTES_MAX, RESP_MULTI_QUEUE_MAX};

/// How a command behaves between `MULTI` and `EXEC`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tx {
    /// Queued, run by `EXEC`.
    Queue,
    /// Runs at once even inside `MULTI` (EXEC, DISCARD, MULTI, WATCH, QUIT), as in
    /// Redis.
    Now,
    /// Refused inside `MULTI` (the transaction then aborts): it needs several rounds
    /// of shard commands, which a transaction on one shard cannot hold.
    Never,
}

/// One command.
pub(crate) struct Spec {
    /// Lowercase name (Redis's `fullname`).
    pub name: &'static str,
    /// Redis's arity: exactly `n` arguments (name included) when positive, at
    /// least `-n` when negative.
    pub arity: i32,
    /// Redis's command flags, for `COMMAND`.
    pub flags: &'static [&'static str],
    /// First key, last key, step, for `COMMAND` (0, 0, 0 when keyless).
    pub keys: (i32, i32, i32),
    /// Redis's command group, for `COMMAND DOCS`.
    pub group: &'static str,
    /// Redis version that introduced the command, for `COMMAND DOCS`.
    pub since: &'static str,
    /// One line, for `COMMAND DOCS`.
    pub summary: &'static str,
    /// The handler.
    pub run: fn(&mut Ctx<'_>, &[Bytes]) -> Handled,
    /// Behaviour inside `MULTI`.
    pub tx: Tx,
}

const R: &[&str] = &["readonly", "fast"];
const W: &[&str] = &["write", "denyoom"];
const WF: &[&str] = &["write", "denyoom", "fast"];
const WD: &[&str] = &["write", "fast"];
const S: &[&str] = &["loading", "stale", "fast"];

macro_rules! table {
    ($($name:literal, $arity:expr, $flags:expr, $keys:expr, $group:literal, $since:literal,
       $summary:literal, $run:path, $tx:ident;)*) => {
        /// Every command ringkv answers over RESP.
        pub(crate) static COMMANDS: &[Spec] = &[$(Spec {
            name: $name,
            arity: $arity,
            flags: $flags,
            keys: $keys,
            group: $group,
            since: $since,
            summary: $summary,
            run: $run,
            tx: Tx::$tx,
        }),*];
    };
}

table! {
    // strings.rs
    "get", 2, R, (1, 1, 1), "string", "1.0.0", "Returns the string value of a key.", strings::get, Queue;
    "set", -3, W, (1, 1, 1), "string", "1.0.0", "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", strings::set, Queue;
    "setnx", 3, WF, (1, 1, 1), "string", "1.0.0", "Set the string value of a key only when the key doesn't exist.", strings::setnx, Queue;
    "setex", 4, W, (1, 1, 1), "string", "2.0.0", "Sets the string value and expiration time of a key. Creates the key if it doesn't exist.", strings::setex, Queue;
    "psetex", 4, W, (1, 1, 1), "string", "2.6.0", "Sets both string value and expiration time in milliseconds of a key. The key is created if it doesn't exist.", strings::psetex, Queue;
    "getset", 3, WF, (1, 1, 1), "string", "1.0.0", "Returns the previous string value of a key after setting it to a new value.", strings::getset, Queue;
    "getdel", 2, WD, (1, 1, 1), "string", "6.2.0", "Returns the string value of a key after deleting the key.", strings::getdel, Queue;
    "getex", -2, WD, (1, 1, 1), "string", "6.2.0", "Returns the string value of a key after setting its expiration time.", strings::getex, Queue;
    "mget", -2, R, (1, -1, 1), "string", "1.0.0", "Atomically returns the string values of one or more keys.", strings::mget, Queue;
    "mset", -3, W, (1, -1, 2), "string", "1.0.1", "Atomically creates or modifies the string values of one or more keys (atomic per shard on ringkv).", strings::mset, Queue;
    "msetnx", -3, W, (1, -1, 2), "string", "1.0.1", "Atomically modifies the string values of one or more keys only when all keys don't exist (keys on one shard on ringkv).", strings::msetnx, Queue;
    "incr", 2, WF, (1, 1, 1), "string", "1.0.0", "Increments the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", strings::incr, Queue;
    "decr", 2, WF, (1, 1, 1), "string", "1.0.0", "Decrements the integer value of a key by one. Uses 0 as initial value if the key doesn't exist.", strings::decr, Queue;
    "incrby", 3, WF, (1, 1, 1), "string", "1.0.0", "Increments the integer value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrby, Queue;
    "decrby", 3, WF, (1, 1, 1), "string", "1.0.0", "Decrements a number from the integer value of a key. Uses 0 as initial value if the key doesn't exist.", strings::decrby, Queue;
    "incrbyfloat", 3, WF, (1, 1, 1), "string", "2.6.0", "Increment the floating point value of a key by a number. Uses 0 as initial value if the key doesn't exist.", strings::incrbyfloat, Queue;
    "append", 3, WF, (1, 1, 1), "string", "2.0.0", "Appends a string to the value of a key. Creates the key if it doesn't exist.", strings::append, Queue;
    "strlen", 2, R, (1, 1, 1), "string", "2.2.0", "Returns the length of a string value.", strings::strlen, Queue;
    "getrange", 4, &["readonly"], (1, 1, 1), "string", "2.4.0", "Returns a substring of the string stored at a key.", strings::getrange, Queue;
    "substr", 4, &["readonly"], (1, 1, 1), "string", "1.0.0", "Returns a substring from a string value.", strings::getrange, Queue;
    "setrange", 4, W, (1, 1, 1), "string", "2.2.0", "Overwrites a part of a string value with another by an offset. Creates the key if it doesn't exist.", strings::setrange, Queue;
    // keys.rs
    "del", -2, &["write"], (1, -1, 1), "generic", "1.0.0", "Deletes one or more keys.", keys::del, Queue;
    "unlink", -2, WD, (1, -1, 1), "generic", "4.0.0", "Asynchronously deletes one or more keys.", keys::del, Queue;
    "exists", -2, R, (1, -1, 1), "generic", "1.0.0", "Determines whether one or more keys exist.", keys::exists, Queue;
    "touch", -2, R, (1, -1, 1), "generic", "3.2.1", "Returns the number of existing keys out of those specified after updating the time they were last accessed.", keys::exists, Queue;
    "type", 2, R, (1, 1, 1), "generic", "1.0.0", "Determines the type of value stored at a key.", keys::type_of, Queue;
    "scan", -2, &["readonly"], (0, 0, 0), "generic", "2.8.0", "Iterates over the key names in the database.", keys::scan, Queue;
    "keys", 2, &["readonly"], (0, 0, 0), "generic", "1.0.0", "Returns all key names that match a pattern.", keys::keys_plan, Never;
    "dbsize", 1, R, (0, 0, 0), "server", "1.0.0", "Returns the number of keys in the database.", keys::dbsize, Queue;
    "randomkey", 1, &["readonly"], (0, 0, 0), "generic", "1.0.0", "Returns a random key name from the database.", keys::randomkey, Queue;
    "flushdb", -1, &["write"], (0, 0, 0), "server", "1.0.0", "Remove all keys from the current database.", keys::flush, Queue;
    "flushall", -1, &["write"], (0, 0, 0), "server", "1.0.0", "Removes all keys from all databases.", keys::flush, Queue;
    // expire.rs
    "expire", -3, WD, (1, 1, 1), "generic", "1.0.0", "Sets the expiration time of a key in seconds.", expire::expire, Queue;
    "pexpire", -3, WD, (1, 1, 1), "generic", "2.6.0", "Sets the expiration time of a key in milliseconds.", expire::pexpire, Queue;
    "expireat", -3, WD, (1, 1, 1), "generic", "1.2.0", "Sets the expiration time of a key to a Unix timestamp.", expire::expireat, Queue;
    "pexpireat", -3, WD, (1, 1, 1), "generic", "2.6.0", "Sets the expiration time of a key to a Unix milliseconds timestamp.", expire::pexpireat, Queue;
    "ttl", 2, R, (1, 1, 1), "generic", "1.0.0", "Returns the expiration time in seconds of a key.", expire::ttl, Queue;
    "pttl", 2, R, (1, 1, 1), "generic", "2.6.0", "Returns the expiration time in milliseconds of a key.", expire::pttl, Queue;
    "persist", 2, WD, (1, 1, 1), "generic", "2.2.0", "Removes the expiration time of a key.", expire::persist, Queue;
    "expiretime", 2, R, (1, 1, 1), "generic", "7.0.0", "Returns the expiration time of a key as a Unix timestamp.", expire::expiretime, Queue;
    "pexpiretime", 2, R, (1, 1, 1), "generic", "7.0.0", "Returns the expiration time of a key as a Unix milliseconds timestamp.", expire::pexpiretime, Queue;
    // multi.rs
    "multi", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", "1.2.0", "Starts a transaction.", multi::multi, Now;
    "exec", 1, &["noscript", "loading", "stale", "skip_slowlog"], (0, 0, 0), "transactions", "1.2.0", "Executes all commands in a transaction.", multi::exec_plan, Now;
    "discard", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", "2.0.0", "Discards a transaction.", multi::discard, Now;
    "watch", -2, &["noscript", "loading", "stale", "fast", "allow_busy"], (1, -1, 1), "transactions", "2.2.0", "Monitors changes to keys to determine the execution of a transaction.", multi::watch, Now;
    "unwatch", 1, &["noscript", "loading", "stale", "fast", "allow_busy"], (0, 0, 0), "transactions", "2.2.0", "Forgets about watched keys of a transaction.", multi::unwatch, Queue;
    // server.rs
    "ping", -1, S, (0, 0, 0), "connection", "1.0.0", "Returns the server's liveliness response.", server::ping, Queue;
    "echo", 2, S, (0, 0, 0), "connection", "1.0.0", "Returns the given string.", server::echo, Queue;
    "hello", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "6.0.0", "Handshakes with the Redis server.", server::hello, Queue;
    "auth", -2, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "1.0.0", "Authenticates the connection.", server::auth, Queue;
    "select", 2, S, (0, 0, 0), "connection", "1.0.0", "Changes the selected database (ringkv has database 0 only).", server::select, Queue;
    "quit", -1, &["noscript", "loading", "stale", "fast", "no_auth", "allow_busy"], (0, 0, 0), "connection", "1.0.0", "Closes the connection.", server::quit, Now;
    "info", -1, &["loading", "stale"], (0, 0, 0), "server", "1.0.0", "Returns information and statistics about the server.", server::info, Queue;
    "config", -2, &[], (0, 0, 0), "server", "2.0.0", "A container for server configuration commands.", server::config, Queue;
    "command", -1, &["loading", "stale"], (0, 0, 0), "server", "2.8.13", "Returns detailed information about all commands.", server::command, Queue;
    "client", -2, &[], (0, 0, 0), "connection", "2.4.0", "A container for client connection commands.", server::client, Queue;
    "wait", 3, &["noscript"], (0, 0, 0), "generic", "3.0.0", "Blocks until the asynchronous replication of all preceding write commands sent by the connection is completed (ringkv: no replicas, answers 0 at once).", server::wait, Queue;
    "debug", -2, &["admin", "noscript", "loading", "stale"], (0, 0, 0), "server", "1.0.0", "A container for debugging commands (ringkv: SLEEP only).", server::debug, Never;
    "function", -2, &[], (0, 0, 0), "scripting", "7.0.0", "A container for function commands (ringkv has no functions).", server::function, Queue;
    "time", 1, S, (0, 0, 0), "server", "2.6.0", "Returns the server time.", server::time, Queue;
}

/// Finds a command by name, any case.
pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    // GET and SET are most of the traffic: skip the hash for them.
    if name.eq_ignore_ascii_case(b"get") {
        return COMMANDS.first();
    }
    if name.eq_ignore_ascii_case(b"set") {
        return COMMANDS.get(1);
    }
    static INDEX: OnceLock<HashMap<&'static [u8], usize, ahash::RandomState>> = OnceLock::new();
    let index = INDEX.get_or_init(|| {
        COMMANDS
            .iter()
            .enumerate()
            .map(|(i, spec)| (spec.name.as_bytes(), i))
            .collect()
    });
    let mut lower = [0u8; 16];
    let lower = lower.get_mut(..name.len())?;
    for (l, c) in lower.iter_mut().zip(name) {
        *l = c.to_ascii_lowercase();
    }
    index.get(&lower[..]).and_then(|&i| COMMANDS.get(i))
}

/// Redis's reply to an unknown command, word for word.
pub(crate) fn unknown_command(args: &[Bytes]) -> Reject {
    let name = args.first().map_or(String::new(), |n| shown(n, 128));
    let mut rest = String::new();
    for arg in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        // The width is computed before the quote is added, as Redis's "'%.*s' ".
        let width = 128 - rest.len();
        rest.push('\'');
        rest.push_str(&shown(arg, width));
        rest.push_str("' ");
    }
    Reject::owned(format!(
        "ERR unknown command '{name}', with args beginning with: {rest}"
    ))
}

/// True when `argc` arguments (name included) fit `arity`.
pub(crate) fn arity_ok(arity: i32, argc: usize) -> bool {
    let argc = argc.min(i32::MAX as usize) as i32;
    if arity > 0 {
        argc == arity
    } else {
        argc >= -arity
    }
}

/// Plans one command: checks as Redis does, queues it inside `MULTI`, or runs its
/// handler.
pub(crate) fn dispatch(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Plan {
    let refuse = |ctx: &mut Ctx<'_>, reject: Reject| {
        // Inside MULTI, a command refused before queuing aborts the transaction.
        if let Some(queued) = ctx.session.multi.as_mut() {
            queued.dirty = true;
        }
        Plan::from(reject)
    };
    let Some(spec) = args.first().and_then(|name| lookup(name)) else {
        return refuse(ctx, unknown_command(args));
    };
    if !arity_ok(spec.arity, args.len()) {
        return refuse(ctx, Reject::arity(spec.name));
    }
    if ctx.session.multi.is_some() {
        match spec.tx {
            Tx::Now => {}
            Tx::Never => {
                let text = format!(
                    "ERR {} is not supported inside MULTI on ringkv (it runs over every shard)",
                    spec.name.to_ascii_uppercase()
                );
                return refuse(ctx, Reject::owned(text));
            }
            Tx::Queue => return queue(ctx, args),
        }
    }
    (spec.run)(ctx, args).unwrap_or_else(Plan::from)
}

/// Queues a command of a `MULTI` block, within the queue's bounds.
fn queue(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Plan {
    let Some(queued) = ctx.session.multi.as_mut() else {
        return Plan::Error("ERR internal: queuing outside MULTI".into());
    };
    let bytes: usize = args.iter().map(Bytes::len).sum();
    if queued.commands.len() >= RESP_MULTI_QUEUE_MAX as usize
        || queued.bytes + bytes > RESP_MULTI_BYTES_MAX as usize
    {
        queued.dirty = true;
        return Plan::Error(
            format!(
                "ERR transaction exceeds ringkv's limit of {RESP_MULTI_QUEUE_MAX} commands or {RESP_MULTI_BYTES_MAX} bytes"
            )
            .into(),
        );
    }
    queued.bytes += bytes;
    // Copy the arguments: a queue may live long, and slices would pin read chunks.
    queued
        .commands
        .push(args.iter().map(|a| Bytes::copy_from_slice(a)).collect());
    Plan::Static(b"+QUEUED\r\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<Bytes> {
        words
            .iter()
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect()
    }

    #[test]
    fn lookup_ignores_case_and_names_are_unique() {
        assert_eq!(lookup(b"GeT").map(|s| s.name), Some("get"));
        assert_eq!(lookup(b"sET").map(|s| s.name), Some("set"));
        assert_eq!(lookup(b"incr").map(|s| s.name), Some("incr"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(b"averyveryverylongcommandname").is_none());
        let mut names: Vec<_> = COMMANDS.iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), COMMANDS.len());
        assert!(COMMANDS.iter().all(|s| s.name.len() <= 16));
    }

    #[test]
    fn unknown_command_is_worded_like_redis() {
        assert_eq!(
            unknown_command(&args(&["foo", "bar", "baz"])).0,
            "ERR unknown command 'foo', with args beginning with: 'bar' 'baz' "
        );
        assert_eq!(
            unknown_command(&args(&["foo"])).0,
            "ERR unknown command 'foo', with args beginning with: "
        );
        // Arguments are shown up to 128 bytes in all.
        let long = "x".repeat(200);
        let text = unknown_command(&args(&["foo", &long, "next"])).0;
        assert_eq!(
            text,
            format!(
                "ERR unknown command 'foo', with args beginning with: '{}' ",
                "x".repeat(128)
            )
        );
    }

    #[test]
    fn arity_follows_redis() {
        assert!(arity_ok(2, 2));
        assert!(!arity_ok(2, 3));
        assert!(arity_ok(-3, 5));
        assert!(!arity_ok(-3, 2));
        assert_eq!(
            Reject::arity("get").0,
            "ERR wrong number of arguments for 'get' command"
        );
    }
}
