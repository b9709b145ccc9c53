//! The `ringkv bench` flags, and their check into the [`Settings`] a run uses.
//!
//! The target address is the CLI's global `--addr` (shared with the client
//! subcommands), handed to [`Settings::new`] beside these flags, and so is the global
//! `--timeout` (seconds): given to bench, it is the reply timeout, like
//! `--timeout-ms` in milliseconds; giving both is refused.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::driver::Protocol;
use super::workload::{KeyPatternKind, KEY_PREFIX_SIZE_MAX};
use crate::constants::VALUE_SIZE_MAX;

/// Most clients per thread.
pub const CLIENTS_PER_THREAD_MAX: u32 = 10_000;

/// Most executor threads.
pub const THREADS_MAX: u32 = 256;

/// Most requests a client may have in flight on one connection.
pub const PIPELINE_MAX: u32 = 1024;

/// Value size without `--data-size` or `--data-size-range`, bytes.
pub const DATA_SIZE_DEFAULT: u32 = 32;

/// Seconds measured without `--test-time` or `--requests`.
pub const TEST_TIME_SECS_DEFAULT: f64 = 10.0;

/// Reply timeout without `--timeout-ms` or `--timeout`, milliseconds.
pub const TIMEOUT_MS_DEFAULT: u64 = 2_000;

/// Longest reply timeout, milliseconds (an hour).
pub const TIMEOUT_MS_MAX: u64 = 3_600_000;

/// Highest `--rate`, requests per second: far beyond what one machine can send,
/// and low enough that a client's batch interval is at least a nanosecond.
pub const RATE_MAX: u64 = 1_000_000_000;

/// Most keys `--verify` tracks (one bit each per thread).
pub const VERIFY_KEYS_MAX: u64 = 1 << 32;

/// Flags of `ringkv bench`: a memtier-style load generator for ringkv (native
/// protocol), Redis (RESP) and memcached (text protocol).
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct BenchArgs {
    /// Protocol to speak: ringkv (native, each key sent to its core's port), resp or
    /// memcache.
    #[arg(long, value_enum, default_value_t = Protocol::Ringkv)]
    pub protocol: Protocol,
    /// Executor threads, each with its own clients.
    #[arg(long, default_value_t = 1)]
    pub threads: u32,
    /// CPUs to pin the threads to, round robin (`1` or `0,1`); default: not pinned.
    #[arg(long, value_delimiter = ',')]
    pub cpus: Vec<usize>,
    /// Clients per thread. A native client has one connection per shard.
    #[arg(long, default_value_t = 50)]
    pub clients: u32,
    /// Requests a client writes at once; it writes the next batch when all are
    /// answered (redis-benchmark's -P).
    #[arg(long, default_value_t = 1)]
    pub pipeline: u32,
    /// SET:GET ratio, as an exact cycle (`1:10`: one SET, then ten GETs).
    #[arg(long, default_value = "1:10")]
    pub ratio: String,
    /// Value size in bytes (default 32).
    #[arg(long)]
    pub data_size: Option<u32>,
    /// Value sizes MIN-MAX in bytes, each key's size fixed by the key and the seed
    /// (instead of --data-size).
    #[arg(long)]
    pub data_size_range: Option<String>,
    /// Key prefix; keys are the prefix followed by the key number in decimal.
    #[arg(long, default_value = "key:")]
    pub key_prefix: String,
    /// Smallest key number.
    #[arg(long, default_value_t = 1)]
    pub key_minimum: u64,
    /// Largest key number.
    #[arg(long, default_value_t = 100_000)]
    pub key_maximum: u64,
    /// How keys are picked.
    #[arg(long, value_enum, default_value_t = KeyPatternKind::Random)]
    pub key_pattern: KeyPatternKind,
    /// Exponent of the zipf key pattern (> 0).
    #[arg(long, default_value_t = 0.99)]
    pub key_zipf_exp: f64,
    /// Seconds to measure (default 10 unless --requests). Nothing is sent after the
    /// end; replies still in flight get at most one more second, then count as
    /// timeouts.
    #[arg(long, conflicts_with = "requests")]
    pub test_time: Option<f64>,
    /// Requests per client to measure, instead of a time.
    #[arg(long)]
    pub requests: Option<u64>,
    /// Seconds of load before measuring starts (not recorded).
    #[arg(long, default_value_t = 0.0)]
    pub warmup: f64,
    /// Write every key of the range first (pipelined, not measured), so GETs hit.
    #[arg(long)]
    pub preload: bool,
    /// Seed of key choice and values.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Open loop: this many requests per second in total, each latency measured from
    /// its intended send time (no coordinated omission). A rate the server or the
    /// generator cannot keep is reported as such: the rate actually sent, and the
    /// scheduled requests sent late or never sent.
    #[arg(long)]
    pub rate: Option<u64>,
    /// Write every figure and the settings as JSON to this file.
    #[arg(long)]
    pub json_out: Option<PathBuf>,
    /// Write HdrHistogram percentile distributions to PREFIX-set.hgrm, PREFIX-get.hgrm
    /// and PREFIX-total.hgrm (values in microseconds).
    #[arg(long)]
    pub hdr_out: Option<String>,
    /// Check every GET hit against the value the key must have, then read back every
    /// key written (and preloaded) and report mismatches. Exit status 1 if any.
    #[arg(long)]
    pub verify: bool,
    /// Milliseconds to wait for an answer (default 2000); a request without one
    /// counts as a timeout. The global --timeout sets the same in seconds.
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// A server process whose CPU use over the measured window is reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// No live progress line.
    #[arg(long)]
    pub no_progress: bool,
}

/// When a client stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Stop {
    /// After measuring for this long.
    Time(Duration),
    /// After this many measured requests.
    Requests(u64),
}

/// The checked settings of one run.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The target, as given.
    pub addr: String,
    /// The flags as given.
    pub args: BenchArgs,
    /// SETs per cycle.
    pub sets: u32,
    /// GETs per cycle.
    pub gets: u32,
    /// Smallest value size.
    pub size_min: u32,
    /// Largest value size.
    pub size_max: u32,
    /// When clients stop.
    pub stop: Stop,
    /// Load before measuring.
    pub warmup: Duration,
    /// Reply timeout.
    pub timeout: Duration,
    /// Open-loop interval between two batches of one client.
    pub batch_interval: Option<Duration>,
}

fn positive_secs(name: &str, secs: f64) -> Result<Duration, String> {
    if !secs.is_finite() || !(0.0..=1e6).contains(&secs) {
        return Err(format!("--{name} must be between 0 and 1e6 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

fn parse_ratio(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--ratio takes SET:GET, like 1:10 (got {text:?})");
    let (s, g) = text.split_once(':').ok_or_else(bad)?;
    let s: u32 = s.trim().parse().map_err(|_| bad())?;
    let g: u32 = g.trim().parse().map_err(|_| bad())?;
    if s + g == 0 || s > 1_000_000 || g > 1_000_000 {
        return Err(bad());
    }
    Ok((s, g))
}

fn parse_range(text: &str) -> Result<(u32, u32), String> {
    let bad = || format!("--data-size-range takes MIN-MAX, like 32-1024 (got {text:?})");
    let (a, b) = text.split_once('-').ok_or_else(bad)?;
    let a: u32 = a.trim().parse().map_err(|_| bad())?;
    let b: u32 = b.trim().parse().map_err(|_| bad())?;
    if a > b {
        return Err(bad());
    }
    Ok((a, b))
}

impl Settings {
    /// Checks the flags; the message says which flag to change. `timeout_secs` is
    /// the global `--timeout`, when given. The settings' `args` hold the effective
    /// values of what was left to a default, so a report records what ran.
    pub fn new(
        addr: &str,
        timeout_secs: Option<u64>,
        mut args: BenchArgs,
    ) -> Result<Settings, String> {
        let check = |ok: bool, message: &str| if ok { Ok(()) } else { Err(message.to_string()) };
        check(
            (1..=THREADS_MAX).contains(&args.threads),
            &format!("--threads must be 1..={THREADS_MAX}"),
        )?;
        check(
            (1..=CLIENTS_PER_THREAD_MAX).contains(&args.clients),
            &format!("--clients must be 1..={CLIENTS_PER_THREAD_MAX}"),
        )?;
        check(
            (1..=PIPELINE_MAX).contains(&args.pipeline),
            &format!("--pipeline must be 1..={PIPELINE_MAX}"),
        )?;
        let (sets, gets) = parse_ratio(&args.ratio)?;
        let (size_min, size_max) = match (&args.data_size_range, args.data_size) {
            (Some(_), Some(_)) => {
                return Err(
                    "--data-size and --data-size-range cannot be used together: give one".into(),
                )
            }
            (Some(range), None) => parse_range(range)?,
            (None, size) => {
                let size = size.unwrap_or(DATA_SIZE_DEFAULT);
                args.data_size = Some(size);
                (size, size)
            }
        };
        check(
            size_max <= VALUE_SIZE_MAX,
            &format!("values are at most {VALUE_SIZE_MAX} bytes"),
        )?;
        check(
            args.key_prefix.len() <= KEY_PREFIX_SIZE_MAX,
            &format!("--key-prefix is at most {KEY_PREFIX_SIZE_MAX} bytes"),
        )?;
        if args.protocol == Protocol::Memcache {
            check(
                !args
                    .key_prefix
                    .bytes()
                    .any(|b| b.is_ascii_whitespace() || b.is_ascii_control()),
                "memcached keys cannot hold spaces or control characters",
            )?;
            check(
                args.key_prefix.len() + 20 <= 250,
                "memcached keys are at most 250 bytes: shorten --key-prefix",
            )?;
        }
        check(
            args.key_minimum <= args.key_maximum && args.key_maximum < u64::MAX,
            "--key-minimum must be <= --key-maximum < 2^64-1",
        )?;
        check(
            args.key_zipf_exp.is_finite() && args.key_zipf_exp > 0.0 && args.key_zipf_exp <= 10.0,
            "--key-zipf-exp must be in (0, 10]",
        )?;
        if args.verify || args.preload {
            check(
                args.key_maximum - args.key_minimum < VERIFY_KEYS_MAX,
                &format!("--verify and --preload cover at most {VERIFY_KEYS_MAX} keys"),
            )?;
        }
        let stop = match (args.requests, args.test_time) {
            (Some(0), _) => return Err("--requests must be at least 1".into()),
            (Some(n), _) => Stop::Requests(n),
            (None, t) => {
                let secs = t.unwrap_or(TEST_TIME_SECS_DEFAULT);
                args.test_time = Some(secs);
                let t = positive_secs("test-time", secs)?;
                check(!t.is_zero(), "--test-time must be above 0")?;
                Stop::Time(t)
            }
        };
        let warmup = positive_secs("warmup", args.warmup)?;
        let timeout_ms = match (args.timeout_ms, timeout_secs) {
            (Some(_), Some(_)) => {
                return Err("give the reply timeout once: --timeout-ms or --timeout".into())
            }
            (Some(ms), None) => ms,
            (None, Some(secs)) => secs.saturating_mul(1_000),
            (None, None) => TIMEOUT_MS_DEFAULT,
        };
        check(
            (1..=TIMEOUT_MS_MAX).contains(&timeout_ms),
            &format!("the reply timeout (--timeout-ms, or --timeout in seconds) must be 1..={TIMEOUT_MS_MAX} ms"),
        )?;
        args.timeout_ms = Some(timeout_ms);
        let batch_interval = match args.rate {
            Some(rate) if !(1..=RATE_MAX).contains(&rate) => {
                return Err(format!("--rate must be 1..={RATE_MAX}"))
            }
            Some(rate) => {
                // Each client sends `pipeline` requests every `interval`: in all,
                // `rate` per second. Whole nanoseconds, rounded; at least one, since
                // the numerator is at least 1e9 and the rate at most RATE_MAX.
                let clients = u128::from(args.threads) * u128::from(args.clients);
                let numerator = u128::from(args.pipeline) * clients * 1_000_000_000;
                let rate = u128::from(rate);
                let nanos = ((numerator + rate / 2) / rate).max(1);
                Some(Duration::from_nanos(
                    u64::try_from(nanos).unwrap_or(u64::MAX),
                ))
            }
            None => None,
        };
        Ok(Settings {
            addr: addr.to_string(),
            timeout: Duration::from_millis(timeout_ms),
            args,
            sets,
            gets,
            size_min,
            size_max,
            stop,
            warmup,
            batch_interval,
        })
    }

    /// Total number of clients.
    pub fn clients_total(&self) -> u64 {
        u64::from(self.args.threads) * u64::from(self.args.clients)
    }
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn settings(flags: &[&str]) -> Result<Settings, String> {
        let mut argv = vec!["bench"];
        argv.extend_from_slice(flags);
        let cli = Cli::try_parse_from(argv).map_err(|e| e.to_string())?;
        Settings::new("127.0.0.1:1", None, cli.args)
    }

    #[test]
    fn defaults_are_the_get_set_scenario() {
        let s = settings(&[]).unwrap();
        assert_eq!((s.sets, s.gets), (1, 10));
        assert_eq!((s.size_min, s.size_max), (32, 32));
        assert_eq!(s.stop, Stop::Time(Duration::from_secs(10)));
        assert_eq!(s.clients_total(), 50);
        assert_eq!(s.batch_interval, None);
        // The report records what ran, not what was left out.
        assert_eq!(s.args.test_time, Some(10.0));
        assert_eq!(s.args.data_size, Some(32));
        let s = settings(&["--requests", "5", "--data-size-range", "1-5"]).unwrap();
        assert_eq!((s.args.test_time, s.args.data_size), (None, None));
    }

    #[test]
    fn flags_are_checked() {
        assert!(settings(&["--ratio", "1-10"]).is_err());
        assert!(settings(&["--ratio", "0:0"]).is_err());
        assert!(settings(&["--data-size-range", "10-5"]).is_err());
        assert!(settings(&["--key-minimum", "5", "--key-maximum", "4"]).is_err());
        assert!(settings(&["--pipeline", "0"]).is_err());
        assert!(settings(&["--key-zipf-exp", "0"]).is_err());
        assert!(settings(&["--requests", "0"]).is_err());
        assert!(settings(&["--test-time", "1", "--requests", "5"]).is_err());
        assert!(settings(&["--protocol", "memcache", "--key-prefix", "a b"]).is_err());
        let both = settings(&["--data-size", "8", "--data-size-range", "1-5"]);
        assert!(both.unwrap_err().contains("cannot be used together"));
        let s = settings(&["--data-size-range", "8-4096", "--cpus", "0,1"]).unwrap();
        assert_eq!((s.size_min, s.size_max), (8, 4096));
        assert_eq!(s.args.cpus, vec![0, 1]);
    }

    #[test]
    fn the_global_timeout_is_the_reply_timeout() {
        let parse = |flags: &[&str]| {
            let mut argv = vec!["bench"];
            argv.extend_from_slice(flags);
            Cli::try_parse_from(argv).unwrap().args
        };
        let s = Settings::new("a:1", Some(3), parse(&[])).unwrap();
        assert_eq!(s.timeout, Duration::from_secs(3));
        assert_eq!(s.args.timeout_ms, Some(3_000));
        let s = Settings::new("a:1", None, parse(&["--timeout-ms", "250"])).unwrap();
        assert_eq!(s.timeout, Duration::from_millis(250));
        let s = Settings::new("a:1", None, parse(&[])).unwrap();
        assert_eq!(s.timeout, Duration::from_millis(TIMEOUT_MS_DEFAULT));
        assert_eq!(s.args.timeout_ms, Some(TIMEOUT_MS_DEFAULT));
        let both = Settings::new("a:1", Some(3), parse(&["--timeout-ms", "250"]));
        assert!(both.unwrap_err().contains("--timeout-ms or --timeout"));
        assert!(Settings::new("a:1", Some(0), parse(&[])).is_err());
    }

    #[test]
    fn rate_is_split_over_clients() {
        let s = settings(&[
            "--rate",
            "1000",
            "--threads",
            "2",
            "--clients",
            "5",
            "--pipeline",
            "2",
        ])
        .unwrap();
        // 100 requests/s per client in batches of 2: one batch every 20 ms.
        assert_eq!(s.batch_interval, Some(Duration::from_millis(20)));
        let fastest = settings(&["--rate", "1000000000", "--clients", "1"]).unwrap();
        assert_eq!(fastest.batch_interval, Some(Duration::from_nanos(1)));
        assert!(settings(&["--rate", "1000000001"]).is_err());
        assert!(settings(&["--rate", "0"]).is_err());
    }
}
