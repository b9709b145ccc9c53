//! Damaged files scenario: write known data, stop (kill or clean), damage the shard's
//! files, restart. The node must start, report what it cut or skipped, serve every
//! undamaged key with its latest value and version, never serve a damaged value (a key
//! whose latest record was hit is absent or has one of its older versions), and keep
//! accepting writes that survive the next restart.
//!
//! Record boundaries come from decoding the segments with `ringkv::storage`.

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::{eventually, temp_dir, Node, Rng};
use ringkv::client::Client;
use ringkv::proto::Status;
use ringkv::storage::{decode_record, HeaderBlock, RecordKind, SegmentHeader, HINT_FILE_NAME};

const KEYS: usize = 250;
const ROUNDS: usize = 3;
/// Compaction off (100% garbage never happens here), so records stay where written.
const FLAGS: [&str; 6] = common::small_segments("100");

/// Every acknowledged (value, version) of each key, oldest first.
type History = HashMap<Vec<u8>, Vec<(Vec<u8>, u64)>>;

/// One record found on disk.
#[derive(Debug)]
struct OnDisk {
    path: PathBuf,
    offset: u64,
    size: u64,
    seq: u64,
    key: Vec<u8>,
}

fn key(i: usize) -> Vec<u8> {
    format!("key:{i}").into_bytes()
}

/// Writes `ROUNDS` versions of `KEYS` keys through a one-core node; returns the history.
fn populate(data: &Path, rng: &mut Rng) -> (Node, History) {
    let node = Node::start_in(data, 1, &FLAGS).expect("node starts");
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    let mut history = History::new();
    for round in 0..ROUNDS {
        for i in 0..KEYS {
            let len = rng.range(300, 2500) as usize;
            let mut value = format!("{i}/{round}/").into_bytes();
            value.resize(len, b'a' + (round as u8));
            let version = client.set(&key(i), &value, None).expect("set");
            history.entry(key(i)).or_default().push((value, version));
        }
    }
    (node, history)
}

fn shard_dir(data: &Path) -> PathBuf {
    data.join("shard-0")
}

fn segments(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(shard_dir(data))
        .expect("shard dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    v.sort();
    v
}

/// Decodes every record of every segment (the files are undamaged at this point).
fn records(data: &Path) -> Vec<OnDisk> {
    let mut out = Vec::new();
    for path in segments(data) {
        let bytes = std::fs::read(&path).expect("read segment");
        let HeaderBlock::Valid(header) = SegmentHeader::decode_block(&bytes[..4096]) else {
            continue;
        };
        let mut offset = 4096usize;
        while let Ok(r) = decode_record(&bytes[offset..], header.nonce) {
            if r.kind != RecordKind::Pad {
                out.push(OnDisk {
                    path: path.clone(),
                    offset: offset as u64,
                    size: u64::from(r.size),
                    seq: r.seq,
                    key: r.key.to_vec(),
                });
            }
            offset += r.size as usize;
        }
    }
    assert!(!out.is_empty(), "no records decoded");
    out
}

/// Each key's latest record, in log order.
fn latest_records(recs: &[OnDisk]) -> Vec<&OnDisk> {
    let mut latest: HashMap<&[u8], &OnDisk> = HashMap::new();
    for r in recs {
        let e = latest.entry(&r.key).or_insert(r);
        if r.seq > e.seq {
            *e = r;
        }
    }
    let mut live: Vec<&OnDisk> = latest.into_values().collect();
    live.sort_by_key(|r| r.seq);
    live
}

/// Keys whose latest record overlaps `[start, end)` of `path`.
fn damaged_keys(recs: &[OnDisk], path: &Path, start: u64, end: u64) -> Vec<Vec<u8>> {
    let mut latest: HashMap<&[u8], &OnDisk> = HashMap::new();
    for r in recs {
        let e = latest.entry(&r.key).or_insert(r);
        if r.seq > e.seq {
            *e = r;
        }
    }
    latest
        .values()
        .filter(|r| r.path == path && r.offset < end && start < r.offset + r.size)
        .map(|r| r.key.clone())
        .collect()
}

/// (bytes cut, corrupt records skipped) from shard 0's recovery line.
fn recovery_counts(node: &Node) -> (u64, u64, String) {
    let lines = node.recovery_lines(1);
    let line = lines.last().expect("a recovery line").clone();
    let number_before = |marker: &str| -> u64 {
        let at = line.find(marker).expect("marker in recovery line");
        line[..at]
            .split_whitespace()
            .last()
            .and_then(|n| n.parse().ok())
            .expect("number")
    };
    (
        number_before(" bytes cut"),
        number_before(" corrupt records skipped"),
        line,
    )
}

/// Checks every key: undamaged ones exactly, damaged ones absent or an older version
/// (or, when `refusal_ok`, refused with `IO_ERROR`: a value read back lazily whose
/// checksum fails).
fn verify(node: &Node, history: &History, damaged: &[Vec<u8>], refusal_ok: bool) {
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    let mut served_older = 0;
    for (k, versions) in history {
        let latest = versions.last().expect("written");
        let got = match client.get(k) {
            Err(e) if refusal_ok && damaged.contains(k) && e.status() == Some(Status::IoError) => {
                continue;
            }
            got => {
                got.unwrap_or_else(|e| panic!("GET {:?} failed: {e}", String::from_utf8_lossy(k)))
            }
        };
        if !damaged.contains(k) {
            let got = got.unwrap_or_else(|| panic!("undamaged key {k:?} lost"));
            assert!(
                got.0[..] == latest.0[..] && got.1 == latest.1,
                "undamaged key {:?}: expected version {}, got version {} ({} bytes)",
                String::from_utf8_lossy(k),
                latest.1,
                got.1,
                got.0.len()
            );
        } else if let Some((v, ver)) = got {
            assert!(
                versions[..versions.len() - 1]
                    .iter()
                    .any(|(hv, hver)| hv[..] == v[..] && *hver == ver),
                "damaged key {:?} served a value that is not an older acknowledged one \
                 (version {ver}, latest {})",
                String::from_utf8_lossy(k),
                latest.1
            );
            served_older += 1;
        }
    }
    println!(
        "verified {} keys, {} damaged ({served_older} served an older version)",
        history.len(),
        damaged.len()
    );
}

/// The node keeps accepting writes after recovery, and they survive a restart.
fn writes_after_recovery(mut node: Node, data: &Path, history: &mut History) {
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    for i in 0..KEYS / 5 {
        let k = key(i * 5);
        let value = format!("after/{i}").into_bytes();
        let version = client.set(&k, &value, None).expect("write after recovery");
        history.entry(k).or_default().push((value, version));
    }
    let new_key = b"fresh-after-recovery".to_vec();
    let version = client.set(&new_key, b"fresh", None).expect("new key");
    history.insert(new_key, vec![(b"fresh".to_vec(), version)]);
    drop(client);
    assert!(node.terminate().success(), "clean stop");
    let node = Node::start_in(data, 1, &FLAGS).expect("restart after writes");
    // The damaged keys were all rewritten or are checked leniently above; after the
    // rewrite every key written since must be exact, older damage aside.
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    for i in 0..KEYS / 5 {
        let k = key(i * 5);
        let latest = history[&k].last().expect("written").clone();
        let got = client
            .get(&k)
            .expect("get")
            .expect("written after recovery");
        assert_eq!((got.0.to_vec(), got.1), latest, "key {i} after the restart");
    }
    let got = client.get(b"fresh-after-recovery").expect("get");
    assert_eq!(got.map(|g| g.0.to_vec()), Some(b"fresh".to_vec()));
}

fn seed() -> (u64, Rng) {
    let seed = Rng::seed_from_env();
    println!("storage_faults seed {seed} (replay with RINGKV_SEED={seed})");
    (seed, Rng::new(seed))
}

fn flip_bits(path: &Path, start: u64, end: u64, rng: &mut Rng, flips: usize) {
    let mut bytes = std::fs::read(path).expect("read");
    for _ in 0..flips {
        let at = rng.range(start, end - 1) as usize;
        bytes[at] ^= 1 << rng.below(8);
    }
    std::fs::write(path, bytes).expect("write damaged file");
}

#[test]
fn truncated_last_segment_loses_only_its_tail() {
    let (seed, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    node.kill();
    let recs = records(&data);
    let last = segments(&data).pop().expect("a segment");
    let data_end = recs
        .iter()
        .filter(|r| r.path == last)
        .map(|r| r.offset + r.size)
        .max()
        .unwrap_or(4096);
    let cut = rng.range(4096, data_end.max(4097));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open");
    file.set_len(cut).expect("truncate");
    drop(file);
    // Recovery reads a short file only up to its last whole block (the file should be
    // exactly `segment_size` long): records in the partial block before the cut are
    // dropped too, though intact.
    let damaged = damaged_keys(&recs, &last, cut - cut % 4096, u64::MAX);
    println!(
        "seed {seed}: cut {} at {cut} (data end {data_end})",
        last.display()
    );
    let node = Node::start_in(&data, 1, &FLAGS)
        .unwrap_or_else(|e| panic!("seed {seed}: node must start after truncation: {e}"));
    let (_, _, line) = recovery_counts(&node);
    println!("{line}");
    verify(&node, &history, &damaged, false);
    writes_after_recovery(node, &data, &mut history);
}

#[test]
fn flipped_bits_in_one_record_skip_only_that_record() {
    let (seed, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    node.kill();
    let recs = records(&data);
    // A key's latest record, not the very last one, so valid records follow the
    // damage (skip, not cut).
    let live = latest_records(&recs);
    let victim = live[rng.below(live.len() as u64 - 1) as usize];
    // Half the time the header (resync), else the key/value (skip by length).
    let (start, end) = if rng.below(2) == 0 {
        (victim.offset, victim.offset + 40)
    } else {
        (victim.offset + 40, victim.offset + victim.size)
    };
    flip_bits(&victim.path, start, end, &mut rng, 3);
    let damaged = damaged_keys(&recs, &victim.path, start, end);
    println!(
        "seed {seed}: flipped bits in [{start}, {end}) of {} (record seq {})",
        victim.path.display(),
        victim.seq
    );
    let node = Node::start_in(&data, 1, &FLAGS)
        .unwrap_or_else(|e| panic!("seed {seed}: node must start: {e}"));
    let (_, skipped, line) = recovery_counts(&node);
    println!("{line}");
    assert!(skipped >= 1, "seed {seed}: damage not reported: {line}");
    verify(&node, &history, &damaged, false);
    writes_after_recovery(node, &data, &mut history);
}

#[test]
fn zeroed_block_skips_the_records_it_covers() {
    let (seed, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    node.kill();
    let recs = records(&data);
    let first = segments(&data)[0].clone();
    let data_end = recs
        .iter()
        .filter(|r| r.path == first)
        .map(|r| r.offset + r.size)
        .max()
        .expect("records in the first segment");
    // A whole block strictly before the segment's last one, so valid records follow.
    let blocks = data_end / 4096;
    assert!(blocks >= 3, "too little data in the first segment");
    let block = rng.range(1, blocks - 2) * 4096;
    let mut bytes = std::fs::read(&first).expect("read");
    bytes[block as usize..block as usize + 4096].fill(0);
    std::fs::write(&first, bytes).expect("write");
    let damaged = damaged_keys(&recs, &first, block, block + 4096);
    println!(
        "seed {seed}: zeroed block at {block} of {}",
        first.display()
    );
    let node = Node::start_in(&data, 1, &FLAGS)
        .unwrap_or_else(|e| panic!("seed {seed}: node must start: {e}"));
    let (_, skipped, line) = recovery_counts(&node);
    println!("{line}");
    assert!(
        skipped >= 1,
        "seed {seed}: zeroed block not reported: {line}"
    );
    verify(&node, &history, &damaged, false);
    writes_after_recovery(node, &data, &mut history);
}

#[test]
fn deleted_hint_means_a_full_scan_and_nothing_lost() {
    let (_, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    assert!(node.terminate().success());
    let hint = shard_dir(&data).join(HINT_FILE_NAME);
    assert!(hint.exists(), "a clean stop writes the hint");
    std::fs::remove_file(&hint).expect("delete hint");
    let node = Node::start_in(&data, 1, &FLAGS).expect("node starts without its hint");
    let (cut, skipped, line) = recovery_counts(&node);
    assert!(line.contains("no usable hint"), "{line}");
    assert_eq!((cut, skipped), (0, 0), "{line}");
    verify(&node, &history, &[], false);
    writes_after_recovery(node, &data, &mut history);
}

#[test]
fn corrupt_hint_is_rejected_and_nothing_lost() {
    let (seed, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    assert!(node.terminate().success());
    let hint = shard_dir(&data).join(HINT_FILE_NAME);
    let len = std::fs::metadata(&hint).expect("hint written").len();
    // Anywhere in the header or the body (entries point at records).
    flip_bits(&hint, 0, len.min(64 + 24 + 40 * KEYS as u64), &mut rng, 4);
    let node = Node::start_in(&data, 1, &FLAGS)
        .unwrap_or_else(|e| panic!("seed {seed}: node must start with a corrupt hint: {e}"));
    let (_, _, line) = recovery_counts(&node);
    assert!(line.contains("no usable hint"), "seed {seed}: {line}");
    verify(&node, &history, &[], false);
    writes_after_recovery(node, &data, &mut history);
}

#[test]
fn flipped_bits_in_a_record_the_hint_points_at_are_never_served() {
    let (seed, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    assert!(node.terminate().success());
    let recs = records(&data);
    let live = latest_records(&recs);
    let victim = live[rng.below(live.len() as u64 - 1) as usize];
    // The value only: the hint trusts the header's location, the read checks the crc.
    flip_bits(
        &victim.path,
        victim.offset + 40 + victim.key.len() as u64,
        victim.offset + victim.size - 8,
        &mut rng,
        3,
    );
    let node = Node::start_in(&data, 1, &FLAGS)
        .unwrap_or_else(|e| panic!("seed {seed}: node must start: {e}"));
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    let versions = &history[&victim.key];
    match client.get(&victim.key) {
        Ok(None) => {}
        Ok(Some((v, ver))) => assert!(
            versions[..versions.len() - 1]
                .iter()
                .any(|(hv, hver)| hv[..] == v[..] && *hver == ver),
            "seed {seed}: damaged value served (version {ver})"
        ),
        Err(e) => {
            assert_eq!(e.status(), Some(Status::IoError), "seed {seed}: {e}");
            println!("seed {seed}: damaged key refused with {e}");
        }
    }
    let others: Vec<Vec<u8>> = vec![victim.key.clone()];
    drop(client);
    verify(&node, &history, &others, true);
    writes_after_recovery(node, &data, &mut history);
}

/// Keys whose latest record lies in `path`.
fn keys_latest_in(recs: &[OnDisk], path: &Path) -> Vec<Vec<u8>> {
    damaged_keys(recs, path, 0, u64::MAX)
}

#[test]
fn zeroed_header_block_keeps_the_segment_and_reports_what_it_held() {
    // Both header copies live in block 0; without them the segment's records cannot be
    // verified (their checksums are seeded by the header's nonce). The node must say so,
    // keep the file, and serve everything else; the segment must not pass for an unused
    // spare and be deleted. With a hint (clean stop) and without one (kill).
    for clean in [true, false] {
        let (seed, mut rng) = seed();
        let dir = temp_dir();
        let data = dir.path().join("data");
        let (mut node, mut history) = populate(&data, &mut rng);
        if clean {
            assert!(node.terminate().success());
        } else {
            node.kill();
        }
        let recs = records(&data);
        let first = segments(&data)[0].clone();
        let lost = keys_latest_in(&recs, &first);
        assert!(!lost.is_empty(), "the first segment holds latest records");
        let mut bytes = std::fs::read(&first).expect("read");
        bytes[..4096].fill(0);
        std::fs::write(&first, bytes).expect("write");
        let node = Node::start_in(&data, 1, &FLAGS)
            .unwrap_or_else(|e| panic!("seed {seed}: node must start: {e}"));
        eventually(Duration::from_secs(5), || {
            !node.stderr_lines("no readable header").is_empty()
        });
        let warnings = node.stderr_lines("no readable header");
        assert_eq!(warnings.len(), 1, "seed {seed}: not reported: {warnings:?}");
        println!("{}", warnings[0]);
        assert!(
            first.exists(),
            "seed {seed}: the damaged segment was deleted"
        );
        verify(&node, &history, &lost, false);
        writes_after_recovery(node, &data, &mut history);
        assert!(first.exists(), "the damaged segment is kept");
    }
}

#[test]
fn last_segment_truncated_below_the_hint_rejects_the_hint() {
    let (seed, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, mut history) = populate(&data, &mut rng);
    assert!(node.terminate().success(), "a clean stop writes the hint");
    let recs = records(&data);
    let last = segments(&data).pop().expect("a segment");
    let data_end = recs
        .iter()
        .filter(|r| r.path == last)
        .map(|r| r.offset + r.size)
        .max()
        .unwrap_or(4096);
    // Anywhere before the hint's position (the end of the data): entries and the scan
    // position would point past the file's end.
    let cut = rng.range(100, data_end.max(101));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open")
        .set_len(cut)
        .expect("truncate");
    let damaged = damaged_keys(&recs, &last, cut - cut % 4096, u64::MAX);
    println!(
        "seed {seed}: cut {} at {cut} (data end {data_end})",
        last.display()
    );
    let node = Node::start_in(&data, 1, &FLAGS)
        .unwrap_or_else(|e| panic!("seed {seed}: node must start after truncation: {e}"));
    let (_, _, line) = recovery_counts(&node);
    assert!(line.contains("no usable hint"), "seed {seed}: {line}");
    eventually(Duration::from_secs(5), || {
        !node.stderr_lines("shorter than their header").is_empty()
    });
    assert_eq!(node.stderr_lines("shorter than their header").len(), 1);
    verify(&node, &history, &damaged, false);
    writes_after_recovery(node, &data, &mut history);
}

#[test]
fn a_lost_shard_dir_or_manifest_refuses_to_start() {
    let (_, mut rng) = seed();
    let dir = temp_dir();
    let data = dir.path().join("data");
    let (mut node, history) = populate(&data, &mut rng);
    assert!(node.terminate().success());
    let moved = dir.path().join("shard-0.moved");
    std::fs::rename(shard_dir(&data), &moved).expect("move shard dir");
    let Err(e) = Node::start_in(&data, 1, &FLAGS) else {
        panic!("a lost shard dir must not start empty");
    };
    assert!(e.contains("lost"), "{e}");
    std::fs::rename(&moved, shard_dir(&data)).expect("restore shard dir");
    let manifest = data.join("MANIFEST");
    let saved = std::fs::read(&manifest).expect("manifest");
    std::fs::remove_file(&manifest).expect("remove manifest");
    for cores in [1, 2] {
        let Err(e) = Node::start_in(&data, cores, &FLAGS) else {
            panic!("no manifest beside old shards must not start");
        };
        assert!(e.contains("no MANIFEST"), "{e}");
    }
    std::fs::write(&manifest, saved).expect("restore manifest");
    let node = Node::start_in(&data, 1, &FLAGS).expect("starts once restored");
    verify(&node, &history, &[], false);
    // A first start cut short after it made its (still empty) shard dirs, before the
    // manifest: nothing was written, so the next start goes ahead.
    let fresh = dir.path().join("fresh");
    for k in 0..2 {
        std::fs::create_dir_all(fresh.join(format!("shard-{k}"))).expect("shard dir");
    }
    std::fs::write(fresh.join("shard-0/probe.blk"), [0u8; 4096]).expect("probe");
    Node::start_in(&fresh, 2, &FLAGS).expect("an empty interrupted data dir starts");
}
