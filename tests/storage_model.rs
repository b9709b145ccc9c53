//! Model scenario: seeded random operations (SET with and without TTL, DELETE, EXPIRE,
//! PERSIST, INCR) against a durable node, with clean restarts and SIGKILLs between
//! epochs and compaction running (1 MiB segments, low garbage threshold), checked after
//! every epoch and every restart against an in-memory model of what must be there.
//!
//! TTLs are either an hour (alive at every check) or 1 ms (expired by the next check,
//! and the key is left alone until then), so nothing depends on timing.
//!
//! Replay a failure with `RINGKV_SEED=<seed printed> cargo test --test storage_model`.

mod common;

use std::time::{Duration, Instant};

use common::{node_stat, temp_dir, Node, Rng};
use ringkv::client::Client;
use ringkv::proto::Status;

const RUN_TIME: Duration = Duration::from_secs(15);
const EPOCHS_MAX: u32 = 60;
const KEYS: usize = 40;
const LONG_TTL: Duration = Duration::from_secs(3600);
const SHORT_TTL: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ttl {
    Never,
    Long,
    /// After an INCR: whether INCR keeps a TTL is not what this test checks.
    Unknown,
}

#[derive(Clone, Debug)]
enum Entry {
    Absent,
    Live {
        value: Vec<u8>,
        /// Exact version when known (after SET or a check), else at least `version_min`.
        version: Option<u64>,
        version_min: u64,
        ttl: Ttl,
    },
    /// Given a 1 ms TTL: absent at the next check; no operation touches it until then.
    Doomed,
}

struct Model {
    entries: Vec<Entry>,
}

fn key(i: usize) -> Vec<u8> {
    format!("model:{i}").into_bytes()
}

impl Model {
    /// One random operation on key `i`, checked against the model and applied to it.
    /// SET values are 100 bytes to `value_max`.
    fn step(&mut self, client: &mut Client, i: usize, value_max: u64, rng: &mut Rng, ctx: &str) {
        let k = key(i);
        let entry = &mut self.entries[i];
        if matches!(entry, Entry::Doomed) {
            return;
        }
        let live_version = match entry {
            Entry::Live {
                version,
                version_min,
                ..
            } => Some(version.unwrap_or(*version_min)),
            _ => None,
        };
        match rng.below(10) {
            0..=3 => {
                let ttl = match rng.below(4) {
                    0 => Some(LONG_TTL),
                    1 => Some(SHORT_TTL),
                    _ => None,
                };
                let mut value = format!("{i}:{}:", rng.next_u64()).into_bytes();
                value.resize(rng.range(100, value_max) as usize, b'v');
                let v = client.set(&k, &value, ttl).expect(ctx);
                assert!(v > live_version.unwrap_or(0), "{ctx}: version went back");
                *entry = match ttl {
                    Some(SHORT_TTL) => Entry::Doomed,
                    _ => Entry::Live {
                        value,
                        version: Some(v),
                        version_min: v,
                        ttl: if ttl.is_some() { Ttl::Long } else { Ttl::Never },
                    },
                };
            }
            4 => {
                let existed = client.delete(&k).expect(ctx);
                assert_eq!(existed, live_version.is_some(), "{ctx}: DELETE {i}");
                *entry = Entry::Absent;
            }
            5 | 6 => {
                let short = rng.below(3) == 0;
                let ttl = if short { SHORT_TTL } else { LONG_TTL };
                let existed = client.expire(&k, ttl).expect(ctx);
                assert_eq!(existed, live_version.is_some(), "{ctx}: EXPIRE {i}");
                if let Entry::Live { ttl, version, .. } = entry {
                    *ttl = Ttl::Long;
                    *version = None;
                    if short {
                        *entry = Entry::Doomed;
                    }
                }
            }
            7 => {
                let got = client.persist(&k).expect(ctx);
                match entry {
                    Entry::Live { ttl, version, .. } => {
                        let had = got.unwrap_or_else(|| panic!("{ctx}: PERSIST {i}: absent"));
                        if *ttl != Ttl::Unknown {
                            assert_eq!(had, *ttl == Ttl::Long, "{ctx}: PERSIST {i}");
                        }
                        *ttl = Ttl::Never;
                        *version = None;
                    }
                    _ => assert_eq!(got, None, "{ctx}: PERSIST {i} of an absent key"),
                }
            }
            _ => {
                let delta = rng.range(0, 10) as i64 - 5;
                let current = match entry {
                    Entry::Live { value, .. } => std::str::from_utf8(value)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .ok_or(()),
                    _ => Ok(0),
                };
                match (client.incr(&k, delta), current) {
                    (Ok(n), Ok(c)) => {
                        assert_eq!(n, c + delta, "{ctx}: INCR {i}");
                        let ttl = match entry {
                            Entry::Live { .. } => Ttl::Unknown,
                            _ => Ttl::Never,
                        };
                        *entry = Entry::Live {
                            value: n.to_string().into_bytes(),
                            version: None,
                            version_min: live_version.unwrap_or(0) + 1,
                            ttl,
                        };
                    }
                    (Err(e), Err(())) => {
                        assert_eq!(e.status(), Some(Status::NotANumber), "{ctx}: INCR {i}");
                    }
                    (got, current) => {
                        panic!("{ctx}: INCR {i}: node {got:?}, model {current:?}")
                    }
                }
            }
        }
    }

    /// Checks every key; learns exact versions; doomed keys become absent.
    fn check(&mut self, node: &Node, ctx: &str) {
        let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
        for (i, entry) in self.entries.iter_mut().enumerate() {
            let k = key(i);
            let got = client.get(&k).expect(ctx);
            match entry {
                Entry::Absent | Entry::Doomed => {
                    assert!(
                        got.is_none(),
                        "{ctx}: key {i} must be absent ({entry:?}), node has version {:?}",
                        got.map(|g| g.1)
                    );
                    *entry = Entry::Absent;
                }
                Entry::Live {
                    value,
                    version,
                    version_min,
                    ttl,
                } => {
                    let (v, ver) = got.unwrap_or_else(|| panic!("{ctx}: key {i} lost"));
                    assert!(v[..] == value[..], "{ctx}: key {i} has another value");
                    match version {
                        Some(exact) => assert_eq!(ver, *exact, "{ctx}: key {i} version"),
                        None => assert!(ver >= *version_min, "{ctx}: key {i} version went back"),
                    }
                    *version = Some(ver);
                    *version_min = ver;
                    let remaining = client.ttl(&k).expect(ctx);
                    match ttl {
                        Ttl::Never => assert_eq!(remaining, Some(None), "{ctx}: key {i} TTL"),
                        Ttl::Long => assert!(
                            matches!(remaining, Some(Some(d)) if d > LONG_TTL / 2 && d <= LONG_TTL),
                            "{ctx}: key {i} TTL {remaining:?}, expected about an hour"
                        ),
                        Ttl::Unknown => {}
                    }
                }
            }
        }
    }
}

#[test]
fn random_operations_with_restarts_and_compaction_match_the_model() {
    let seed = Rng::seed_from_env();
    println!("storage_model seed {seed} (replay with RINGKV_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut model = Model {
        entries: vec![Entry::Absent; KEYS],
    };
    let started = Instant::now();
    let (mut epoch, mut kills, mut ops, mut compactions) = (0, 0, 0u64, 0u64);
    while epoch < EPOCHS_MAX && started.elapsed() < RUN_TIME {
        let pick = ["5", "25", "50"][rng.below(3) as usize];
        // Until compaction has finished a segment, use the lowest threshold.
        let garbage = if compactions == 0 { "5" } else { pick };
        let flags = common::small_segments(garbage);
        let mut node = Node::start_in(&data, 2, &flags)
            .unwrap_or_else(|e| panic!("seed {seed}: start of epoch {epoch} failed: {e}"));
        // Let 1 ms TTLs of the previous epoch pass for sure (not a readiness wait).
        std::thread::sleep(Duration::from_millis(3));
        model.check(&node, &format!("seed {seed} epoch {epoch} after restart"));
        let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
        // Compaction needs a sealed segment, so until one has been compacted, write
        // values large enough to fill a 1 MiB segment per shard every epoch, however
        // few operations a slow machine gets through.
        let value_max = if compactions == 0 { 60_000 } else { 6_000 };
        for n in 0..rng.range(200, 800) {
            let i = rng.below(KEYS as u64) as usize;
            model.step(
                &mut client,
                i,
                value_max,
                &mut rng,
                &format!("seed {seed} epoch {epoch} op {n}"),
            );
            ops += 1;
        }
        drop(client);
        std::thread::sleep(Duration::from_millis(3));
        model.check(&node, &format!("seed {seed} epoch {epoch} before restart"));
        // Short epochs can end before the background compaction step (every 100 ms)
        // finishes a segment; until one has, give it a bounded chance to.
        let mut finished = node_stat(&node, "compactions");
        if compactions + finished == 0 {
            common::eventually(Duration::from_secs(2), || {
                finished = node_stat(&node, "compactions");
                finished > 0
            });
        }
        compactions += finished;
        if rng.below(2) == 0 {
            node.kill();
            kills += 1;
        } else {
            assert!(node.terminate().success(), "seed {seed}: clean stop");
        }
        epoch += 1;
    }
    let node = Node::start_in(
        &data,
        2,
        &["--durability", "sync", "--segment-size-mib", "1"],
    )
    .expect("final start");
    std::thread::sleep(Duration::from_millis(3));
    model.check(&node, &format!("seed {seed} final"));
    println!(
        "storage_model: {epoch} epochs, {ops} operations, {kills} kills, \
         {compactions} compactions, {:?}",
        started.elapsed()
    );
    assert!(epoch >= 3, "seed {seed}: too few epochs ran");
    assert!(
        compactions >= 1,
        "seed {seed}: compaction never ran, the test missed it"
    );
}
