//! Turning counts into figures: the final table, the JSON document, the HdrHistogram
//! percentile files, the live progress line, and CPU use read from `/proc`.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::args::BenchArgs;
use super::bulk::BulkReport;
use super::runner::SEND_LATE_AFTER;
use super::stats::{OpStats, Recorder, WarmupStats, LATENCY_SIGFIG};

/// Latency figures of one operation type, in microseconds.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Latency {
    /// Mean.
    pub avg: f64,
    /// Smallest.
    pub min: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p99_9: f64,
    /// 99.99th percentile.
    pub p99_99: f64,
    /// Largest.
    pub max: f64,
}

/// Figures of one operation type (or all) over the measured window.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OpReport {
    /// Requests answered without error.
    pub ops: u64,
    /// `ops` per second.
    pub ops_per_sec: f64,
    /// GET hits (0 for SET).
    pub hits: u64,
    /// GET misses (0 for SET).
    pub misses: u64,
    /// Hits per second.
    pub hits_per_sec: f64,
    /// Misses per second.
    pub misses_per_sec: f64,
    /// Error replies, wrong values (with `--verify`) and requests lost with a
    /// connection.
    pub errors: u64,
    /// Requests without a reply within the timeout.
    pub timeouts: u64,
    /// Latency of the answered requests, microseconds.
    pub latency_us: Latency,
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

impl OpReport {
    fn new(stats: &OpStats, secs: f64) -> OpReport {
        let h = &stats.latency;
        let per_sec = |n: u64| if secs > 0.0 { n as f64 / secs } else { 0.0 };
        let latency_us = if h.is_empty() {
            Latency::default()
        } else {
            Latency {
                avg: h.mean() / 1_000.0,
                min: us(h.min()),
                p50: us(h.value_at_quantile(0.5)),
                p90: us(h.value_at_quantile(0.9)),
                p99: us(h.value_at_quantile(0.99)),
                p99_9: us(h.value_at_quantile(0.999)),
                p99_99: us(h.value_at_quantile(0.9999)),
                max: us(h.max()),
            }
        };
        OpReport {
            ops: stats.ops,
            ops_per_sec: per_sec(stats.ops),
            hits: stats.hits,
            misses: stats.misses,
            hits_per_sec: per_sec(stats.hits),
            misses_per_sec: per_sec(stats.misses),
            errors: stats.errors,
            timeouts: stats.timeouts,
            latency_us,
        }
    }
}

/// The open-loop target and what was achieved. A generator that cannot keep up
/// shows here: `offered_ops_per_sec` below the target, requests `unsent` or
/// `sent_late`.
#[derive(Clone, Debug, Serialize)]
pub struct OpenLoop {
    /// `--rate`.
    pub target_ops_per_sec: u64,
    /// Requests actually sent per second in the measured window (`sent` over
    /// `duration_secs`).
    pub offered_ops_per_sec: f64,
    /// Requests sent in the measured window.
    pub sent: u64,
    /// Of those, sent more than `late_after_us` after their intended send time.
    pub sent_late: u64,
    /// Requests the schedule had due in the measured window that were never sent
    /// (`warmup.unsent` counts those of the warm-up).
    pub unsent: u64,
    /// How late a send may be before it counts as late, microseconds.
    pub late_after_us: u64,
    /// True when every scheduled request was sent, none of them late.
    pub kept_up: bool,
}

/// The `--verify` results.
#[derive(Clone, Debug, Default, Serialize)]
pub struct VerifyReport {
    /// GET hits during the run whose value was not the key's.
    pub wrong_values_in_run: u64,
    /// The read-back pass after the run.
    pub read_back: BulkReport,
    /// True when both are clean.
    pub clean: bool,
}

/// One error message and how often it was seen.
#[derive(Clone, Debug, Serialize)]
pub struct ErrorSample {
    /// The message.
    pub message: String,
    /// How often.
    pub count: u64,
}

/// Everything a run measured, with its full settings: the `--json-out` document.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    /// ringkv version of the generator.
    pub generator: String,
    /// The command line.
    pub command_line: Vec<String>,
    /// Unix time (seconds) the measured window began.
    pub started_unix_secs: u64,
    /// The target address.
    pub addr: String,
    /// Every flag.
    pub settings: BenchArgs,
    /// The addresses requests went to.
    pub routes: Vec<String>,
    /// The node's shard count (ringkv only).
    pub shards: Option<u32>,
    /// Length of the measured window in seconds.
    pub duration_secs: f64,
    /// SET figures.
    pub set: OpReport,
    /// GET figures.
    pub get: OpReport,
    /// Both together.
    pub totals: OpReport,
    /// Requests during the warm-up (not in the figures).
    pub warmup: WarmupStats,
    /// Open-loop target, when `--rate` was given.
    pub open_loop: Option<OpenLoop>,
    /// The preload pass.
    pub preload: Option<BulkReport>,
    /// The verify results.
    pub verify: Option<VerifyReport>,
    /// The generator's CPU use over the window, percent of one CPU.
    pub client_cpu_percent: Option<f64>,
    /// `--server-pid`'s CPU use over the window, percent of one CPU.
    pub server_cpu_percent: Option<f64>,
    /// The error messages seen.
    pub errors: Vec<ErrorSample>,
}

/// What [`Report::new`] needs besides the counts.
pub struct RunFacts {
    /// The target address.
    pub addr: String,
    /// Every flag.
    pub args: BenchArgs,
    /// Route addresses.
    pub routes: Vec<String>,
    /// Shard count.
    pub shards: Option<u32>,
    /// Measured window.
    pub duration: Duration,
    /// Unix time of the window start.
    pub started_unix_secs: u64,
    /// Requests sent in the window.
    pub measured_requests: u64,
    /// Preload pass.
    pub preload: Option<BulkReport>,
    /// Read-back pass.
    pub read_back: Option<BulkReport>,
    /// Client CPU %.
    pub client_cpu_percent: Option<f64>,
    /// Server CPU %.
    pub server_cpu_percent: Option<f64>,
}

impl Report {
    /// Builds the report from the merged counts.
    pub fn new(facts: RunFacts, recorder: &Recorder) -> Report {
        let secs = facts.duration.as_secs_f64();
        let mut all = recorder.set.clone();
        all.merge(&recorder.get);
        let verify = facts.read_back.map(|read_back| VerifyReport {
            wrong_values_in_run: recorder.wrong_values,
            clean: recorder.wrong_values == 0 && read_back.clean(),
            read_back,
        });
        Report {
            generator: format!("ringkv bench {}", env!("CARGO_PKG_VERSION")),
            command_line: std::env::args().collect(),
            started_unix_secs: facts.started_unix_secs,
            addr: facts.addr,
            routes: facts.routes,
            shards: facts.shards,
            duration_secs: secs,
            set: OpReport::new(&recorder.set, secs),
            get: OpReport::new(&recorder.get, secs),
            totals: OpReport::new(&all, secs),
            warmup: recorder.warmup,
            open_loop: facts.args.rate.map(|rate| OpenLoop {
                target_ops_per_sec: rate,
                offered_ops_per_sec: if secs > 0.0 {
                    facts.measured_requests as f64 / secs
                } else {
                    0.0
                },
                sent: facts.measured_requests,
                sent_late: recorder.sent_late,
                unsent: recorder.unsent,
                late_after_us: u64::try_from(SEND_LATE_AFTER.as_micros()).unwrap_or(u64::MAX),
                kept_up: recorder.sent_late == 0 && recorder.unsent == 0,
            }),
            settings: facts.args,
            preload: facts.preload,
            verify,
            client_cpu_percent: facts.client_cpu_percent,
            server_cpu_percent: facts.server_cpu_percent,
            errors: recorder
                .error_samples
                .iter()
                .map(|(message, &count)| ErrorSample {
                    message: message.clone(),
                    count,
                })
                .collect(),
        }
    }

    /// Why the run counts as failed (exit status 1), if it does: `--verify` found a
    /// problem, or requests failed and none succeeded (the wrong protocol for the
    /// port, a dead server).
    pub fn failure(&self) -> Option<String> {
        let mut why = Vec::new();
        let (t, w) = (&self.totals, &self.warmup);
        let failed = t.errors + t.timeouts + w.errors + w.timeouts;
        if t.ops == 0 && failed > 0 {
            let example = self
                .errors
                .first()
                .map(|e| format!(", e.g. {}", e.message))
                .unwrap_or_default();
            why.push(format!(
                "no measured request succeeded: {} errors, {} timeouts (warm-up included){example}",
                t.errors + w.errors,
                t.timeouts + w.timeouts
            ));
        }
        if let Some(v) = self.verify.as_ref().filter(|v| !v.clean) {
            let b = &v.read_back;
            let mut text = format!(
                "verify failed: {} wrong values during the run; read back {} mismatched, {} missing, {} errors, {} unanswered",
                v.wrong_values_in_run, b.mismatches, b.missing, b.errors, b.unanswered
            );
            if let Some(failure) = &b.failure {
                let _ = write!(text, " (the read-back stopped: {failure})");
            }
            why.push(text);
        }
        (!why.is_empty()).then(|| why.join("; "))
    }

    /// The final table, memtier-style.
    pub fn table(&self) -> String {
        let mut s = String::new();
        let rule = "=".repeat(119);
        let _ = writeln!(
            s,
            "ALL STATS ({} s measured, {} {}x{} clients, pipeline {})",
            round2(self.duration_secs),
            self.addr,
            self.settings.threads,
            self.settings.clients,
            self.settings.pipeline
        );
        let _ = writeln!(s, "{rule}");
        let _ = writeln!(
            s,
            "{:<7} {:>12} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10} {:>8} {:>9}",
            "Type",
            "Ops/sec",
            "Hits/sec",
            "Misses/sec",
            "Avg(us)",
            "p50(us)",
            "p99(us)",
            "p99.9(us)",
            "Max(us)",
            "Errors",
            "Timeouts"
        );
        let _ = writeln!(s, "{}", "-".repeat(119));
        for (name, r, has_hits) in [
            ("Sets", &self.set, false),
            ("Gets", &self.get, true),
            ("Totals", &self.totals, true),
        ] {
            let hits = |v: f64| {
                if has_hits {
                    format!("{v:.2}")
                } else {
                    "---".to_string()
                }
            };
            let l = &r.latency_us;
            let _ = writeln!(
                s,
                "{:<7} {:>12.2} {:>12} {:>12} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>8} {:>9}",
                name,
                r.ops_per_sec,
                hits(r.hits_per_sec),
                hits(r.misses_per_sec),
                l.avg,
                l.p50,
                l.p99,
                l.p99_9,
                l.max,
                r.errors,
                r.timeouts
            );
        }
        let w = &self.warmup;
        if w.ops + w.errors + w.timeouts + w.unsent > 0 {
            let _ = write!(
                s,
                "warm-up (not above): {} ops, {} errors, {} timeouts",
                w.ops, w.errors, w.timeouts
            );
            if w.unsent > 0 {
                let _ = write!(s, ", {} scheduled requests never sent", w.unsent);
            }
            let _ = writeln!(s);
        }
        if let Some(o) = &self.open_loop {
            let _ = writeln!(
                s,
                "open loop: target {} ops/s, sent {:.0} ops/s ({} requests); latency from intended send time",
                o.target_ops_per_sec, o.offered_ops_per_sec, o.sent
            );
            if !o.kept_up {
                let _ = writeln!(
                    s,
                    "open loop BEHIND: {} scheduled requests never sent, {} sent more than {} us late \
                     (the server or the generator could not keep up)",
                    o.unsent, o.sent_late, o.late_after_us
                );
            }
        }
        if let Some(p) = &self.preload {
            let _ = writeln!(
                s,
                "preload: {} keys in {:.2} s, {} errors",
                p.keys, p.secs, p.errors
            );
        }
        if let Some(v) = &self.verify {
            let b = &v.read_back;
            let _ = writeln!(
                s,
                "verify: {} ({} wrong values during the run; read back {} keys: {} ok, {} mismatched, {} missing, {} errors, {} unanswered)",
                if v.clean { "clean" } else { "FAILED" },
                v.wrong_values_in_run,
                b.keys,
                b.ok,
                b.mismatches,
                b.missing,
                b.errors,
                b.unanswered
            );
            if let Some(why) = &b.failure {
                let _ = writeln!(s, "verify: the read-back stopped: {why}");
            }
            for sample in &b.samples {
                let _ = writeln!(s, "verify: {sample}");
            }
        }
        match (self.client_cpu_percent, self.server_cpu_percent) {
            (Some(c), Some(sv)) => {
                let _ = writeln!(s, "cpu: client {c:.1} %, server {sv:.1} % (of one CPU)");
            }
            (Some(c), None) => {
                let _ = writeln!(s, "cpu: client {c:.1} % (of one CPU)");
            }
            _ => {}
        }
        for e in &self.errors {
            let _ = writeln!(s, "error x{}: {}", e.count, e.message);
        }
        s
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Writes `h` (nanoseconds) as an HdrHistogram percentile distribution in
/// microseconds, the text `HistogramLogProcessor` and the online plotter read
/// (Java's `outputPercentileDistribution` with 5 ticks per half distance).
pub fn write_hgrm(h: &Histogram<u64>, out: &mut dyn std::io::Write) -> std::io::Result<()> {
    let scale = 1_000.0;
    let digits = usize::from(LATENCY_SIGFIG);
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    let mut total = 0u64;
    if !h.is_empty() {
        for v in h.iter_quantiles(5) {
            total += v.count_since_last_iteration();
            let value = v.value_iterated_to() as f64 / scale;
            let q = v.quantile_iterated_to();
            if q < 1.0 {
                writeln!(
                    out,
                    "{value:>12.digits$} {q:>2.12} {total:>10} {:>14.2}",
                    1.0 / (1.0 - q)
                )?;
            } else {
                writeln!(out, "{value:>12.digits$} {q:>2.12} {total:>10}")?;
            }
        }
    }
    let (mean, sd, max) = if h.is_empty() {
        (0.0, 0.0, 0.0)
    } else {
        (h.mean() / scale, h.stdev() / scale, h.max() as f64 / scale)
    };
    // Sub-buckets: the power of two above 2 * 10^sigfig (HdrHistogram's layout).
    let sub_buckets = (2.0 * 10f64.powi(i32::from(LATENCY_SIGFIG)))
        .log2()
        .ceil()
        .exp2() as u64;
    writeln!(
        out,
        "#[Mean    = {mean:>12.digits$}, StdDeviation   = {sd:>12.digits$}]"
    )?;
    writeln!(
        out,
        "#[Max     = {max:>12.digits$}, Total count    = {:>12}]",
        h.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        sub_buckets
    )?;
    Ok(())
}

/// Writes `PREFIX-set.hgrm`, `PREFIX-get.hgrm`, `PREFIX-total.hgrm`.
pub fn write_hgrm_files(prefix: &str, recorder: &Recorder) -> Result<(), String> {
    let mut all = recorder.set.latency.clone();
    let _ = all.add(&recorder.get.latency);
    let [set, get, total] = hgrm_paths(prefix);
    for (path, h) in [
        (set, &recorder.set.latency),
        (get, &recorder.get.latency),
        (total, &all),
    ] {
        let mut file =
            std::fs::File::create(&path).map_err(|e| format!("cannot create {path}: {e}"))?;
        write_hgrm(h, &mut file).map_err(|e| format!("cannot write {path}: {e}"))?;
    }
    Ok(())
}

/// The files `--hdr-out PREFIX` writes: SET, GET and both.
pub fn hgrm_paths(prefix: &str) -> [String; 3] {
    ["set", "get", "total"].map(|name| format!("{prefix}-{name}.hgrm"))
}

/// Fails when `path` cannot be written, before any load is run: a run whose report
/// cannot be saved would be wasted. An existing file is opened without truncating
/// it; a missing one is created and removed again.
pub fn check_writable(flag: &str, path: &Path) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot write {flag} {}: {e}", path.display());
    match std::fs::OpenOptions::new().write(true).open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(fail)?;
            std::fs::remove_file(path).map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

/// Writes the JSON document.
pub fn write_json(path: &Path, report: &Report) -> Result<(), String> {
    let text = serde_json::to_string_pretty(report)
        .map_err(|e| format!("cannot encode the report: {e}"))?;
    let mut file = std::fs::File::create(path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|_| file.write_all(b"\n"))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// CPU time (user + system) of a process so far, in seconds, from `/proc/PID/stat`.
pub fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let path = match pid {
        Some(pid) => format!("/proc/{pid}/stat"),
        None => "/proc/self/stat".to_string(),
    };
    let stat = std::fs::read_to_string(path).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// The live progress line: elapsed time, a bar when the run is bounded, rate and mean
/// latency of the last interval.
pub fn progress_line(
    phase: &str,
    elapsed: f64,
    fraction: Option<f64>,
    ops_per_sec: f64,
    avg_us: f64,
    failures: u64,
) -> String {
    let bar = match fraction {
        Some(f) => {
            let width = 20;
            let filled = ((f.clamp(0.0, 1.0)) * width as f64).round() as usize;
            format!(
                " [{}{}] {:>3.0}%",
                "#".repeat(filled),
                ".".repeat(width - filled),
                f.clamp(0.0, 1.0) * 100.0
            )
        }
        None => String::new(),
    };
    format!(
        "[{phase:<6} {elapsed:>6.1}s]{bar} {ops_per_sec:>11.0} ops/s, avg {avg_us:>9.1} us, {failures} errors+timeouts"
    )
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::bench::stats::new_histogram;

    #[test]
    fn hgrm_has_the_standard_shape() {
        let mut h = new_histogram();
        for v in 1..=1000u64 {
            h.record(v * 1_000).unwrap();
        }
        let mut out = Vec::new();
        write_hgrm(&h, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap().split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        assert_eq!(lines.next(), Some(""));
        let rows: Vec<Vec<f64>> = text
            .lines()
            .skip(2)
            .take_while(|l| !l.starts_with('#'))
            .map(|l| l.split_whitespace().map(|x| x.parse().unwrap()).collect())
            .collect();
        // Values and percentiles rise; the last row is the max at percentile 1.
        assert!(rows
            .windows(2)
            .all(|w| w[0][0] <= w[1][0] && w[0][1] <= w[1][1]));
        let last = rows.last().unwrap();
        assert_eq!((last[1], last[2]), (1.0, 1000.0));
        assert!((last[0] - 1000.0).abs() < 1.0, "{last:?}");
        assert!(text.contains("#[Max     =     1000.447, Total count    =         1000]"));
        assert!(text.contains("SubBuckets     =         2048]"));
    }

    #[test]
    fn unwritable_outputs_are_found_before_the_run() {
        let dir = tempfile::tempdir_in("/tmp").unwrap();
        let fresh = dir.path().join("run.json");
        check_writable("--json-out", &fresh).unwrap();
        assert!(!fresh.exists(), "the check leaves no file behind");
        std::fs::write(&fresh, "kept").unwrap();
        check_writable("--json-out", &fresh).unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "kept");
        let missing_dir = dir.path().join("no-such-dir").join("run.json");
        let e = check_writable("--json-out", &missing_dir).unwrap_err();
        assert!(e.starts_with("cannot write --json-out"), "{e}");
        assert!(
            check_writable("--json-out", dir.path()).is_err(),
            "a directory"
        );
    }

    #[test]
    fn self_cpu_is_readable() {
        let a = cpu_secs(None).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_secs(None).unwrap() >= a);
    }

    #[test]
    fn progress_line_shows_a_bar_when_bounded() {
        let l = progress_line("run", 2.0, Some(0.5), 1234.0, 56.7, 0);
        assert!(l.contains("[##########..........]  50%"), "{l}");
        assert!(!progress_line("run", 2.0, None, 1.0, 1.0, 0).contains('#'));
    }
}
