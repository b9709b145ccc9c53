//! Starting and stopping real `ringkv` processes for integration tests.
#![allow(dead_code)]

pub mod resp;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// A running node on loopback with its own temporary data dir.
pub struct Node {
    pub child: Option<Child>,
    pub port: u16,
    pub core_ports: Vec<u16>,
    /// The RESP port, `None` when the node serves no RESP.
    pub resp_port: Option<u16>,
    pub data_dir: PathBuf,
    /// Everything the node printed on stderr so far (recovery lines, errors).
    pub stderr: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

/// Flags of a durable node with 1 MiB segments (so tests fill several quickly) and
/// the given compaction threshold in percent ("100": compaction never runs).
pub const fn small_segments(garbage_percent: &str) -> [&str; 6] {
    [
        "--durability",
        "sync",
        "--segment-size-mib",
        "1",
        "--compact-garbage-percent",
        garbage_percent,
    ]
}

/// A fresh data dir on the real disk (not tmpfs: O_DIRECT behaves differently there).
pub fn temp_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("ringkv-test-")
        .tempdir_in("/tmp")
        .expect("temp dir")
}

impl Node {
    /// Starts `ringkv serve --port 0 --resp-port 0` with `cores` cores and extra
    /// flags (which may override `--resp-port` or pass `--no-resp`).
    pub fn start(cores: u32, extra: &[&str]) -> Node {
        let dir = temp_dir();
        let data_dir = dir.path().join("data");
        let mut node = Node::start_in(&data_dir, cores, extra).expect("node starts");
        node._dir = Some(dir);
        node
    }

    /// Starts a node on an existing data dir; `Err` carries stderr if it fails to start.
    pub fn start_in(
        data_dir: &std::path::Path,
        cores: u32,
        extra: &[&str],
    ) -> Result<Node, String> {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ringkv"));
        cmd.args([
            "serve",
            "--port",
            "0",
            "--cores",
            &cores.to_string(),
            "--data-dir",
        ])
        .arg(data_dir);
        // Never the default RESP port: parallel tests would share it (SO_REUSEPORT).
        if !extra
            .iter()
            .any(|f| *f == "--resp-port" || *f == "--no-resp" || *f == "--config")
        {
            cmd.args(["--resp-port", "0"]);
        }
        cmd.args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| e.to_string())?;
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });
        let (err_tx, err_rx) = mpsc::channel();
        let shared_stderr = Arc::new(Mutex::new(String::new()));
        let sink = shared_stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[node] {line}");
                text.push_str(&line);
                text.push('\n');
                if let Ok(mut all) = sink.lock() {
                    all.push_str(&line);
                    all.push('\n');
                }
            }
            let _ = err_tx.send(text);
        });
        // Wait for the readiness line, never a fixed sleep.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(line) if line.contains("ready") => {
                    let (port, core_ports, resp_port) = parse_ready(&line);
                    return Ok(Node {
                        child: Some(child),
                        port,
                        core_ports,
                        resp_port,
                        data_dir: data_dir.to_path_buf(),
                        stderr: shared_stderr,
                        _dir: None,
                    });
                }
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) if Instant::now() < deadline => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let stderr = err_rx
                            .recv_timeout(Duration::from_secs(5))
                            .unwrap_or_default();
                        return Err(format!("node exited with {status}: {stderr}"));
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    let stderr = err_rx
                        .recv_timeout(Duration::from_secs(5))
                        .unwrap_or_default();
                    return Err(format!("node did not become ready: {stderr}"));
                }
            }
        }
    }

    /// The recovery lines of all `shards` (waits briefly: stderr is read by a thread).
    pub fn recovery_lines(&self, shards: usize) -> Vec<String> {
        let lines = || -> Vec<String> {
            let text = self.stderr.lock().map(|t| t.clone()).unwrap_or_default();
            text.lines()
                .filter(|l| l.contains(" recovered "))
                .map(str::to_owned)
                .collect()
        };
        eventually(Duration::from_secs(5), || lines().len() >= shards);
        lines()
    }

    /// Lines the node printed on stderr so far that contain `needle`.
    pub fn stderr_lines(&self, needle: &str) -> Vec<String> {
        let text = self.stderr.lock().map(|t| t.clone()).unwrap_or_default();
        text.lines()
            .filter(|l| l.contains(needle))
            .map(str::to_owned)
            .collect()
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The RESP port's address (the node must serve RESP).
    pub fn resp_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.resp_port.expect("node serves RESP")))
    }

    pub fn core_addr(&self, core: usize) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.core_ports[core]))
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().expect("running").id() as i32
    }

    /// SIGTERM, then wait for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("running");
        // SAFETY: sending a signal to our own child process.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "node did not stop within 30 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGKILL: the crash.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

fn parse_ready(line: &str) -> (u16, Vec<u16>, Option<u16>) {
    let word_after = |marker: &str| -> &str {
        let at = line
            .find(marker)
            .unwrap_or_else(|| panic!("no `{marker}` in ready line: {line}"));
        line[at + marker.len()..]
            .split_whitespace()
            .next()
            .expect("value after marker")
    };
    let port = word_after("native port ").parse().expect("port");
    let core_ports = word_after("per-core ports ")
        .trim_end_matches(',')
        .split(',')
        .map(|p| p.parse().expect("core port"))
        .collect();
    // `..., resp port N` or `..., resp off`.
    let resp_port = line
        .contains("resp port ")
        .then(|| word_after("resp port ").parse().expect("resp port"));
    (port, core_ports, resp_port)
}

/// Prints a note on the test process's stderr itself, past the test harness's
/// capture (which hides `eprintln!` of a passing test), so a skipped test says so in
/// the `cargo test` output.
pub fn note(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "note: {text}");
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

/// A key owned by `shard` of `shards`, with the given tag.
pub fn key_on_shard(shard: u32, shards: u32, tag: &str) -> Vec<u8> {
    (0..)
        .map(|i| format!("{tag}:{i}").into_bytes())
        .find(|k| ringkv::hash::shard_of(k, shards) == shard)
        .expect("some key lands on every shard")
}

/// Reads one named STATS counter.
pub fn stat(client: &mut ringkv::client::Client, name: &str) -> u64 {
    client
        .stats()
        .expect("stats")
        .into_iter()
        .find(|(k, _)| k == name)
        .unwrap_or_else(|| panic!("no stat {name}"))
        .1
        .parse()
        .expect("numeric stat")
}

/// Reads one STATS counter over a fresh connection.
pub fn node_stat(node: &Node, name: &str) -> u64 {
    let mut c = ringkv::client::Client::connect_unrouted(node.addr(), Duration::from_secs(5))
        .expect("connect for stats");
    stat(&mut c, name)
}

/// A small seeded generator (splitmix64), so a failing run replays from its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The seed from `RINGKV_SEED` if set, else from the clock; printed by the caller.
    pub fn seed_from_env() -> u64 {
        std::env::var("RINGKV_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, n)`; `n` > 0.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// Uniform in `[lo, hi]`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}
