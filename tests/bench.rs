//! `ringkv bench` against a real node (and Redis and memcached when installed): short
//! bounded runs whose JSON must add up. Every node is started from the built binary
//! and waited for by its `ready` line, never by a sleep.

use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_ringkv");

/// Longest any one bench run may take before the test kills it.
const RUN_LIMIT: Duration = Duration::from_secs(30);

/// A child process killed when the test ends, however it ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Node {
    proc: Proc,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Kills the node (SIGKILL) and waits for it to be gone.
    fn kill(&mut self) {
        let _ = self.proc.0.kill();
        let _ = self.proc.0.wait();
    }
}

fn start_node(cores: u32) -> Node {
    start_node_with(cores, &[])
}

/// A node with extra `serve` flags.
fn start_node_with(cores: u32, extra: &[&str]) -> Node {
    let dir = tempfile::Builder::new()
        .prefix("ringkv-bench-test")
        .tempdir_in("/tmp")
        .unwrap();
    let mut child = Command::new(BIN)
        .args(["serve", "--port", "0", "--cores", &cores.to_string()])
        .arg("--data-dir")
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let proc = Proc(child);
    // Read stdout on a thread so the wait for `ready` is bounded.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("node printed no ready line");
        if line.contains("ready") {
            let port = line
                .split("native port ")
                .nth(1)
                .and_then(|rest| rest.split_whitespace().next())
                .expect("ready line names the port");
            return Node {
                proc,
                addr: format!("127.0.0.1:{port}"),
                _dir: dir,
            };
        }
    }
}

/// What one `ringkv bench` run left behind.
struct Run {
    code: i32,
    json: Value,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

/// A `ringkv bench` run in progress, its stderr read line by line on a thread.
struct Bench {
    child: Child,
    args: Vec<String>,
    json_out: tempfile::NamedTempFile,
    started: Instant,
    stdout_reader: std::thread::JoinHandle<String>,
    stderr_lines: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

impl Bench {
    /// Starts `ringkv bench --addr ADDR --json-out FILE ARGS`.
    fn spawn(addr: &str, args: &str) -> Bench {
        let args: Vec<String> = args.split_whitespace().map(String::from).collect();
        let json_out = tempfile::NamedTempFile::new_in("/tmp").unwrap();
        let started = Instant::now();
        let mut child = Command::new(BIN)
            .args(["bench", "--addr", addr, "--json-out"])
            .arg(json_out.path())
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let stdout_reader = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let stderr = child.stderr.take().unwrap();
        let (tx, stderr_lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Bench {
            child,
            args,
            json_out,
            started,
            stdout_reader,
            stderr_lines,
            stderr: Vec::new(),
        }
    }

    /// Waits (bounded) for a stderr line containing `text`.
    fn wait_for_line(&mut self, text: &str) {
        let deadline = self.started + RUN_LIMIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = self
                .stderr_lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no line {text:?} on stderr: {:?}", self.stderr));
            let found = line.contains(text);
            self.stderr.push(line);
            if found {
                return;
            }
        }
    }

    /// True if a stderr line seen so far contains `text`.
    fn has_printed(&mut self, text: &str) -> bool {
        while let Ok(line) = self.stderr_lines.try_recv() {
            self.stderr.push(line);
        }
        self.stderr.iter().any(|l| l.contains(text))
    }

    /// Waits (bounded by [`RUN_LIMIT`]) for the exit; the run must have made a report.
    fn finish(mut self) -> Run {
        let deadline = self.started + RUN_LIMIT;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("ringkv bench {:?} ran past {RUN_LIMIT:?}", self.args);
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let stdout = self.stdout_reader.join().unwrap();
        // The writer is gone, so the reader thread ends and the channel closes.
        self.stderr.extend(self.stderr_lines.iter());
        let stderr = self.stderr.join("\n");
        let code = status.code().unwrap_or(-1);
        let args = &self.args;
        assert!(code == 0 || code == 1, "bench {args:?} failed: {stderr}");
        let text = std::fs::read_to_string(self.json_out.path()).unwrap();
        Run {
            code,
            json: serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("bench {args:?} wrote no report ({e}): {stderr}")),
            stdout,
            stderr,
            elapsed,
        }
    }
}

/// Runs `ringkv bench --no-progress` with `args` plus `--json-out`, bounded by
/// [`RUN_LIMIT`].
fn bench_run(addr: &str, args: &str) -> Run {
    Bench::spawn(addr, &format!("--no-progress {args}")).finish()
}

/// Runs `ringkv bench` with `args` plus `--json-out`; returns the exit code and JSON.
fn bench_status(addr: &str, args: &str) -> (i32, Value) {
    let run = bench_run(addr, args);
    (run.code, run.json)
}

fn bench(addr: &str, args: &str) -> Value {
    let (code, json) = bench_status(addr, args);
    assert_eq!(code, 0, "{json:#}");
    json
}

fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

fn f(v: &Value, path: &str) -> f64 {
    v.pointer(path)
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

/// The invariants every report must hold.
fn check_consistent(j: &Value) {
    let secs = f(j, "/duration_secs");
    assert!(secs > 0.0, "a run has a measured window");
    for op in ["set", "get", "totals"] {
        // Rates are counts over the measured window.
        for (count, rate) in [("ops", "ops_per_sec"), ("hits", "hits_per_sec")] {
            let expected = u(j, &format!("/{op}/{count}")) as f64 / secs;
            let got = f(j, &format!("/{op}/{rate}"));
            assert!(
                (got - expected).abs() <= 1e-9 * expected.max(1.0),
                "{op} {rate} {got} is not {count} / duration_secs ({expected})"
            );
        }
    }
    for failure in ["errors", "timeouts"] {
        assert_eq!(
            u(j, &format!("/set/{failure}")) + u(j, &format!("/get/{failure}")),
            u(j, &format!("/totals/{failure}")),
            "set + get {failure} == total"
        );
    }
    // Every failure counted, measured or in the warm-up, is listed once.
    let listed: u64 = j["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    let counted = u(j, "/totals/errors")
        + u(j, "/totals/timeouts")
        + u(j, "/warmup/errors")
        + u(j, "/warmup/timeouts");
    assert_eq!(listed, counted, "listed errors == counted failures");
    assert_eq!(
        u(j, "/set/ops") + u(j, "/get/ops"),
        u(j, "/totals/ops"),
        "sets + gets == total"
    );
    assert_eq!(
        u(j, "/get/hits") + u(j, "/get/misses"),
        u(j, "/get/ops"),
        "hits + misses == gets"
    );
    assert_eq!(u(j, "/set/hits") + u(j, "/set/misses"), 0);
    for op in ["set", "get", "totals"] {
        if u(j, &format!("/{op}/ops")) == 0 {
            continue;
        }
        let l = |p: &str| f(j, &format!("/{op}/latency_us/{p}"));
        let chain = [
            l("min"),
            l("p50"),
            l("p90"),
            l("p99"),
            l("p99_9"),
            l("p99_99"),
            l("max"),
        ];
        assert!(
            chain.windows(2).all(|w| w[0] <= w[1]),
            "{op} percentiles not monotone: {chain:?}"
        );
        assert!(l("min") > 0.0);
    }
}

fn no_errors(j: &Value) {
    assert_eq!(u(j, "/totals/errors"), 0, "{:#}", j["errors"]);
    assert_eq!(u(j, "/totals/timeouts"), 0, "{:#}", j["errors"]);
    assert_eq!(u(j, "/warmup/errors") + u(j, "/warmup/timeouts"), 0);
}

#[test]
fn closed_loop_counts_add_up_and_verify_is_clean() {
    let node = start_node(2);
    let j = bench(
        &node.addr,
        "--threads 2 --clients 4 --pipeline 4 --requests 200 --ratio 1:3 --key-maximum 2000 \
         --preload --verify --data-size-range 1-300 --warmup 0.2",
    );
    check_consistent(&j);
    no_errors(&j);
    assert_eq!(u(&j, "/shards"), 2);
    assert_eq!(j["routes"].as_array().unwrap().len(), 2);
    // Every client made exactly its 200 measured requests, a quarter of them SETs.
    assert_eq!(u(&j, "/totals/ops"), 2 * 4 * 200);
    assert_eq!(u(&j, "/set/ops"), 2 * 4 * 50);
    // Preloaded: every GET hits.
    assert_eq!(u(&j, "/get/misses"), 0);
    assert!(j["verify"]["clean"].as_bool().unwrap());
    assert_eq!(u(&j, "/verify/read_back/ok"), 2000);
    assert_eq!(u(&j, "/preload/keys"), 2000);
    assert!(u(&j, "/warmup/ops") > 0);
    assert_eq!(j["settings"]["pipeline"], 4);
    // Settings record what ran: a --requests run has no test time, a range no
    // single size.
    assert!(j["settings"]["test_time"].is_null());
    assert!(j["settings"]["data_size"].is_null());
}

#[test]
fn verify_reads_back_what_the_run_set_and_catches_wrong_values() {
    let node = start_node(2);
    let j = bench(
        &node.addr,
        "--clients 3 --requests 100 --ratio 1:1 --key-maximum 500 --verify --seed 5",
    );
    check_consistent(&j);
    no_errors(&j);
    let written = u(&j, "/verify/read_back/keys");
    assert!(written > 50 && written <= 150, "{written}");
    assert!(j["verify"]["clean"].as_bool().unwrap());
    // Read the same keys expecting another seed's values: every hit is wrong.
    let (code, j) = bench_status(
        &node.addr,
        "--clients 1 --requests 200 --ratio 0:1 --key-maximum 500 --verify --seed 6",
    );
    assert_eq!(code, 1, "a failed verify exits with status 1");
    check_consistent(&j);
    // A wrong value is an error of its GET, not a hit: table and JSON agree.
    let wrong = u(&j, "/verify/wrong_values_in_run");
    assert!(wrong > 0);
    assert_eq!(u(&j, "/get/errors"), wrong);
    assert_eq!(u(&j, "/get/hits"), 0);
    // Listed under the table too: the first distinct messages, the rest as
    // "(other errors)".
    let samples = j["errors"].as_array().unwrap();
    assert!(samples
        .iter()
        .any(|e| e["message"].as_str().unwrap().starts_with("wrong value: ")));
    let listed: u64 = samples.iter().map(|e| e["count"].as_u64().unwrap()).sum();
    assert_eq!(listed, wrong);
    assert!(!j["verify"]["clean"].as_bool().unwrap());
}

#[test]
fn open_loop_holds_its_rate() {
    // In memory: a synced SET can take milliseconds on a busy disk, long enough to
    // put a client behind its schedule, and this test is about the generator.
    let node = start_node_with(2, &["--eviction", "lru"]);
    let j = bench(
        &node.addr,
        "--clients 4 --rate 2000 --test-time 1 --warmup 0.2 --key-maximum 1000",
    );
    check_consistent(&j);
    no_errors(&j);
    let offered = f(&j, "/open_loop/offered_ops_per_sec");
    let done = f(&j, "/totals/ops_per_sec");
    assert!((1800.0..=2200.0).contains(&offered), "offered {offered}");
    assert!((1800.0..=2200.0).contains(&done), "done {done}");
    // Every request due was sent, but for a few on a busy machine (at most 5 % of the
    // 2000 due in the window).
    let unsent = u(&j, "/open_loop/unsent");
    assert!(unsent <= 100, "unsent {unsent}");
}

#[test]
fn an_unreachable_rate_ends_on_time_and_counts_what_was_not_sent() {
    // In memory: this is about the generator, not the disk.
    let node = start_node_with(1, &["--eviction", "lru"]);
    // One client at 100 M requests/s: one request due every 10 ns, far beyond what
    // a round trip allows, so nearly the whole schedule is left unsent.
    let rate = 100_000_000u64;
    let run = bench_run(
        &node.addr,
        &format!("--clients 1 --rate {rate} --test-time 0.5 --key-maximum 1000"),
    );
    let j = &run.json;
    assert_eq!(run.code, 0, "{}", run.stderr);
    check_consistent(j);
    no_errors(j);
    // Sending stops at the end; the drain after it is at most a second.
    let duration = f(j, "/duration_secs");
    assert!((0.5..1.6).contains(&duration), "duration {duration}");
    assert!(
        run.elapsed < Duration::from_secs(6),
        "the run took {:?}",
        run.elapsed
    );
    let sent = u(j, "/open_loop/sent");
    let unsent = u(j, "/open_loop/unsent");
    assert!(sent > 0);
    // Without warm-up, every request due before the end was sent or left unsent:
    // 0.5 s of 10 ns intervals.
    assert_eq!(sent + unsent, rate / 2, "sent {sent} unsent {unsent}");
    assert_eq!(sent, u(j, "/totals/ops"));
    let offered = f(j, "/open_loop/offered_ops_per_sec");
    assert!(offered < rate as f64 / 100.0, "offered {offered}");
    assert!((offered - sent as f64 / duration).abs() < 1e-6 * offered.max(1.0));
    assert!(f(j, "/totals/ops_per_sec") <= offered);
    assert_eq!(u(j, "/open_loop/target_ops_per_sec"), rate);
    assert_eq!(f(j, "/settings/test_time"), 0.5);
    assert_eq!(u(j, "/settings/data_size"), 32, "the default, recorded");
    assert!(!j["open_loop"]["kept_up"].as_bool().unwrap());
    // Nearly every send was late: the client falls behind from the first request, and
    // once the lag passes the 1 ms a send may have before it counts late (a few dozen
    // round trips in) every later send is late.
    assert!(
        u(j, "/open_loop/sent_late") * 10 >= sent * 9,
        "late {} of {sent}",
        u(j, "/open_loop/sent_late")
    );
    assert!(
        run.stdout
            .contains(&format!("{unsent} scheduled requests never sent")),
        "{}",
        run.stdout
    );
}

#[test]
fn key_patterns_and_hdr_files() {
    let node = start_node(1);
    for pattern in ["sequential", "gaussian", "zipf"] {
        let j = bench(
            &node.addr,
            &format!("--clients 2 --requests 100 --key-pattern {pattern}"),
        );
        check_consistent(&j);
        no_errors(&j);
        assert_eq!(u(&j, "/totals/ops"), 200);
    }
    let dir = tempfile::tempdir_in("/tmp").unwrap();
    let prefix = dir.path().join("run");
    let prefix = prefix.to_str().unwrap();
    bench(
        &node.addr,
        &format!("--clients 2 --requests 50 --hdr-out {prefix}"),
    );
    for op in ["set", "get", "total"] {
        let text = std::fs::read_to_string(format!("{prefix}-{op}.hgrm")).unwrap();
        assert!(text.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)"));
        assert!(text.contains("#[Max     ="), "{text}");
    }
}

/// A server that accepts connections and never answers; returns its address.
fn silent_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(16).flatten() {
            held.push(stream);
        }
    });
    addr
}

#[test]
fn the_global_timeout_is_the_reply_timeout() {
    let addr = silent_server();
    let run = bench_run(
        &addr,
        "--protocol resp --clients 1 --requests 1 --timeout 1",
    );
    assert_eq!(u(&run.json, "/totals/timeouts"), 1);
    assert_eq!(u(&run.json, "/settings/timeout_ms"), 1_000);
    assert!(run.elapsed >= Duration::from_secs(1), "{:?}", run.elapsed);
    // Both at once would leave it unclear which one counts.
    let out = Command::new(BIN)
        .args([
            "bench",
            "--addr",
            &addr,
            "--protocol",
            "resp",
            "--requests",
            "1",
        ])
        .args(["--timeout", "1", "--timeout-ms", "100"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--timeout-ms or --timeout"), "{stderr}");
}

#[test]
fn a_silent_server_counts_timeouts_and_fails_the_run() {
    let addr = silent_server();
    let run = bench_run(
        &addr,
        "--protocol resp --clients 1 --requests 3 --timeout-ms 150",
    );
    let j = &run.json;
    check_consistent(j);
    assert_eq!(u(j, "/totals/ops"), 0);
    assert_eq!(u(j, "/totals/timeouts"), 3);
    assert_eq!(run.code, 1, "no request succeeded: exit 1");
    assert!(
        run.stderr.contains("no measured request succeeded"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.contains("ALL STATS"), "{}", run.stdout);
}

#[test]
fn the_wrong_protocol_for_the_port_fails_the_run() {
    let node = start_node(1);
    let run = bench_run(
        &node.addr,
        "--protocol memcache --clients 2 --requests 20 --timeout-ms 500",
    );
    let j = &run.json;
    check_consistent(j);
    assert_eq!(u(j, "/totals/ops"), 0);
    assert!(u(j, "/totals/errors") + u(j, "/totals/timeouts") > 0);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(
        run.stderr.contains("no measured request succeeded"),
        "{}",
        run.stderr
    );
}

#[test]
fn a_server_gone_mid_run_exits_0_with_its_errors_shown() {
    let mut node = start_node(1);
    let mut bench = Bench::spawn(
        &node.addr,
        "--clients 2 --test-time 2 --ratio 1:1 --key-maximum 500 --timeout-ms 500",
    );
    bench.wait_for_line("[run");
    node.kill();
    let run = bench.finish();
    let j = &run.json;
    check_consistent(j);
    assert!(u(j, "/totals/ops") > 0);
    let failed = u(j, "/totals/errors") + u(j, "/totals/timeouts");
    assert!(failed > 0, "the kill cost requests");
    // Some requests succeeded: the run stands, its failures are shown.
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("error x"), "{}", run.stdout);
    assert!(
        run.stderr.contains(&format!("{failed} of ")),
        "{}",
        run.stderr
    );
}

#[test]
fn a_server_gone_before_the_read_back_still_gets_its_report() {
    let mut node = start_node(1);
    let mut bench = Bench::spawn(
        &node.addr,
        "--clients 2 --test-time 3 --ratio 1:1 --key-maximum 500 --verify --timeout-ms 500",
    );
    // The first progress line comes a second into the run: every client is
    // connected and has written, and the read-back is two seconds away.
    bench.wait_for_line("[run");
    node.kill();
    assert!(
        !bench.has_printed("reading back"),
        "the node was killed too late to test a failed read-back"
    );
    let run = bench.finish();
    let j = &run.json;
    assert_eq!(run.code, 1, "a failed read-back exits 1: {}", run.stderr);
    check_consistent(j);
    assert!(
        u(j, "/totals/ops") > 0,
        "requests before the kill succeeded"
    );
    assert!(u(j, "/totals/errors") + u(j, "/totals/timeouts") > 0);
    assert!(!j["verify"]["clean"].as_bool().unwrap());
    let failure = j["verify"]["read_back"]["failure"].as_str().unwrap();
    assert!(failure.contains("cannot connect"), "{failure}");
    let keys = u(j, "/verify/read_back/keys");
    assert!(keys > 0);
    assert_eq!(u(j, "/verify/read_back/unanswered"), keys);
    assert!(run.stdout.contains("ALL STATS"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("verify: the read-back stopped: cannot connect"),
        "{}",
        run.stdout
    );
}

#[test]
fn unwritable_outputs_fail_before_the_run() {
    // Nothing listens here: a run that started would fail to connect instead.
    let addr = format!("127.0.0.1:{}", free_port());
    for (flag, path) in [
        ("--json-out", "/nonexistent-ringkv-dir/run.json"),
        ("--hdr-out", "/nonexistent-ringkv-dir/run"),
    ] {
        let out = Command::new(BIN)
            .args(["bench", "--addr", &addr, "--requests", "1", flag, path])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("cannot write {flag} /nonexistent-ringkv-dir/")),
            "{stderr}"
        );
    }
    let out = Command::new(BIN)
        .args(["bench", "--addr", &addr, "--data-size", "8"])
        .args(["--data-size-range", "1-5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot be used together"), "{stderr}");
}

#[test]
fn verify_finds_values_changed_behind_the_run() {
    let node = start_node(1);
    // Preloaded, then only GETs: nothing the run does changes a value, so the
    // read-back must find exactly what the test changes.
    let mut bench = Bench::spawn(
        &node.addr,
        "--clients 1 --rate 100 --test-time 3 --ratio 0:1 --key-maximum 200 --preload --verify",
    );
    bench.wait_for_line("[run");
    let mut client = ringkv::client::Client::connect(node.addr.as_str(), RUN_LIMIT).unwrap();
    client
        .set(b"key:7", b"changed behind the run", None)
        .unwrap();
    assert!(client.delete(b"key:8").unwrap());
    assert!(
        !bench.has_printed("reading back"),
        "the keys were changed too late to test the read-back"
    );
    let run = bench.finish();
    let j = &run.json;
    assert_eq!(run.code, 1, "a failed verify exits 1: {}", run.stderr);
    check_consistent(j);
    assert!(!j["verify"]["clean"].as_bool().unwrap());
    assert_eq!(u(j, "/verify/read_back/keys"), 200);
    assert_eq!(u(j, "/verify/read_back/ok"), 198);
    assert_eq!(u(j, "/verify/read_back/mismatches"), 1);
    assert_eq!(u(j, "/verify/read_back/missing"), 1);
    assert_eq!(u(j, "/verify/read_back/errors"), 0);
    assert_eq!(u(j, "/verify/read_back/unanswered"), 0);
    assert!(j["verify"]["read_back"]["failure"].is_null());
    for expected in [
        "verify: key 7: got 22 bytes \"changed behind the run\", expected 32 bytes",
        "verify: key 8: written but not found",
    ] {
        assert!(run.stdout.contains(expected), "{expected}: {}", run.stdout);
    }
    assert!(run.stderr.contains("verify failed"), "{}", run.stderr);
}

fn installed(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(program))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts a peer server and waits (bounded) until its port answers.
fn start_peer(program: &Path, args: &[String], port: u16) -> Proc {
    let child = Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let proc = Proc(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{program:?} did not open port {port}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    proc
}

#[test]
fn peers_redis_and_memcached_when_installed() {
    let run = |protocol: &str, port: u16| {
        let j = bench(
            &format!("127.0.0.1:{port}"),
            &format!(
                "--protocol {protocol} --clients 4 --pipeline 8 --requests 100 \
                 --key-maximum 1000 --preload --verify"
            ),
        );
        check_consistent(&j);
        no_errors(&j);
        assert_eq!(u(&j, "/totals/ops"), 400);
        assert_eq!(u(&j, "/get/misses"), 0);
        assert!(j["verify"]["clean"].as_bool().unwrap());
    };
    match installed("redis-server") {
        Some(redis) => {
            let port = free_port();
            let args = [
                "--port",
                &port.to_string(),
                "--save",
                "",
                "--appendonly",
                "no",
            ]
            .map(String::from);
            let _redis = start_peer(&redis, &args, port);
            run("resp", port);
        }
        None => println!("note: redis-server not installed, RESP run skipped"),
    }
    match installed("memcached") {
        Some(memcached) => {
            let port = free_port();
            let args = [
                "-t",
                "1",
                "-u",
                "root",
                "-l",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ]
            .map(String::from);
            let _memcached = start_peer(&memcached, &args, port);
            run("memcache", port);
        }
        None => println!("note: memcached not installed, memcache run skipped"),
    }
}
