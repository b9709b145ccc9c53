//! What a run counts: one [`Recorder`] per executor thread (no sharing on the hot
//! path), merged once at the end, and a few relaxed atomics per thread for the live
//! progress line.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;

use super::driver::Reply;
use super::workload::{KeyBitmap, Op, ValueGen};

/// Longest latency the histograms hold exactly: 60 s, in nanoseconds. Longer ones
/// are recorded as 60 s (a timeout is far shorter anyway).
pub const LATENCY_NS_MAX: u64 = 60_000_000_000;

/// Significant decimal digits of the latency histograms.
pub const LATENCY_SIGFIG: u8 = 3;

/// Distinct error messages kept as samples; the rest are only counted.
const ERROR_SAMPLES_MAX: usize = 16;

/// A new latency histogram (nanoseconds).
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, LATENCY_NS_MAX, LATENCY_SIGFIG)
        .expect("constant histogram bounds are valid")
}

/// Counts of one operation type over the measured window.
#[derive(Clone, Debug)]
pub struct OpStats {
    /// Latency of every answered request, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Requests answered without error.
    pub ops: u64,
    /// GETs that found their key.
    pub hits: u64,
    /// GETs that did not.
    pub misses: u64,
    /// Requests answered with an error or a wrong value, or lost with their
    /// connection.
    pub errors: u64,
    /// Requests with no answer within `--timeout-ms`.
    pub timeouts: u64,
}

impl Default for OpStats {
    fn default() -> Self {
        OpStats {
            latency: new_histogram(),
            ops: 0,
            hits: 0,
            misses: 0,
            errors: 0,
            timeouts: 0,
        }
    }
}

impl OpStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &OpStats) {
        // Same bounds on both sides, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        self.ops += other.ops;
        self.hits += other.hits;
        self.misses += other.misses;
        self.errors += other.errors;
        self.timeouts += other.timeouts;
    }
}

/// Requests made during the warm-up: not in the figures, but never hidden.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct WarmupStats {
    /// Answered without error.
    pub ops: u64,
    /// Errors.
    pub errors: u64,
    /// Timeouts.
    pub timeouts: u64,
    /// Open loop: warm-up requests never sent, because their client was still
    /// behind its schedule when the measured window opened.
    pub unsent: u64,
}

/// Everything one thread counted.
#[derive(Clone, Debug, Default)]
pub struct Recorder {
    /// Measured SETs.
    pub set: OpStats,
    /// Measured GETs.
    pub get: OpStats,
    /// Warm-up requests.
    pub warmup: WarmupStats,
    /// GET hits whose value was not the key's (with `--verify`); each is also an
    /// error of its GET.
    pub wrong_values: u64,
    /// Error and timeout messages (warm-up included) and how often each was seen:
    /// the counts add up to every failure counted.
    pub error_samples: BTreeMap<String, u64>,
    /// Keys written (with `--verify`).
    pub written: Option<KeyBitmap>,
    /// Open loop: measured requests sent later than their schedule allowed.
    pub sent_late: u64,
    /// Open loop: requests due in the measured window that were never sent.
    pub unsent: u64,
}

/// How a request ended, as the runner saw it.
pub enum Outcome<'a> {
    /// A reply; ranges index `buf`.
    Reply {
        /// The reply.
        reply: &'a Reply,
        /// The buffer the reply was parsed from.
        buf: &'a [u8],
        /// Latency in nanoseconds.
        latency_ns: u64,
    },
    /// No reply within the timeout.
    Timeout,
    /// No reply before the drain after the end of the run ran out (a timeout).
    Drained,
    /// The connection failed before a reply.
    Lost(&'a str),
}

impl Recorder {
    /// A recorder; `track_writes` keeps a bitmap of written keys over `keys`.
    pub fn new(track_writes: Option<(u64, u64)>) -> Recorder {
        Recorder {
            written: track_writes.map(|(min, max)| KeyBitmap::new(min, max)),
            ..Recorder::default()
        }
    }

    fn sample(&mut self, message: String) {
        let known = self.error_samples.len();
        match self.error_samples.get_mut(&message) {
            Some(n) => *n += 1,
            None if known < ERROR_SAMPLES_MAX => {
                self.error_samples.insert(message, 1);
            }
            None => {
                *self
                    .error_samples
                    .entry("(other errors)".into())
                    .or_insert(0) += 1
            }
        }
    }

    /// Counts one request. `measured` says whether it falls in the measured window;
    /// `values` checks GET hits when verifying. Returns true if it was answered
    /// without error.
    pub fn record(
        &mut self,
        op: Op,
        key: u64,
        outcome: Outcome<'_>,
        measured: bool,
        values: Option<&ValueGen>,
    ) -> bool {
        enum Kind {
            Ok { hit: Option<bool>, ns: u64 },
            Error(String),
            Timeout { drained: bool },
        }
        let kind = match outcome {
            Outcome::Timeout => Kind::Timeout { drained: false },
            Outcome::Drained => Kind::Timeout { drained: true },
            Outcome::Lost(why) => Kind::Error(why.to_string()),
            Outcome::Reply {
                reply,
                buf,
                latency_ns,
            } => match (op, reply) {
                (Op::Set, Reply::Done | Reply::Value(_)) => {
                    if let Some(w) = &mut self.written {
                        w.set(key);
                    }
                    Kind::Ok {
                        hit: None,
                        ns: latency_ns,
                    }
                }
                // A wrong value is an error, not a hit: the table's Errors column
                // and the JSON's `errors` count it (and `verify` says how many).
                (Op::Get, Reply::Value(range))
                    if values.is_some_and(|v| !v.matches(key, value_of(buf, range))) =>
                {
                    self.wrong_values += 1;
                    let value = value_of(buf, range);
                    let why = values.map(|v| v.describe_mismatch(key, value));
                    Kind::Error(format!("wrong value: {}", why.unwrap_or_default()))
                }
                (Op::Get, Reply::Value(_)) => Kind::Ok {
                    hit: Some(true),
                    ns: latency_ns,
                },
                (Op::Get, Reply::Nil) => Kind::Ok {
                    hit: Some(false),
                    ns: latency_ns,
                },
                (_, Reply::Error { kind, message }) => Kind::Error(format!(
                    "{kind}: {}",
                    String::from_utf8_lossy(value_of(buf, message))
                )),
                (op, other) => Kind::Error(format!("unexpected reply to {op:?}: {other:?}")),
            },
        };
        let ok = matches!(kind, Kind::Ok { .. });
        if !measured {
            match kind {
                Kind::Ok { .. } => self.warmup.ops += 1,
                Kind::Error(m) => {
                    self.warmup.errors += 1;
                    self.sample(m);
                }
                Kind::Timeout { drained } => {
                    self.warmup.timeouts += 1;
                    self.sample(timeout_message(op, drained));
                }
            }
            return ok;
        }
        let stats = match op {
            Op::Set => &mut self.set,
            Op::Get => &mut self.get,
        };
        match kind {
            Kind::Ok { hit, ns } => {
                stats.ops += 1;
                match hit {
                    Some(true) => stats.hits += 1,
                    Some(false) => stats.misses += 1,
                    None => {}
                }
                stats.latency.saturating_record(ns.max(1));
            }
            Kind::Error(m) => {
                stats.errors += 1;
                self.sample(m);
            }
            Kind::Timeout { drained } => {
                stats.timeouts += 1;
                self.sample(timeout_message(op, drained));
            }
        }
        ok
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Recorder) {
        self.set.merge(&other.set);
        self.get.merge(&other.get);
        self.warmup.ops += other.warmup.ops;
        self.warmup.errors += other.warmup.errors;
        self.warmup.timeouts += other.warmup.timeouts;
        self.warmup.unsent += other.warmup.unsent;
        self.wrong_values += other.wrong_values;
        self.sent_late += other.sent_late;
        self.unsent += other.unsent;
        for (m, n) in &other.error_samples {
            *self.error_samples.entry(m.clone()).or_insert(0) += n;
        }
        match (&mut self.written, &other.written) {
            (Some(a), Some(b)) => a.union(b),
            (None, Some(b)) => self.written = Some(b.clone()),
            _ => {}
        }
    }
}

/// The listed message of a timeout; `drained` when the drain after the end of the
/// run ran out.
fn timeout_message(op: Op, drained: bool) -> String {
    if drained {
        format!("no reply to {op:?} when the drain after the end of the run ran out")
    } else {
        format!("timeout waiting for a reply to {op:?}")
    }
}

fn value_of<'a>(buf: &'a [u8], range: &Range<usize>) -> &'a [u8] {
    buf.get(range.clone()).unwrap_or_default()
}

/// Per-thread counters the main thread reads once a second.
#[derive(Debug, Default)]
pub struct Progress {
    /// Requests answered without error (warm-up included).
    pub ops: AtomicU64,
    /// Sum of their latencies, in nanoseconds.
    pub latency_ns: AtomicU64,
    /// Errors and timeouts.
    pub failures: AtomicU64,
    /// Measured requests issued (for the progress bar of a `--requests` run).
    pub measured: AtomicU64,
}

impl Progress {
    /// Adds a batch's counts.
    pub fn add(&self, ops: u64, latency_ns: u64, failures: u64, measured: u64) {
        self.ops.fetch_add(ops, Ordering::Relaxed);
        self.latency_ns.fetch_add(latency_ns, Ordering::Relaxed);
        self.failures.fetch_add(failures, Ordering::Relaxed);
        self.measured.fetch_add(measured, Ordering::Relaxed);
    }
}

#[cfg(test)]
// Tests fail loudly on the first surprise; that is what unwrap is for there.
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn counts_hits_misses_errors_and_warmup_apart() {
        let values = ValueGen::new(1, 8, 8);
        let mut v = Vec::new();
        values.write(5, &mut v);
        let mut r = Recorder::new(Some((1, 10)));
        let hit = Reply::Value(0..v.len());
        let out = |reply| Outcome::Reply {
            reply,
            buf: &v,
            latency_ns: 1_000,
        };
        assert!(r.record(Op::Get, 5, out(&hit), true, Some(&values)));
        // Key 6 has another value: an error, not a hit.
        assert!(!r.record(Op::Get, 6, out(&hit), true, Some(&values)));
        assert!(r.record(Op::Get, 5, out(&Reply::Nil), true, None));
        assert!(r.record(Op::Set, 7, out(&Reply::Done), true, None));
        assert!(!r.record(Op::Set, 7, out(&Reply::Nil), true, None));
        assert!(!r.record(Op::Get, 1, Outcome::Timeout, true, None));
        assert!(r.record(Op::Set, 3, out(&Reply::Done), false, None));
        assert_eq!((r.get.ops, r.get.hits, r.get.misses), (2, 1, 1));
        assert_eq!((r.get.errors, r.get.timeouts), (1, 1));
        assert_eq!((r.set.ops, r.set.errors), (1, 1));
        assert_eq!(r.wrong_values, 1);
        assert!(r
            .error_samples
            .keys()
            .any(|m| m.starts_with("wrong value: ")));
        assert_eq!(r.warmup.ops, 1);
        assert_eq!(r.get.latency.len(), 2);
        let written: Vec<u64> = r.written.as_ref().unwrap().keys().collect();
        assert_eq!(written, vec![3, 7]);
        let mut total = Recorder::default();
        total.merge(&r);
        total.merge(&r);
        assert_eq!(total.get.hits, 2);
        assert_eq!(total.get.latency.len(), 4);
    }
}
