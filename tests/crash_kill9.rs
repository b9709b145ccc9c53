//! Crash scenario: client threads write (SET, INCR, DELETE) against a `--durability sync`
//! node that is SIGKILLed at seeded random moments and restarted on the same data dir.
//! Every acknowledged write must survive with its value and version; a write in flight
//! at the kill may or may not be there, but never half-written; deleted keys stay
//! deleted; counters never go backwards. Small segments make the log roll, a low
//! garbage threshold in every other cycle makes compaction run under the kills, and
//! every third cycle writes periodic hints before its kill.
//!
//! Replay a failure with `RINGKV_SEED=<seed printed> cargo test --test crash_kill9`.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{temp_dir, Node, Rng};
use ringkv::client::Client;

/// Total time budget of the cycles (the last verification comes after it).
const RUN_TIME: Duration = Duration::from_secs(20);
const CYCLES_MAX: u32 = 40;
const THREADS: usize = 3;
const VALUE_KEYS_PER_THREAD: usize = 16;
const COUNTER_KEYS_PER_THREAD: usize = 4;
/// Bounds each writer even if the kill never comes.
const OPS_PER_THREAD_PER_CYCLE_MAX: u64 = 20_000;

/// What a key holds, as far as the client knows.
#[derive(Clone, Debug, PartialEq)]
enum Val {
    Absent,
    /// Value and version; version 0 = unknown (a SET in flight at the kill).
    Bytes(Vec<u8>, u64),
    Counter(i64),
}

#[derive(Clone, Debug)]
struct Track {
    key: Vec<u8>,
    acked: Val,
    /// The write that was sent but not answered when the node died.
    inflight: Option<Val>,
}

fn value_for(key: &[u8], cycle: u32, n: u64, rng: &mut Rng) -> Vec<u8> {
    let len = rng.range(200, 3000) as usize;
    let mut v = format!("{}|{cycle}|{n}|", String::from_utf8_lossy(key)).into_bytes();
    let fill = b'a' + (n % 26) as u8;
    v.resize(len.max(v.len()), fill);
    v
}

/// One writer: random ops on its own keys until told to stop or the node dies.
fn writer(
    addr: std::net::SocketAddr,
    mut tracks: Vec<Track>,
    seed: u64,
    cycle: u32,
    stop: Arc<AtomicBool>,
    acked_ops: Arc<AtomicU64>,
) -> Vec<Track> {
    let mut rng = Rng::new(seed);
    let Ok(mut client) = Client::connect(addr, Duration::from_secs(5)) else {
        return tracks;
    };
    for n in 0..OPS_PER_THREAD_PER_CYCLE_MAX {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let i = rng.below(tracks.len() as u64) as usize;
        let t = &mut tracks[i];
        let result = match &t.acked {
            Val::Counter(c) => {
                t.inflight = Some(Val::Counter(c + 1));
                client.incr(&t.key, 1).map(|v| {
                    assert_eq!(
                        v,
                        c + 1,
                        "INCR of {:?} returned {v}, expected {}",
                        t.key,
                        c + 1
                    );
                    Val::Counter(v)
                })
            }
            _ if rng.below(5) == 0 => {
                t.inflight = Some(Val::Absent);
                client.delete(&t.key).map(|_| Val::Absent)
            }
            _ => {
                let v = value_for(&t.key, cycle, n, &mut rng);
                t.inflight = Some(Val::Bytes(v.clone(), 0));
                client.set(&t.key, &v, None).map(|ver| Val::Bytes(v, ver))
            }
        };
        match result {
            Ok(val) => {
                t.acked = val;
                t.inflight = None;
                acked_ops.fetch_add(1, Ordering::Relaxed);
            }
            // The node died (or refused while dying): the in-flight write is uncertain.
            Err(_) => break,
        }
    }
    tracks
}

/// Checks every key against what was acknowledged, resolving in-flight writes.
fn verify(node: &Node, tracks: &mut [Vec<Track>], seed: u64, cycle: u32) {
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    let mut failures = Vec::new();
    for t in tracks.iter_mut().flatten() {
        let got = client.get(&t.key).expect("get after restart");
        let resolved = match (&t.acked, got) {
            (Val::Counter(c), got) => {
                let n = match &got {
                    None => 0,
                    Some((v, _)) => std::str::from_utf8(v)
                        .ok()
                        .and_then(|s| s.parse::<i64>().ok())
                        .unwrap_or(i64::MIN),
                };
                if n == *c || (t.inflight.is_some() && n == c + 1) {
                    Some(Val::Counter(n))
                } else {
                    None
                }
            }
            (acked, None) => match (acked, &t.inflight) {
                (Val::Absent, _) | (_, Some(Val::Absent)) => Some(Val::Absent),
                _ => None,
            },
            (acked, Some((v, ver))) => {
                let v = v.to_vec();
                match (acked, &t.inflight) {
                    (Val::Bytes(a, av), _) if *a == v && *av == ver => Some(acked.clone()),
                    (_, Some(Val::Bytes(f, _))) if *f == v => {
                        let older = match acked {
                            Val::Bytes(_, av) => *av,
                            _ => 0,
                        };
                        (ver > older).then_some(Val::Bytes(v, ver))
                    }
                    _ => None,
                }
            }
        };
        match resolved {
            Some(val) => {
                t.acked = val;
                t.inflight = None;
            }
            None => failures.push(format!(
                "key {:?}: acked {:?}, in flight {:?}, node has {:?}",
                String::from_utf8_lossy(&t.key),
                short(&t.acked),
                t.inflight.as_ref().map(short),
                client.get(&t.key).ok().flatten().map(|(v, ver)| (
                    String::from_utf8_lossy(&v[..v.len().min(40)]).into_owned(),
                    ver
                )),
            )),
        }
    }
    assert!(
        failures.is_empty(),
        "seed {seed}, after cycle {cycle}: {} keys lost or damaged acknowledged writes:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

fn short(v: &Val) -> String {
    match v {
        Val::Absent => "absent".into(),
        Val::Bytes(b, ver) => format!(
            "{:?} v{ver}",
            String::from_utf8_lossy(&b[..b.len().min(40)])
        ),
        Val::Counter(c) => format!("counter {c}"),
    }
}

#[test]
fn acknowledged_writes_survive_sigkill_under_load() {
    let seed = Rng::seed_from_env();
    println!("crash_kill9 seed {seed} (replay with RINGKV_SEED={seed})");
    let mut rng = Rng::new(seed);
    let dir = temp_dir();
    let data = dir.path().join("data");
    let mut tracks: Vec<Vec<Track>> = (0..THREADS)
        .map(|t| {
            let values = (0..VALUE_KEYS_PER_THREAD).map(|k| (format!("v{t}:{k}"), Val::Absent));
            let counters =
                (0..COUNTER_KEYS_PER_THREAD).map(|k| (format!("c{t}:{k}"), Val::Counter(0)));
            values
                .chain(counters)
                .map(|(key, acked)| Track {
                    key: key.into_bytes(),
                    acked,
                    inflight: None,
                })
                .collect()
        })
        .collect();
    let started = Instant::now();
    let mut cycle = 0;
    let (mut kills, mut clean, mut hinted_kills) = (0, 0, 0);
    let acked_ops = Arc::new(AtomicU64::new(0));
    while cycle < CYCLES_MAX && started.elapsed() < RUN_TIME {
        let garbage = if cycle % 2 == 0 { "5" } else { "50" };
        // Every third cycle lives long enough for periodic hints (1 s apart), so kills
        // also land after, and sometimes during, a hint written under load.
        let hinting = cycle % 3 == 1;
        let mut flags = common::small_segments(garbage).to_vec();
        flags.extend(["--hint-interval-secs", if hinting { "1" } else { "0" }]);
        let mut node = Node::start_in(&data, 2, &flags)
            .unwrap_or_else(|e| panic!("seed {seed}: restart {cycle} failed: {e}"));
        verify(&node, &mut tracks, seed, cycle);
        let stop = Arc::new(AtomicBool::new(false));
        let handles: Vec<_> = std::mem::take(&mut tracks)
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let (addr, stop, acked) = (node.addr(), stop.clone(), acked_ops.clone());
                let s = rng.next_u64() ^ i as u64;
                thread::spawn(move || writer(addr, t, s, cycle, stop, acked))
            })
            .collect();
        let (live_min, live_max) = if hinting { (900, 2500) } else { (50, 700) };
        thread::sleep(Duration::from_millis(rng.range(live_min, live_max)));
        // Every fifth cycle stops cleanly (hint written); the others crash.
        let clean_stop = cycle % 5 == 4;
        if clean_stop {
            stop.store(true, Ordering::Relaxed);
            tracks = handles
                .into_iter()
                .map(|h| h.join().expect("writer"))
                .collect();
            assert!(node.terminate().success(), "seed {seed}: clean stop failed");
            clean += 1;
        } else {
            node.kill();
            if hinting && node.stderr.lock().is_ok_and(|e| e.contains("wrote a hint")) {
                hinted_kills += 1;
            }
            stop.store(true, Ordering::Relaxed);
            tracks = handles
                .into_iter()
                .map(|h| h.join().expect("writer"))
                .collect();
            kills += 1;
        }
        cycle += 1;
    }
    let node = Node::start_in(
        &data,
        2,
        &["--durability", "sync", "--segment-size-mib", "1"],
    )
    .unwrap_or_else(|e| panic!("seed {seed}: final restart failed: {e}"));
    verify(&node, &mut tracks, seed, cycle);
    let segments = std::fs::read_dir(data.join("shard-0")).map_or(0, |d| d.count());
    println!(
        "crash_kill9: {cycle} cycles ({kills} kills, {hinted_kills} after a periodic hint, \
         {clean} clean stops), {} acknowledged writes, {segments} files in shard-0, {:?}",
        acked_ops.load(Ordering::Relaxed),
        started.elapsed()
    );
    assert!(kills >= 3, "seed {seed}: too few kill cycles ran ({kills})");
    assert!(
        hinted_kills >= 1,
        "seed {seed}: no kill came after a periodic hint"
    );
    assert!(
        acked_ops.load(Ordering::Relaxed) >= 100,
        "seed {seed}: too little load to test anything"
    );
}

/// After a SIGKILL the whole log is scanned. Values overwritten in it must not take the
/// cache budget from the live ones: with room for the live values and nothing more,
/// every live value is in memory again after the restart.
#[test]
fn after_sigkill_the_cache_holds_live_values_not_overwritten_ones() {
    const KEYS: usize = 64;
    const VALUE_SIZE: usize = 8_000;
    const VERSIONS: usize = 8;
    let dir = temp_dir();
    let data = dir.path().join("data");
    // No periodic hint: the restart must fold the whole log, overwritten values included
    // (a hint lists live values only and would hide a budget leak).
    let flags = ["--cache-size-mib", "1", "--hint-interval-secs", "0"];
    let value = |key: usize, version: usize| vec![b'a' + ((key + version) % 26) as u8; VALUE_SIZE];
    let mut node = Node::start_in(&data, 1, &flags).expect("node starts");
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    for version in 0..VERSIONS {
        for key in 0..KEYS {
            client
                .set(format!("k{key}").as_bytes(), &value(key, version), None)
                .expect("set");
        }
    }
    drop(client);
    node.kill();
    let node = Node::start_in(&data, 1, &flags).expect("node restarts");
    let live = (KEYS * VALUE_SIZE) as u64;
    assert_eq!(
        common::node_stat(&node, "cached_bytes"),
        live,
        "every live value cached again; the budget (1 MiB) fits them but not the {} MiB written",
        (KEYS * VALUE_SIZE * VERSIONS) >> 20
    );
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    for key in 0..KEYS {
        let got = client.get(format!("k{key}").as_bytes()).expect("get");
        assert_eq!(got.map(|(v, _)| v.to_vec()), Some(value(key, VERSIONS - 1)));
    }
}
