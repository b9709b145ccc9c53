//! The unmeasured passes around a run, on plain blocking sockets from the main
//! thread: `--preload` writes every key of the range, `--verify` reads back every key
//! that was written. Both pipeline deeply (one batch per route, then its replies), so
//! 100 K keys take about a second.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::args::Settings;
use super::driver::Reply;
use super::target::Target;
use super::workload::{format_key, Op, ValueGen, KEY_BUFFER_SIZE};

/// Requests per batch.
const BULK_DEPTH: usize = 256;

/// Request bytes per route per batch (large values fill this before the depth).
const BULK_BYTES: usize = 1024 * 1024;

/// Error messages kept.
const SAMPLES_MAX: usize = 8;

/// Outcome of a preload or verify pass: `ok + mismatches + missing + errors +
/// unanswered == keys`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct BulkReport {
    /// Keys the pass covers.
    pub keys: u64,
    /// Keys answered as expected (stored, or read back with the right value).
    pub ok: u64,
    /// Keys read back with a different value.
    pub mismatches: u64,
    /// Keys that should be there and were not.
    pub missing: u64,
    /// Error replies.
    pub errors: u64,
    /// Keys without an answer because the pass stopped early (see `failure`).
    pub unanswered: u64,
    /// Why the pass stopped early (the server went away, a timeout, a bad reply).
    pub failure: Option<String>,
    /// Wall time of the pass in seconds.
    pub secs: f64,
    /// A few of the problems, for the report.
    pub samples: Vec<String>,
}

impl BulkReport {
    fn note(&mut self, message: String) {
        if self.samples.len() < SAMPLES_MAX {
            self.samples.push(message);
        }
    }

    /// True when every key was answered as expected.
    pub fn clean(&self) -> bool {
        self.ok == self.keys && self.failure.is_none()
    }

    fn answered(&self) -> u64 {
        self.ok + self.mismatches + self.missing + self.errors
    }
}

struct Route {
    stream: TcpStream,
    output: Vec<u8>,
    input: Vec<u8>,
    pending: Vec<u64>,
}

impl Route {
    fn read_more(&mut self) -> Result<(), String> {
        let len = self.input.len();
        self.input.resize(len + 64 * 1024, 0);
        let read = self.stream.read(&mut self.input[len..]);
        let n = match read {
            Ok(0) => Err("the server closed the connection".to_string()),
            Ok(n) => Ok(n),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                Err("timed out waiting for a reply".to_string())
            }
            Err(e) => Err(format!("read failed: {e}")),
        };
        self.input.truncate(len + *n.as_ref().unwrap_or(&0));
        n.map(|_| ())
    }
}

fn connect(target: &Target, timeout: Duration) -> Result<Vec<Route>, String> {
    target
        .addrs
        .iter()
        .map(|addr| {
            let stream = TcpStream::connect_timeout(addr, timeout)
                .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
            stream
                .set_nodelay(true)
                .and_then(|_| stream.set_read_timeout(Some(timeout)))
                .and_then(|_| stream.set_write_timeout(Some(timeout)))
                .map_err(|e| format!("cannot set up {addr}: {e}"))?;
            Ok(Route {
                stream,
                output: Vec::new(),
                input: Vec::new(),
                pending: Vec::new(),
            })
        })
        .collect()
}

/// Called with each reply of a pass: the report, the key, the reply and its buffer.
type Check<'a> = &'a mut dyn FnMut(&mut BulkReport, u64, &Reply, &[u8]);

/// Sends `op` for every one of the `total` keys, pipelined, and hands each reply to
/// `check`. A failure of the connection stops the pass: the report says why and
/// how many keys went unanswered, so the run's report is never lost to it.
fn pass(
    settings: &Settings,
    target: &Target,
    values: &ValueGen,
    op: Op,
    keys: &mut dyn Iterator<Item = u64>,
    total: u64,
    check: Check<'_>,
) -> BulkReport {
    let started = Instant::now();
    let mut report = BulkReport {
        keys: total,
        ..BulkReport::default()
    };
    let sent = send_all(settings, target, values, op, keys, &mut report, check);
    if let Err(why) = sent {
        report.unanswered = total.saturating_sub(report.answered());
        report.failure = Some(why);
    }
    report.secs = started.elapsed().as_secs_f64();
    report
}

/// The batches of [`pass`]; an error is the first failure of a connection.
fn send_all(
    settings: &Settings,
    target: &Target,
    values: &ValueGen,
    op: Op,
    keys: &mut dyn Iterator<Item = u64>,
    report: &mut BulkReport,
    check: Check<'_>,
) -> Result<(), String> {
    let protocol = settings.args.protocol;
    let prefix = settings.args.key_prefix.as_bytes();
    let mut routes = connect(target, settings.timeout)?;
    let mut key_buf = [0u8; KEY_BUFFER_SIZE];
    let mut value = Vec::new();
    let mut id = 0u32;
    loop {
        let mut queued = 0;
        for key in &mut *keys {
            let key_bytes = format_key(prefix, key, &mut key_buf);
            let route = &mut routes[target.route(key_bytes)];
            id = id.wrapping_add(1);
            match op {
                Op::Set => {
                    values.write(key, &mut value);
                    protocol.encode_set(&mut route.output, id, key_bytes, &value);
                }
                Op::Get => protocol.encode_get(&mut route.output, id, key_bytes),
            }
            route.pending.push(key);
            queued += 1;
            if queued == BULK_DEPTH || route.output.len() >= BULK_BYTES {
                break;
            }
        }
        if queued == 0 {
            return Ok(());
        }
        for route in &mut routes {
            route
                .stream
                .write_all(&route.output)
                .map_err(|e| format!("write failed: {e}"))?;
            route.output.clear();
        }
        for route in &mut routes {
            let mut done = 0;
            let mut at = 0;
            while done < route.pending.len() {
                let parsed = protocol
                    .parse(&route.input[at..])
                    .map_err(|e| format!("bad reply: {e}"))?;
                match parsed {
                    Some(parsed) => {
                        let key = route.pending[done];
                        check(report, key, &parsed.reply, &route.input[at..]);
                        at += parsed.len;
                        done += 1;
                    }
                    None => {
                        route.input.drain(..at);
                        at = 0;
                        route.read_more()?;
                    }
                }
            }
            route.input.drain(..at);
            route.pending.clear();
        }
    }
}

fn describe(reply: &Reply, buf: &[u8]) -> String {
    match reply {
        Reply::Error { kind, message } => format!(
            "{kind}: {}",
            String::from_utf8_lossy(buf.get(message.clone()).unwrap_or_default())
        ),
        other => format!("{other:?}"),
    }
}

/// Writes every key of the range with its value.
pub fn preload(settings: &Settings, target: &Target, values: &ValueGen) -> BulkReport {
    let (min, max) = (settings.args.key_minimum, settings.args.key_maximum);
    pass(
        settings,
        target,
        values,
        Op::Set,
        &mut (min..=max),
        max - min + 1,
        &mut |report, key, reply, buf| match reply {
            Reply::Done | Reply::Value(_) => report.ok += 1,
            other => {
                report.errors += 1;
                report.note(format!("SET key {key}: {}", describe(other, buf)));
            }
        },
    )
}

/// Reads back every key in `keys` (`total` of them) and checks its value.
pub fn verify(
    settings: &Settings,
    target: &Target,
    values: &ValueGen,
    keys: &mut dyn Iterator<Item = u64>,
    total: u64,
) -> BulkReport {
    pass(
        settings,
        target,
        values,
        Op::Get,
        keys,
        total,
        &mut |report, key, reply, buf| match reply {
            Reply::Value(range) => {
                let value = buf.get(range.clone()).unwrap_or_default();
                if values.matches(key, value) {
                    report.ok += 1;
                } else {
                    report.mismatches += 1;
                    report.note(values.describe_mismatch(key, value));
                }
            }
            Reply::Nil => {
                report.missing += 1;
                report.note(format!("key {key}: written but not found"));
            }
            other => {
                report.errors += 1;
                report.note(format!("GET key {key}: {}", describe(other, buf)));
            }
        },
    )
}
