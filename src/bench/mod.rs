//! `ringkv bench`: a memtier-style load generator for ringkv, Redis and memcached.
//!
//! The map:
//! - [`args`]: the flags and their check into [`args::Settings`].
//! - [`workload`]: PRNG, key patterns, the SET:GET cycle, deterministic values.
//! - [`driver`]: the protocol interface; [`native`], [`resp`], [`memcache`] implement it.
//! - [`target`]: addresses, and ringkv's per-core routing from `TOPOLOGY`.
//! - [`runner`]: the measured run on pinned glommio executors.
//! - [`bulk`]: the unmeasured preload and read-back passes.
//! - [`stats`]: per-thread counters and HDR histograms, merged at the end.
//! - [`report`]: the table, JSON, `.hgrm` files, progress line and CPU use.
//!
//! A run: check the flags, find the target, preload, start the executors (every
//! client connects, then all start together), print progress each second, join,
//! merge, read back (with `--verify`), report. It never measures the preload, the
//! connects or the read-back.

pub mod args;
pub mod bulk;
pub mod driver;
pub mod memcache;
pub mod native;
pub mod report;
pub mod resp;
pub mod runner;
pub mod stats;
pub mod target;
pub mod workload;

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

pub use args::BenchArgs;

use args::{Settings, Stop};
use report::{cpu_secs, progress_line, Report, RunFacts};
use runner::Shared;
use stats::Recorder;
use target::Target;
use workload::KeyBitmap;

/// How often the main thread looks at the run (the progress line is once a second).
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// Runs `ringkv bench` against `addr` and prints the results; `timeout_secs` is the
/// global `--timeout`, when given. Exit status: 0 when the run was made (failed
/// requests among successful ones are counted in the report, like memtier), 1 when
/// `--verify` found a problem or no request succeeded, 2 when the run could not be
/// made. Whatever the status, a run that was made prints and writes its report.
pub fn main(addr: &str, timeout_secs: Option<u64>, args: BenchArgs) -> ExitCode {
    match run(addr, timeout_secs, args) {
        Ok(report) => {
            print!("{}", report.table());
            let _ = std::io::stdout().flush();
            let t = &report.totals;
            let failed = t.errors + t.timeouts;
            match report.failure() {
                Some(why) => {
                    eprintln!("ringkv bench: {why}");
                    ExitCode::from(1)
                }
                None if failed > 0 => {
                    eprintln!(
                        "ringkv bench: {failed} of {} measured requests failed ({} errors, {} timeouts; see the table)",
                        failed + t.ops,
                        t.errors,
                        t.timeouts
                    );
                    ExitCode::SUCCESS
                }
                None => ExitCode::SUCCESS,
            }
        }
        Err(message) => {
            eprintln!("ringkv bench: {message}");
            ExitCode::from(2)
        }
    }
}

/// Runs the benchmark and writes the files asked for; returns the report.
pub fn run(addr: &str, timeout_secs: Option<u64>, args: BenchArgs) -> Result<Report, String> {
    let settings = Settings::new(addr, timeout_secs, args)?;
    if let Some(path) = &settings.args.json_out {
        report::check_writable("--json-out", path)?;
    }
    if let Some(prefix) = &settings.args.hdr_out {
        for path in report::hgrm_paths(prefix) {
            report::check_writable("--hdr-out", Path::new(&path))?;
        }
    }
    let target = Target::discover(addr, settings.args.protocol, settings.timeout)?;
    let shared = Arc::new(Shared::new(settings, target));
    let s = &shared.settings;
    let preload = if s.args.preload {
        eprintln!(
            "ringkv bench: preloading keys {}..={}",
            s.args.key_minimum, s.args.key_maximum
        );
        let p = bulk::preload(s, &shared.target, &shared.values);
        if let Some(why) = &p.failure {
            return Err(format!("preload failed after {} keys: {why}", p.ok));
        }
        if p.errors > 0 {
            return Err(format!(
                "preload failed: {} errors, e.g. {}",
                p.errors,
                p.samples.join("; ")
            ));
        }
        Some(p)
    } else {
        None
    };
    eprintln!(
        "ringkv bench: {} protocol, {} thread(s) x {} clients, pipeline {}, {} route(s)",
        serde_json::to_value(s.args.protocol)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default(),
        s.args.threads,
        s.args.clients,
        s.args.pipeline,
        shared.target.addrs.len()
    );
    let running = runner::start(shared.clone())?;
    let watch = watch(&shared, running.t0);
    let results = running.join()?;
    let mut recorder = Recorder::default();
    let mut last_done: Option<Instant> = None;
    for r in &results {
        recorder.merge(&r.recorder);
        if let Some(done) = r.last_done {
            last_done = Some(last_done.map_or(done, |d| d.max(done)));
        }
    }
    let measure_start = watch.t0 + s.warmup;
    let duration = match s.stop {
        // No batch is sent after the end; replies in flight may come in the drain
        // after it, and the window runs to the last of them.
        Stop::Time(d) => {
            let end = measure_start + d;
            last_done
                .map_or(end, |done| done.max(end))
                .saturating_duration_since(measure_start)
        }
        Stop::Requests(_) => last_done
            .map(|d| d.saturating_duration_since(measure_start))
            .unwrap_or_default(),
    };
    let read_back = if s.args.verify {
        // A failed read-back is a verify failure in the report, not instead of it.
        Some(read_back(s, &shared, preload.is_some(), &recorder))
    } else {
        None
    };
    let facts = RunFacts {
        addr: addr.to_string(),
        args: s.args.clone(),
        routes: shared.target.addrs.iter().map(|a| a.to_string()).collect(),
        shards: shared.target.shards,
        duration,
        started_unix_secs: watch.started_unix_secs,
        measured_requests: shared
            .progress
            .iter()
            .map(|p| p.measured.load(Ordering::Relaxed))
            .sum(),
        preload,
        read_back,
        client_cpu_percent: watch.client_cpu_percent,
        server_cpu_percent: watch.server_cpu_percent,
    };
    let report = Report::new(facts, &recorder);
    if let Some(path) = &s.args.json_out {
        report::write_json(path, &report)?;
    }
    if let Some(prefix) = &s.args.hdr_out {
        report::write_hgrm_files(prefix, &recorder)?;
    }
    Ok(report)
}

/// Reads back what the run wrote: the whole range after a preload, else the keys the
/// clients set.
fn read_back(
    s: &Settings,
    shared: &Shared,
    preloaded: bool,
    recorder: &Recorder,
) -> bulk::BulkReport {
    let empty = KeyBitmap::new(s.args.key_minimum, s.args.key_maximum);
    let written = recorder.written.as_ref().unwrap_or(&empty);
    let total = if preloaded {
        s.args.key_maximum - s.args.key_minimum + 1
    } else {
        written.count()
    };
    eprintln!("ringkv bench: reading back {total} keys");
    if preloaded {
        let mut keys = s.args.key_minimum..=s.args.key_maximum;
        bulk::verify(s, &shared.target, &shared.values, &mut keys, total)
    } else {
        bulk::verify(
            s,
            &shared.target,
            &shared.values,
            &mut written.keys(),
            total,
        )
    }
}

/// What the main thread saw while the executors ran.
struct Watch {
    t0: Instant,
    started_unix_secs: u64,
    client_cpu_percent: Option<f64>,
    server_cpu_percent: Option<f64>,
}

/// Prints the progress line each second until every thread is done, and samples CPU
/// use at the start and end of the measured window.
fn watch(shared: &Shared, t0: Instant) -> Watch {
    let s = &shared.settings;
    let threads = s.args.threads as usize;
    let measure_start = t0 + s.warmup;
    let measure_end = match s.stop {
        Stop::Time(d) => Some(measure_start + d),
        Stop::Requests(_) => None,
    };
    let show = !s.args.no_progress;
    let terminal = std::io::stderr().is_terminal();
    let mut started_unix_secs = 0;
    let mut cpu_start: Option<(Instant, Option<f64>, Option<f64>)> = None;
    let mut cpu_end: Option<(Instant, Option<f64>, Option<f64>)> = None;
    let sample = || {
        (
            Instant::now(),
            cpu_secs(None),
            s.args.server_pid.and_then(|p| cpu_secs(Some(p))),
        )
    };
    let mut next_tick = t0 + Duration::from_secs(1);
    let (mut last_ops, mut last_ns, mut last_at) = (0u64, 0u64, t0);
    loop {
        let done = shared.finished.load(Ordering::SeqCst) == threads;
        let now = Instant::now();
        if cpu_start.is_none() && now >= measure_start {
            started_unix_secs = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            cpu_start = Some(sample());
        }
        if cpu_end.is_none() && (measure_end.is_some_and(|e| now >= e) || done) {
            cpu_end = Some(sample());
        }
        if show && (now >= next_tick || done) {
            let ops: u64 = shared
                .progress
                .iter()
                .map(|p| p.ops.load(Ordering::Relaxed))
                .sum();
            let ns: u64 = shared
                .progress
                .iter()
                .map(|p| p.latency_ns.load(Ordering::Relaxed))
                .sum();
            let failures: u64 = shared
                .progress
                .iter()
                .map(|p| p.failures.load(Ordering::Relaxed))
                .sum();
            let measured: u64 = shared
                .progress
                .iter()
                .map(|p| p.measured.load(Ordering::Relaxed))
                .sum();
            let secs = now.duration_since(last_at).as_secs_f64().max(1e-9);
            let d_ops = ops - last_ops;
            let avg_us = if d_ops > 0 {
                (ns - last_ns) as f64 / d_ops as f64 / 1e3
            } else {
                0.0
            };
            // The line describes the interval since the last one.
            let (phase, fraction) = if last_at < measure_start {
                ("warmup", None)
            } else {
                let fraction = match s.stop {
                    Stop::Time(d) => {
                        now.duration_since(measure_start).as_secs_f64() / d.as_secs_f64()
                    }
                    Stop::Requests(n) => measured as f64 / (n as f64 * s.clients_total() as f64),
                };
                ("run", Some(fraction))
            };
            let line = progress_line(
                phase,
                now.duration_since(t0).as_secs_f64(),
                fraction,
                d_ops as f64 / secs,
                avg_us,
                failures,
            );
            if terminal {
                eprint!("\r{line}");
            } else {
                eprintln!("{line}");
            }
            (last_ops, last_ns, last_at) = (ops, ns, now);
            next_tick += Duration::from_secs(1);
        }
        if done {
            break;
        }
        std::thread::sleep(POLL_INTERVAL);
    }
    if show && terminal {
        eprintln!();
    }
    let percent = |a: Option<f64>, b: Option<f64>, secs: f64| match (a, b) {
        (Some(a), Some(b)) if secs > 0.0 => Some((b - a) / secs * 100.0),
        _ => None,
    };
    let (client_cpu_percent, server_cpu_percent) = match (cpu_start, cpu_end) {
        (Some((t_a, c_a, s_a)), Some((t_b, c_b, s_b))) => {
            let secs = t_b.duration_since(t_a).as_secs_f64();
            (percent(c_a, c_b, secs), percent(s_a, s_b, secs))
        }
        _ => (None, None),
    };
    Watch {
        t0,
        started_unix_secs,
        client_cpu_percent,
        server_cpu_percent,
    }
}
