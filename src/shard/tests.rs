//! Shard semantics that the front-ends rely on.
#![allow(clippy::unwrap_used)]

use bytes::Bytes;

use super::*;

fn shard() -> (Shard<MemoryLog, ManualClock>, ManualClock) {
    let clock = ManualClock::new(1_000_000);
    (Shard::new(MemoryLog::default(), clock.clone()), clock)
}

fn set(key: &str, value: Bytes) -> Command {
    Command::Set {
        key: Bytes::copy_from_slice(key.as_bytes()),
        value,
        expiry: Expiry::Never,
        cond: Cond::Always,
        get_old: false,
    }
}

fn get(key: &str) -> Command {
    Command::Get {
        key: Bytes::copy_from_slice(key.as_bytes()),
    }
}

fn version_of(reply: &Reply) -> u64 {
    match reply {
        Reply::Value { version, .. } => *version,
        other => panic!("not a value: {other:?}"),
    }
}

/// A stored value must not keep the front-end's read buffer alive: both protocols
/// hand the shard slices of a 16 KiB (or larger) read chunk.
#[test]
fn stored_values_do_not_pin_the_read_buffer() {
    let (mut s, _) = shard();
    let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
    let range = chunk.as_ptr() as usize..chunk.as_ptr() as usize + chunk.len();
    s.apply(set("k", chunk.slice(100..132)));
    s.apply(Command::Append {
        key: Bytes::from_static(b"a"),
        value: chunk.slice(0..8),
    });
    for key in ["k", "a"] {
        let Reply::Value { value, .. } = s.apply(get(key)) else {
            panic!("{key} is stored");
        };
        assert!(
            !range.contains(&(value.as_ptr() as usize)),
            "{key}'s value points into the read chunk"
        );
    }
    let Reply::Value { value, .. } = s.apply(get("k")) else {
        panic!("k is stored");
    };
    assert_eq!(value, Bytes::from(vec![b'x'; 32]));
}

#[test]
fn expire_time_is_absolute() {
    let (mut s, clock) = shard();
    let key = Bytes::from_static(b"k");
    assert_eq!(
        s.apply(Command::ExpireTime { key: key.clone() }),
        Reply::NotFound
    );
    s.apply(set("k", Bytes::from_static(b"v")));
    assert_eq!(
        s.apply(Command::ExpireTime { key: key.clone() }),
        Reply::ExpireAt(None)
    );
    s.apply(Command::Expire {
        key: key.clone(),
        expiry: Expiry::AfterMs(5_000),
        cond: ExpireCond::Always,
    });
    assert_eq!(
        s.apply(Command::ExpireTime { key: key.clone() }),
        Reply::ExpireAt(Some(1_005_000))
    );
    clock.advance(5_000);
    assert_eq!(s.apply(Command::ExpireTime { key }), Reply::NotFound);
}

#[test]
fn transaction_runs_only_if_watched_versions_hold() {
    let (mut s, _) = shard();
    let v1 = version_of(&{
        s.apply(set("w", Bytes::from_static(b"1")));
        s.apply(get("w"))
    });
    let tx = |watch: Vec<(Bytes, Option<u64>)>| Command::Transaction {
        watch,
        commands: vec![
            set("a", Bytes::from_static(b"x")),
            Command::IncrBy {
                key: Bytes::from_static(b"a"),
                delta: 1,
            },
        ],
    };
    // Unchanged: every command runs, errors included (no rollback, like Redis).
    let Reply::Transaction(Some(replies)) = s.apply(tx(vec![(Bytes::from_static(b"w"), Some(v1))]))
    else {
        panic!("transaction should run");
    };
    assert_eq!(replies.len(), 2);
    assert_eq!(replies[1], Reply::Error(ShardError::NotInteger));
    // Changed since it was watched: nothing runs.
    s.apply(set("w", Bytes::from_static(b"2")));
    s.apply(Command::Delete {
        key: Bytes::from_static(b"a"),
        cond: Cond::Always,
    });
    assert_eq!(
        s.apply(tx(vec![(Bytes::from_static(b"w"), Some(v1))])),
        Reply::Transaction(None)
    );
    assert_eq!(s.apply(get("a")), Reply::NotFound);
    // `None` means "must still be absent" (MSETNX).
    assert_eq!(
        s.apply(tx(vec![(Bytes::from_static(b"w"), None)])),
        Reply::Transaction(None)
    );
    assert!(matches!(
        s.apply(tx(vec![(Bytes::from_static(b"nope"), None)])),
        Reply::Transaction(Some(_))
    ));
}

/// INCRBYFLOAT checks the stored value before the increment, in long double.
#[test]
fn incr_by_float_checks_the_stored_value_first() {
    let (mut s, _) = shard();
    let key = Bytes::from_static(b"f");
    let incr = |by: &str| Command::IncrByFloat {
        key: key.clone(),
        delta: ld::Ld::parse(by.as_bytes()).unwrap(),
    };
    s.apply(set("f", Bytes::from_static(b"5000")));
    assert!(matches!(
        s.apply(incr("1.1")),
        Reply::Value { value, .. } if value == "5001.10000000000000009"
    ));
    s.apply(set("f", Bytes::from_static(b"abc")));
    assert_eq!(s.apply(incr("inf")), Reply::Error(ShardError::NotFloat));
    s.apply(set("f", Bytes::from_static(b"1")));
    assert_eq!(
        s.apply(incr("inf")),
        Reply::Error(ShardError::NanOrInfinity)
    );
}

/// `EXPIRE ... XX LT`: only a key that has an expiry, and only to an earlier one.
#[test]
fn expire_xx_lt_needs_an_existing_expiry() {
    let (mut s, _) = shard();
    let key = Bytes::from_static(b"k");
    s.apply(set("k", Bytes::from_static(b"v")));
    let expire = |ms| Command::Expire {
        key: key.clone(),
        expiry: Expiry::AfterMs(ms),
        cond: ExpireCond::XxLt,
    };
    assert_eq!(s.apply(expire(5_000)), Reply::Applied(false));
    s.apply(Command::Expire {
        key: key.clone(),
        expiry: Expiry::AfterMs(10_000),
        cond: ExpireCond::Always,
    });
    assert_eq!(s.apply(expire(20_000)), Reply::Applied(false));
    assert_eq!(s.apply(expire(5_000)), Reply::Applied(true));
}

/// A log that gives every record a place, so the cache may drop values.
#[derive(Default)]
struct PlacingLog {
    seq: u64,
}

impl Log for PlacingLog {
    fn append(&mut self, _mutation: Mutation<'_>) -> Result<Appended, LogError> {
        self.seq += 1;
        let location = Location {
            segment: 0,
            offset: (self.seq * 8) as u32,
            length: 8,
        };
        Ok(Appended {
            seq: self.seq,
            location: Some(location),
        })
    }
}

/// EXISTS, TYPE and WATCH are answered from the index: `Exists` never asks for the
/// value, even one the cache dropped, and gives the same version GET would.
#[test]
fn exists_is_answered_without_the_value() {
    let clock = ManualClock::new(1_000_000);
    let nothing_cached = CachePolicy {
        budget_bytes: 0,
        eviction: Eviction::Values,
    };
    let mut s = Shard::with_cache(PlacingLog::default(), clock.clone(), nothing_cached);
    let Reply::Done { version, .. } = s.apply(set("k", Bytes::from(vec![b'v'; 100]))) else {
        panic!("set");
    };
    // Later writes push k's value out of the (empty) budget.
    for i in 0..4 {
        s.apply(set(&format!("other{i}"), Bytes::from(vec![b'o'; 100])));
    }
    assert!(s.needs_fetch(&get("k")).is_some(), "k's value was dropped");
    let exists = |key: &str| Command::Exists {
        key: Bytes::copy_from_slice(key.as_bytes()),
        access: true,
    };
    assert_eq!(s.needs_fetch(&exists("k")), None);
    assert_eq!(s.apply(exists("k")), Reply::Exists { version });
    assert_eq!(s.apply(exists("nosuch")), Reply::NotFound);
    s.apply(Command::Expire {
        key: Bytes::from_static(b"k"),
        expiry: Expiry::AfterMs(10),
        cond: ExpireCond::Always,
    });
    clock.advance(10);
    assert_eq!(s.apply(exists("k")), Reply::NotFound, "expired");
}
