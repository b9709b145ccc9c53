//! Full disk scenario: the data dir is a small loop-mounted ext4 image; a filler file eats
//! the free space, so the log meets a real `ENOSPC` when it needs a new segment. Writes
//! must then fail with `NO_SPACE` (or `IO_ERROR`), never be acknowledged and lost; reads
//! keep working; once the filler is deleted writes succeed again within a bounded wait;
//! and everything acknowledged survives a restart.
//!
//! Needs root (mount). Skipped with a note when mount is not permitted, except under CI
//! (`CI=true`), where it fails.

mod common;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{eventually, temp_dir, Node};
use ringkv::client::Client;
use ringkv::proto::Status;

const IMAGE_SIZE: &str = "64M";
const FLAGS: [&str; 6] = common::small_segments("100");
/// Writes of `VALUE_SIZE` bytes tried while the disk is full (8 MiB: several segments).
const FULL_WRITES_MAX: usize = 2000;
const VALUE_SIZE: usize = 4096;

/// A loop-mounted ext4 image; unmounted and deleted on drop.
struct LoopMount {
    mnt: PathBuf,
    mounted: bool,
    _dir: tempfile::TempDir,
}

impl LoopMount {
    fn new() -> Result<LoopMount, String> {
        let dir = temp_dir();
        let img = dir.path().join("disk.img");
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).map_err(|e| e.to_string())?;
        let mut guard = LoopMount {
            mnt: mnt.clone(),
            mounted: false,
            _dir: dir,
        };
        run("truncate", &["-s", IMAGE_SIZE, path_str(&img)])?;
        run("mkfs.ext4", &["-q", path_str(&img)])?;
        run("mount", &["-o", "loop", path_str(&img), path_str(&mnt)])?;
        guard.mounted = true;
        Ok(guard)
    }
}

impl Drop for LoopMount {
    fn drop(&mut self) {
        if self.mounted && run("umount", &[path_str(&self.mnt)]).is_err() {
            // Still busy (a node that has not exited yet): detach lazily.
            let _ = run("umount", &["-l", path_str(&self.mnt)]);
        }
    }
}

fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn run(cmd: &str, args: &[&str]) -> Result<(), String> {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .map_err(|e| format!("{cmd}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{cmd} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Writes 1 MiB chunks until the filesystem is full; returns the bytes written.
fn fill(path: &Path) -> u64 {
    let mut f = std::fs::File::create(path).expect("filler");
    let chunk = vec![0x5au8; 1 << 20];
    let mut written = 0u64;
    for _ in 0..128 {
        match f.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // The last partial chunk may have left a few blocks; take them too.
    for _ in 0..4096 {
        if !matches!(f.write(&chunk[..4096]), Ok(n) if n > 0) {
            break;
        }
        written += 4096;
    }
    let _ = f.sync_all();
    written
}

fn value(tag: &str, i: usize) -> Vec<u8> {
    let mut v = format!("{tag}/{i}/").into_bytes();
    v.resize(VALUE_SIZE, b'x');
    v
}

#[test]
fn full_disk_refuses_writes_keeps_reads_and_recovers() {
    let mount = match LoopMount::new() {
        Ok(m) => m,
        Err(e) if std::env::var("CI").as_deref() != Ok("true") => {
            println!("full_disk skipped: cannot mount a loop ext4 image here ({e})");
            return;
        }
        Err(e) => panic!("CI runs as root and must be able to mount: {e}"),
    };
    let data = mount.mnt.join("data");
    let mut node = Node::start_in(&data, 1, &FLAGS).expect("node starts on the image");
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    let mut acked: HashMap<Vec<u8>, (Vec<u8>, u64)> = HashMap::new();
    // Failed writes: their outcome is unknown, but never anything but this value.
    let mut uncertain: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    for i in 0..50 {
        let (k, v) = (format!("pre:{i}").into_bytes(), value("pre", i));
        let ver = client
            .set(&k, &v, None)
            .expect("write before the disk fills");
        acked.insert(k, (v, ver));
    }

    let filler = mount.mnt.join("filler");
    let filled = fill(&filler);
    println!("filler took {} MiB", filled >> 20);

    let mut first_error = None;
    let mut errors = 0;
    for i in 0..FULL_WRITES_MAX {
        let (k, v) = (format!("full:{i}").into_bytes(), value("full", i));
        match client.set(&k, &v, None) {
            Ok(ver) => {
                acked.insert(k, (v, ver));
            }
            Err(e) => {
                // The log says ENOSPC from a preallocation is `NoSpace`; IO_ERROR here
                // was the bug `enospc_from_glommio_preallocate_is_no_space`.
                assert_eq!(
                    e.status(),
                    Some(Status::NoSpace),
                    "write on a full disk failed with {e}, expected NO_SPACE"
                );
                first_error.get_or_insert((i, e.to_string()));
                errors += 1;
                uncertain.insert(k, v);
                // A few more after the first failure, then stop.
                if errors >= 20 {
                    break;
                }
            }
        }
    }
    let first_error = first_error.expect("writes never failed although the disk is full");
    println!(
        "first write refused after {} writes on the full disk: {}",
        first_error.0, first_error.1
    );

    // Every refusal is counted: at a segment roll (the log refuses the append) or at
    // the flush (the write was applied, then not acknowledged).
    let counted =
        common::stat(&mut client, "writes_refused") + common::stat(&mut client, "durable_failures");
    assert!(
        counted >= errors,
        "{errors} refused writes, {counted} counted in STATS"
    );

    // Reads keep working while writes are refused.
    for k in [&b"pre:0"[..], b"pre:49"] {
        let got = client
            .get(k)
            .expect("read on a full disk")
            .expect("present");
        assert_eq!(&got.0[..], &acked[k].0[..]);
    }

    // Free the space: writes succeed again within a bounded wait.
    std::fs::remove_file(&filler).expect("delete filler");
    let started = Instant::now();
    let mut n = 0;
    let recovered = eventually(Duration::from_secs(15), || {
        n += 1;
        let (k, v) = (b"after:probe".to_vec(), value("probe", n));
        match client.set(&k, &v, None) {
            Ok(ver) => {
                uncertain.remove(&k);
                acked.insert(k, (v, ver));
                true
            }
            Err(_) => {
                uncertain.insert(k, v);
                false
            }
        }
    });
    assert!(recovered, "writes still refused 15 s after space was freed");
    println!("writes accepted again after {:?}", started.elapsed());
    for i in 0..50 {
        let (k, v) = (format!("after:{i}").into_bytes(), value("after", i));
        let ver = client.set(&k, &v, None).expect("write after space freed");
        acked.insert(k, (v, ver));
    }

    // Nothing acknowledged is lost across a crash and restart.
    drop(client);
    node.kill();
    let node = Node::start_in(&data, 1, &FLAGS).expect("restart on the image");
    let mut client = Client::connect(node.addr(), Duration::from_secs(5)).expect("connect");
    for (k, (v, ver)) in &acked {
        let got = client
            .get(k)
            .expect("get")
            .unwrap_or_else(|| panic!("acknowledged {:?} lost", String::from_utf8_lossy(k)));
        assert_eq!(
            (&got.0[..], got.1),
            (&v[..], *ver),
            "acknowledged {:?} changed",
            String::from_utf8_lossy(k)
        );
    }
    for (k, v) in &uncertain {
        if let Some(got) = client.get(k).expect("get") {
            assert_eq!(&got.0[..], &v[..], "refused write left another value");
        }
    }
    println!(
        "{} acknowledged keys intact after restart, {} refused writes",
        acked.len(),
        uncertain.len()
    );
    drop(client);
    drop(node);
    drop(mount);
}
