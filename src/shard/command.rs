//! What a shard can be asked to do, and what it answers.
//!
//! Both front-ends (native and RESP) translate their requests into these commands;
//! multi-key requests are split per owning shard before they get here. Every command
//! names at most one key, except the whole-shard ones (`Scan`, `Count`, `Flush`,
//! `RandomKey`, `Stats`).

use bytes::Bytes;

/// When a value expires.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Expiry {
    /// Leave the current expiry as it is (`KEEPTTL`, `INCR`, `APPEND`).
    Keep,
    /// No expiry (`PERSIST`, a plain `SET`).
    Never,
    /// At this Unix time in milliseconds; a time not in the future deletes the key.
    AtMs(i64),
    /// After this many milliseconds from now; zero or negative deletes the key.
    AfterMs(i64),
}

/// Condition a write or delete must meet to happen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cond {
    /// Always.
    Always,
    /// Only if the key is absent.
    IfAbsent,
    /// Only if the key is present.
    IfPresent,
    /// Only if the key is present with exactly this version.
    IfVersion(u64),
}

/// Condition of an expiry change (Redis 7 `EXPIRE ... NX|XX|GT|LT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExpireCond {
    /// Always.
    Always,
    /// Only if the key has no expiry.
    Nx,
    /// Only if the key has an expiry.
    Xx,
    /// Only if the new expiry is later (no expiry counts as infinite).
    Gt,
    /// Only if the new expiry is earlier (no expiry counts as infinite).
    Lt,
    /// Only if the key has an expiry and the new one is earlier (`XX LT`).
    XxLt,
}

/// A command for one shard.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Read a value.
    Get {
        /// Key.
        key: Bytes,
    },
    /// Whether a key exists, and its version, from the index alone: never reads a
    /// value, so it needs no disk read and does not depend on the value's record
    /// (EXISTS, TOUCH, TYPE, WATCH).
    Exists {
        /// Key.
        key: Bytes,
        /// Counts as a use of the value (TOUCH): it stays cached (and, in the pure
        /// cache mode, kept) as after a GET.
        access: bool,
    },
    /// Read a value and change its expiry (`GETEX`).
    GetEx {
        /// Key.
        key: Bytes,
        /// New expiry; `Keep` makes this a plain read.
        expiry: Expiry,
    },
    /// Read a value and delete it (`GETDEL`).
    GetDel {
        /// Key.
        key: Bytes,
    },
    /// Write a value.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
        /// Expiry of the new value.
        expiry: Expiry,
        /// Condition.
        cond: Cond,
        /// Return the previous value (`SET ... GET`, `GETSET`).
        get_old: bool,
    },
    /// Delete a key.
    Delete {
        /// Key.
        key: Bytes,
        /// `Always` or `IfVersion`.
        cond: Cond,
    },
    /// Change a key's expiry.
    Expire {
        /// Key.
        key: Bytes,
        /// New expiry (`Never` persists).
        expiry: Expiry,
        /// Condition.
        cond: ExpireCond,
    },
    /// Remaining time to live.
    Ttl {
        /// Key.
        key: Bytes,
    },
    /// Absolute expiry of a key (`EXPIRETIME`).
    ExpireTime {
        /// Key.
        key: Bytes,
    },
    /// Run `commands` in order, with nothing else in between, if every watched key
    /// still has the given version (`None`: is still absent); otherwise run nothing.
    /// Every key involved must belong to this shard. This is how `MULTI`/`EXEC`,
    /// `WATCH` and `MSETNX` are made atomic: a shard applies one command at a time.
    Transaction {
        /// Keys and the versions they must have.
        watch: Vec<(Bytes, Option<u64>)>,
        /// Commands to run (a nested `Transaction`, such as an MSETNX queued in a
        /// MULTI block, runs as one of them).
        commands: Vec<Command>,
    },
    /// Add to a decimal 64-bit integer value (absent = 0).
    IncrBy {
        /// Key.
        key: Bytes,
        /// Amount.
        delta: i64,
    },
    /// Add to a decimal floating-point value (absent = 0), in Redis's 80-bit
    /// extended precision (see [`super::ld`]).
    IncrByFloat {
        /// Key.
        key: Bytes,
        /// Amount (an infinity makes the command fail, after the stored value is
        /// checked, as in Redis).
        delta: super::ld::Ld,
    },
    /// Append to a value (absent = empty).
    Append {
        /// Key.
        key: Bytes,
        /// Bytes appended.
        value: Bytes,
    },
    /// Overwrite part of a value, zero-padding as needed.
    SetRange {
        /// Key.
        key: Bytes,
        /// Byte offset.
        offset: u32,
        /// Bytes written.
        value: Bytes,
    },
    /// One page of keys.
    Scan {
        /// Slot to start from (0 for the first page).
        cursor: u64,
        /// Most keys to return.
        count: u32,
        /// Only keys with this prefix.
        prefix: Bytes,
    },
    /// Number of keys.
    Count,
    /// Delete every key.
    Flush,
    /// Any one key.
    RandomKey,
    /// Counters.
    Stats,
}

impl Command {
    /// The key this command reads or writes, if it names one.
    pub fn key(&self) -> Option<&Bytes> {
        use Command::*;
        match self {
            Get { key }
            | Exists { key, .. }
            | GetEx { key, .. }
            | GetDel { key }
            | Set { key, .. }
            | Delete { key, .. }
            | Expire { key, .. }
            | Ttl { key }
            | ExpireTime { key }
            | IncrBy { key, .. }
            | IncrByFloat { key, .. }
            | Append { key, .. }
            | SetRange { key, .. } => Some(key),
            Scan { .. } | Count | Flush | RandomKey | Stats | Transaction { .. } => None,
        }
    }

    /// True when the command may change the shard (and so produce a log record).
    pub fn is_write(&self) -> bool {
        use Command::*;
        match self {
            Get { .. }
            | Exists { .. }
            | Ttl { .. }
            | ExpireTime { .. }
            | Scan { .. }
            | Count
            | RandomKey
            | Stats => false,
            Transaction { commands, .. } => commands.iter().any(Command::is_write),
            GetEx { expiry, .. } => *expiry != Expiry::Keep,
            GetDel { .. }
            | Set { .. }
            | Delete { .. }
            | Expire { .. }
            | IncrBy { .. }
            | IncrByFloat { .. }
            | Append { .. }
            | SetRange { .. }
            | Flush => true,
        }
    }
}

/// Why a command failed without changing anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShardError {
    /// The value is not a decimal 64-bit integer.
    NotInteger,
    /// The value is not a valid float.
    NotFloat,
    /// The operation would overflow a 64-bit integer.
    Overflow,
    /// The result would be NaN or infinite.
    NanOrInfinity,
    /// The resulting value would exceed `VALUE_SIZE_MAX`.
    ValueTooLarge,
    /// The log could not take the change: the disk is full. Nothing changed.
    NoSpace,
    /// The log could not take the change: an I/O error. Nothing changed.
    Io(String),
    /// The log cannot store this (for example an empty key). Nothing changed.
    Invalid(String),
}

/// Counters of one shard; `STATS` sums them over all shards.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardStats {
    /// Live keys.
    pub keys: u64,
    /// Sum of key lengths.
    pub key_bytes: u64,
    /// Sum of value lengths.
    pub value_bytes: u64,
    /// Read commands.
    pub reads: u64,
    /// Reads that found the key.
    pub hits: u64,
    /// Reads that did not.
    pub misses: u64,
    /// Write commands applied.
    pub writes: u64,
    /// Keys removed by expiry (lazily or by the sweeper).
    pub expired: u64,
    /// Keys with an expiry.
    pub keys_with_ttl: u64,
    /// Bytes held against the memory budget (cached values; keys too in cache mode).
    pub cached_bytes: u64,
    /// Values (or, in cache mode, keys) dropped to stay within the budget.
    pub evicted: u64,
}

impl ShardStats {
    /// Every counter by name, in a stable order (the names `STATS` prints).
    pub fn fields(&self) -> [(&'static str, u64); 11] {
        [
            ("keys", self.keys),
            ("key_bytes", self.key_bytes),
            ("value_bytes", self.value_bytes),
            ("reads", self.reads),
            ("hits", self.hits),
            ("misses", self.misses),
            ("writes", self.writes),
            ("expired", self.expired),
            ("keys_with_ttl", self.keys_with_ttl),
            ("cached_bytes", self.cached_bytes),
            ("evicted", self.evicted),
        ]
    }

    /// Adds another shard's counters to these.
    pub fn add(&mut self, other: &ShardStats) {
        self.keys += other.keys;
        self.key_bytes += other.key_bytes;
        self.value_bytes += other.value_bytes;
        self.reads += other.reads;
        self.hits += other.hits;
        self.misses += other.misses;
        self.writes += other.writes;
        self.expired += other.expired;
        self.keys_with_ttl += other.keys_with_ttl;
        self.cached_bytes += other.cached_bytes;
        self.evicted += other.evicted;
    }
}

/// A shard's answer to one command.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    /// A value and its version.
    Value {
        /// The value.
        value: Bytes,
        /// Its version.
        version: u64,
    },
    /// The key exists, with this version (`Exists`).
    Exists {
        /// Version of its value.
        version: u64,
    },
    /// No such key.
    NotFound,
    /// The write or delete happened.
    Done {
        /// The new version (for a delete, the version of the deletion record).
        version: u64,
        /// The previous value, when asked for or removed (`GETDEL`).
        old: Option<Bytes>,
    },
    /// The condition was not met; nothing changed.
    CondFailed {
        /// Version of the current value, if there is one.
        version: Option<u64>,
        /// The current value, when `get_old` was asked for.
        old: Option<Bytes>,
    },
    /// The key exists; whether its expiry changed (`NotFound` when it does not exist).
    Applied(bool),
    /// Remaining time to live of a present key: `None` = no expiry.
    Ttl(Option<u64>),
    /// Absolute expiry of a present key in Unix milliseconds: `None` = no expiry.
    ExpireAt(Option<u64>),
    /// Replies of a `Transaction`'s commands, or `None` when a watched key changed
    /// and nothing ran.
    Transaction(Option<Vec<Reply>>),
    /// New integer value after `IncrBy`.
    Integer {
        /// The value.
        value: i64,
        /// Its version.
        version: u64,
    },
    /// New length after `Append` / `SetRange`.
    Length {
        /// The length.
        len: u64,
        /// The version.
        version: u64,
    },
    /// One page of keys; `next` is `None` when the shard has no more.
    Keys {
        /// Cursor of the next page.
        next: Option<u64>,
        /// The keys.
        keys: Vec<Bytes>,
    },
    /// A count (`Count`, `Flush` returns the number removed).
    Count(u64),
    /// A key, for `RandomKey` (`None` when empty).
    Key(Option<Bytes>),
    /// Counters.
    Stats(ShardStats),
    /// The command failed.
    Error(ShardError),
}
