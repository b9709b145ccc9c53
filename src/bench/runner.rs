//! The measured run: one pinned glommio executor per `--threads`, each running
//! `--clients` client tasks. A client writes a batch of `--pipeline` requests (each
//! to its key's route), then reads every reply before the next batch.
//!
//! ```text
//!  main thread ── start gate ──▶ t0 ── progress line each second ── join ── merge
//!      │
//!      ├── executor 0 (CPU a) ── client 0 ── conn per route ── batch: encode, write, read
//!      │                      └─ client 1 ...        (one Recorder per executor)
//!      └── executor 1 (CPU b) ── ...
//! ```
//!
//! Closed loop (default): a batch's latency runs from just before its write to the
//! read that brought each reply. Open loop (`--rate`): batch k of a client is due at
//! `t0 + k * interval`; its latency runs from that due time, so a server stall shows
//! in the tail instead of silently slowing the senders (coordinated omission).
//!
//! A time-bounded run ends on the wall clock: no batch is sent after the end, and
//! replies still in flight get at most [`DRAIN_TIME_MAX`] more. An open-loop client
//! that fell behind its schedule therefore stops with requests it never sent; they
//! are counted ([`Recorder::unsent`]), like the ones sent late, never hidden. A
//! client behind at the start of the measured window skips its warm-up backlog
//! (counted in [`WarmupStats::unsent`]), so the window holds its own schedule.
//!
//! The hot loop does not allocate: keys are formatted into a stack buffer, requests
//! are encoded into per-connection buffers that are reused, replies are parsed in place.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::ErrorKind;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder, Placement};

use super::args::{Settings, Stop};
use super::driver::Parsed;
#[cfg(doc)]
use super::stats::WarmupStats;
use super::stats::{Outcome, Progress, Recorder};
use super::target::Target;
use super::workload::{client_seed, format_key, KeyGen, Op, OpMix, Rng, ValueGen, KEY_BUFFER_SIZE};
use crate::constants::EXECUTOR_IO_MEMORY;

/// Initial size of a connection's input buffer; it grows to fit a larger reply.
const INPUT_BUFFER_SIZE: usize = 64 * 1024;

/// Pause after a failed reconnect, so a dead server is not hammered.
const RECONNECT_PAUSE: Duration = Duration::from_millis(100);

/// Longest a thread waits at the start gate for the others to connect.
const START_GATE_TIMEOUT: Duration = Duration::from_secs(120);

/// Longest a time-bounded run waits past its end for replies already in flight; a
/// request still unanswered then counts as a timeout. This bounds how long a run
/// against an overloaded or stalled server overstays its `--test-time`.
pub const DRAIN_TIME_MAX: Duration = Duration::from_secs(1);

/// An open-loop request sent more than this after its intended send time counts as
/// sent late: the server or the generator did not keep up with `--rate`. Timer
/// wake-ups on a busy machine are tens of microseconds late; this is far above that.
pub const SEND_LATE_AFTER: Duration = Duration::from_millis(1);

/// Why a thread stopped when another could not start.
const OTHER_THREAD_FAILED: &str = "another load thread failed to start";

/// Everything the threads share (read-only but for the atomics).
pub struct Shared {
    /// The run's settings.
    pub settings: Settings,
    /// Where requests go.
    pub target: Target,
    /// Values to write and check.
    pub values: ValueGen,
    /// One progress block per thread.
    pub progress: Vec<Progress>,
    /// Threads that have finished (successfully or not).
    pub finished: AtomicUsize,
    gate: StartGate,
}

impl Shared {
    /// Shared state for a run with these settings.
    pub fn new(settings: Settings, target: Target) -> Shared {
        let threads = settings.args.threads as usize;
        Shared {
            values: ValueGen::new(settings.args.seed, settings.size_min, settings.size_max),
            progress: (0..threads).map(|_| Progress::default()).collect(),
            finished: AtomicUsize::new(0),
            gate: StartGate::new(threads + 1),
            settings,
            target,
        }
    }
}

/// A barrier that can be abandoned: every thread connects its clients, then waits
/// here; the last to arrive fixes the common start time `t0`. A thread that failed
/// to connect abandons the gate, and everyone returns without running.
struct StartGate {
    state: Mutex<GateState>,
    all_in: Condvar,
    parties: usize,
}

#[derive(Default)]
struct GateState {
    arrived: usize,
    t0: Option<Instant>,
    abandoned: bool,
}

impl StartGate {
    fn new(parties: usize) -> StartGate {
        StartGate {
            state: Mutex::new(GateState::default()),
            all_in: Condvar::new(),
            parties,
        }
    }

    /// Waits for every party; `None` if the gate was abandoned or timed out.
    fn arrive(&self) -> Option<Instant> {
        let mut state = self.state.lock().ok()?;
        state.arrived += 1;
        if state.arrived == self.parties {
            state.t0 = Some(Instant::now());
            self.all_in.notify_all();
        }
        let deadline = Instant::now() + START_GATE_TIMEOUT;
        while state.t0.is_none() && !state.abandoned {
            let left = deadline.checked_duration_since(Instant::now())?;
            state = self.all_in.wait_timeout(state, left).ok()?.0;
        }
        if state.abandoned {
            None
        } else {
            state.t0
        }
    }

    fn abandon(&self) {
        if let Ok(mut state) = self.state.lock() {
            state.abandoned = true;
        }
        self.all_in.notify_all();
    }
}

/// What one thread hands back.
pub struct ThreadResult {
    /// Its counts.
    pub recorder: Recorder,
    /// When its last measured request was answered.
    pub last_done: Option<Instant>,
}

/// A run in progress.
pub struct Running {
    /// The common start time (warm-up begins).
    pub t0: Instant,
    handles: Vec<ExecutorJoinHandle<Result<ThreadResult, String>>>,
}

impl Running {
    /// Waits for every thread and returns their results.
    pub fn join(self) -> Result<Vec<ThreadResult>, String> {
        let mut results = Vec::with_capacity(self.handles.len());
        let mut errors = Vec::new();
        for handle in self.handles {
            match handle.join() {
                Ok(Ok(r)) => results.push(r),
                Ok(Err(e)) => errors.push(e),
                Err(e) => errors.push(format!("a load thread failed: {e}")),
            }
        }
        // Report the cause, not the threads that stopped because of it.
        errors.sort_by_key(|e| e == OTHER_THREAD_FAILED);
        match errors.into_iter().next() {
            Some(e) => Err(e),
            None => Ok(results),
        }
    }
}

/// Starts the executors; returns once every client is connected and the run began.
pub fn start(shared: Arc<Shared>) -> Result<Running, String> {
    let threads = shared.settings.args.threads as usize;
    let cpus = shared.settings.args.cpus.clone();
    let mut handles = Vec::with_capacity(threads);
    for index in 0..threads {
        let placement = match cpus.get(index % cpus.len().max(1)) {
            Some(&cpu) => Placement::Fixed(cpu),
            None => Placement::Unbound,
        };
        let thread_shared = shared.clone();
        let spawned = LocalExecutorBuilder::new(placement)
            .name(&format!("ringkv-bench-{index}"))
            .io_memory(EXECUTOR_IO_MEMORY)
            .spawn(move || thread_main(thread_shared, index));
        match spawned {
            Ok(handle) => handles.push(handle),
            Err(e) => {
                shared.gate.abandon();
                for handle in handles {
                    let _ = handle.join();
                }
                return Err(format!(
                    "cannot start load thread {index}: {e} (a CPU of --cpus offline? \
                     `ulimit -l` below 8 MiB?)"
                ));
            }
        }
    }
    match shared.gate.arrive() {
        Some(t0) => Ok(Running { t0, handles }),
        None => {
            // Collect the reason from the thread that abandoned the gate.
            let running = Running {
                t0: Instant::now(),
                handles,
            };
            Err(running
                .join()
                .err()
                .unwrap_or_else(|| "the load threads did not start".into()))
        }
    }
}

async fn thread_main(shared: Arc<Shared>, index: usize) -> Result<ThreadResult, String> {
    let result = thread_body(&shared, index).await;
    shared.finished.fetch_add(1, Ordering::SeqCst);
    result
}

async fn thread_body(shared: &Arc<Shared>, index: usize) -> Result<ThreadResult, String> {
    let s = &shared.settings;
    let mut clients = Vec::with_capacity(s.args.clients as usize);
    for c in 0..u64::from(s.args.clients) {
        let global = index as u64 * u64::from(s.args.clients) + c;
        match Client::connect(shared, global).await {
            Ok(client) => clients.push(client),
            Err(e) => {
                shared.gate.abandon();
                return Err(e);
            }
        }
    }
    let Some(t0) = shared.gate.arrive() else {
        return Err(OTHER_THREAD_FAILED.into());
    };
    let track = s
        .args
        .verify
        .then_some((s.args.key_minimum, s.args.key_maximum));
    let recorder = Rc::new(RefCell::new(Recorder::new(track)));
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|client| glommio::spawn_local(client.run(shared.clone(), index, t0, recorder.clone())))
        .collect();
    let mut last_done: Option<Instant> = None;
    for task in tasks {
        if let Some(done) = task.await {
            last_done = Some(last_done.map_or(done, |d| d.max(done)));
        }
    }
    let recorder = std::mem::take(&mut *recorder.borrow_mut());
    Ok(ThreadResult {
        recorder,
        last_done,
    })
}

/// A connection's input: bytes in `buf[head..tail]` wait to be parsed.
struct Input {
    buf: Vec<u8>,
    head: usize,
    tail: usize,
}

impl Input {
    fn data(&self) -> &[u8] {
        &self.buf[self.head..self.tail]
    }

    fn consume(&mut self, n: usize) {
        self.head += n;
        if self.head == self.tail {
            self.head = 0;
            self.tail = 0;
        }
    }

    fn clear(&mut self) {
        self.head = 0;
        self.tail = 0;
    }

    /// Room to read into: compacts, or grows when a reply fills the whole buffer.
    fn spare(&mut self) -> &mut [u8] {
        if self.tail == self.buf.len() {
            if self.head > 0 {
                self.buf.copy_within(self.head..self.tail, 0);
                self.tail -= self.head;
                self.head = 0;
            } else {
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        &mut self.buf[self.tail..]
    }
}

/// A request waiting for its reply.
struct Pending {
    op: Op,
    key: u64,
    id: u32,
}

/// Why a connection stopped answering.
enum Fail {
    Timeout,
    /// The drain after the end of a time-bounded run ran out.
    Drained,
    Error(String),
}

impl Fail {
    /// The failure of an I/O error; `cut_short` says the wait was shortened to the
    /// drain deadline, so a timeout means the drain ran out.
    fn of_io(e: &std::io::Error, cut_short: bool, what: String) -> Fail {
        match e.kind() {
            ErrorKind::TimedOut | ErrorKind::WouldBlock if cut_short => Fail::Drained,
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Fail::Timeout,
            _ => Fail::Error(format!("{what}: {e}")),
        }
    }
}

/// How long the next wait on a socket may last: `--timeout-ms`, cut to what is left
/// of the drain when the run has a `deadline`; `None` once the deadline has passed.
fn wait_limit(timeout: Duration, deadline: Option<Instant>) -> Option<Duration> {
    match deadline {
        None => Some(timeout),
        Some(d) => d
            .checked_duration_since(Instant::now())
            .filter(|left| !left.is_zero())
            .map(|left| left.min(timeout)),
    }
}

struct Conn {
    addr: SocketAddr,
    stream: Option<TcpStream>,
    input: Input,
    output: Vec<u8>,
    pending: VecDeque<Pending>,
    next_id: u32,
    /// When the last read returned: the arrival time of every reply it brought.
    received_at: Instant,
}

async fn open(addr: SocketAddr, timeout: Duration) -> Result<TcpStream, String> {
    let stream = TcpStream::connect_timeout(addr, timeout)
        .await
        .map_err(|e| format!("cannot connect to {addr}: {e}"))?;
    let setup = stream
        .set_nodelay(true)
        .and_then(|_| stream.set_read_timeout(Some(timeout)))
        .and_then(|_| stream.set_write_timeout(Some(timeout)));
    setup.map_err(|e| format!("cannot set up the connection to {addr}: {e}"))?;
    Ok(stream)
}

impl Conn {
    /// Splits the next reply off the input, reading when it is not all there; no
    /// read waits past `deadline`.
    async fn next_reply(
        &mut self,
        shared: &Shared,
        deadline: Option<Instant>,
    ) -> Result<Parsed, Fail> {
        let protocol = shared.settings.args.protocol;
        let timeout = shared.settings.timeout;
        loop {
            match protocol.parse(self.input.data()) {
                Ok(Some(parsed)) => return Ok(parsed),
                Ok(None) => {}
                Err(e) => return Err(Fail::Error(format!("bad reply from {}: {e}", self.addr))),
            }
            let Some(stream) = self.stream.as_mut() else {
                return Err(Fail::Error("not connected".into()));
            };
            let limit = wait_limit(timeout, deadline).ok_or(Fail::Drained)?;
            if deadline.is_some() {
                stream.set_read_timeout(Some(limit)).map_err(|e| {
                    Fail::Error(format!("cannot set the read timeout of {}: {e}", self.addr))
                })?;
            }
            match stream.read(self.input.spare()).await {
                Ok(0) => return Err(Fail::Error(format!("{} closed the connection", self.addr))),
                Ok(n) => {
                    self.input.tail += n;
                    self.received_at = Instant::now();
                }
                Err(e) => {
                    let what = format!("reading from {}", self.addr);
                    return Err(Fail::of_io(&e, limit < timeout, what));
                }
            }
        }
    }

    /// Counts every pending request as failed and drops the connection; it is
    /// reopened before the next write.
    fn fail_pending(&mut self, fail: &Fail, recorder: &mut Recorder, measured: bool) -> u64 {
        let mut n = 0;
        while let Some(p) = self.pending.pop_front() {
            let outcome = match fail {
                Fail::Timeout => Outcome::Timeout,
                Fail::Drained => Outcome::Drained,
                Fail::Error(m) => Outcome::Lost(m),
            };
            recorder.record(p.op, p.key, outcome, measured, None);
            n += 1;
        }
        self.stream = None;
        self.input.clear();
        self.output.clear();
        n
    }
}

/// How many open-loop batches are due in `[from, to)` when one is due at `from` and
/// the next every `interval` after it.
fn batches_due(from: Instant, to: Instant, interval: Duration) -> u64 {
    let span = to.saturating_duration_since(from).as_nanos();
    u64::try_from(span.div_ceil(interval.as_nanos().max(1))).unwrap_or(u64::MAX)
}

/// One simulated client: its key and op streams and a connection per route.
struct Client {
    index: u64,
    conns: Vec<Conn>,
    keys: KeyGen,
    mix: OpMix,
    value: Vec<u8>,
    key_buf: [u8; KEY_BUFFER_SIZE],
}

/// Counts of one batch, for the progress line.
#[derive(Default)]
struct BatchCounts {
    ok: u64,
    latency_ns: u64,
    failed: u64,
}

impl Client {
    async fn connect(shared: &Shared, index: u64) -> Result<Client, String> {
        let s = &shared.settings;
        let mut conns = Vec::with_capacity(shared.target.addrs.len());
        for &addr in &shared.target.addrs {
            conns.push(Conn {
                addr,
                stream: Some(open(addr, s.timeout).await?),
                input: Input {
                    buf: vec![0; INPUT_BUFFER_SIZE],
                    head: 0,
                    tail: 0,
                },
                output: Vec::with_capacity(INPUT_BUFFER_SIZE),
                pending: VecDeque::with_capacity(s.args.pipeline as usize),
                next_id: 1,
                received_at: Instant::now(),
            });
        }
        let rng = Rng::new(client_seed(s.args.seed, index));
        let keys = KeyGen::new(
            s.args.key_pattern,
            s.args.key_minimum,
            s.args.key_maximum,
            s.args.key_zipf_exp,
            rng,
            index,
            s.clients_total(),
        );
        // Stagger where each client starts in the SET:GET cycle, so the SETs of all
        // clients are not issued in the same instant.
        let cycle_start = (index % u64::from(s.sets + s.gets)) as u32;
        Ok(Client {
            index,
            conns,
            keys,
            mix: OpMix::new(s.sets, s.gets, cycle_start),
            value: Vec::with_capacity(s.size_max as usize),
            key_buf: [0; KEY_BUFFER_SIZE],
        })
    }

    /// Runs until the stop condition; returns when the last measured reply came.
    async fn run(
        mut self,
        shared: Arc<Shared>,
        thread: usize,
        t0: Instant,
        recorder: Rc<RefCell<Recorder>>,
    ) -> Option<Instant> {
        let s = &shared.settings;
        let pipeline = u64::from(s.args.pipeline);
        let measure_start = t0 + s.warmup;
        let (end, limit) = match s.stop {
            Stop::Time(d) => (Some(measure_start + d), None),
            Stop::Requests(n) => (None, Some(n)),
        };
        let deadline = end.map(|end| end + DRAIN_TIME_MAX);
        let mut due = s.batch_interval.map(|interval| {
            // Spread the clients' schedules evenly over one interval.
            t0 + interval.mul_f64(self.index as f64 / s.clients_total() as f64)
        });
        let mut measured_sent = 0u64;
        let mut last_done = None;
        loop {
            if let (Some(at), Some(end)) = (due, end) {
                if at >= end {
                    break;
                }
            }
            let mut now = Instant::now();
            if let (Some(at), Some(interval)) = (due.as_mut(), s.batch_interval) {
                // A client still behind on its warm-up schedule when the window
                // opens skips what is left of it (counted): otherwise the window would
                // measure the catching up of warm-up requests instead of its own.
                if *at < measure_start && now >= measure_start {
                    // At most u32::MAX batches per step (Duration's multiplier); the
                    // next turn of the loop skips any rest.
                    let skipped = batches_due(*at, measure_start, interval).min(u32::MAX.into());
                    recorder.borrow_mut().warmup.unsent += skipped.saturating_mul(pipeline);
                    *at += interval.saturating_mul(u32::try_from(skipped).unwrap_or(u32::MAX));
                }
                if *at > now {
                    glommio::timer::sleep(*at - now).await;
                    now = Instant::now();
                }
            }
            // The wall clock ends the run, not the schedule: a client behind its
            // open-loop schedule does not go on sending after the end.
            if end.is_some_and(|end| now >= end) {
                break;
            }
            let intended = due.unwrap_or(now);
            let measured = intended >= measure_start;
            let n = match (measured, limit) {
                (true, Some(limit)) if measured_sent >= limit => break,
                (true, Some(limit)) => (limit - measured_sent).min(pipeline),
                _ => pipeline,
            };
            if measured {
                measured_sent += n;
            }
            if measured && now.saturating_duration_since(intended) > SEND_LATE_AFTER {
                recorder.borrow_mut().sent_late += n;
            }
            if let (Some(at), Some(interval)) = (due.as_mut(), s.batch_interval) {
                *at += interval;
            }
            let counts = self
                .batch(
                    &shared,
                    &recorder,
                    n,
                    measured,
                    due.map(|_| intended),
                    deadline,
                )
                .await;
            if measured {
                last_done = Some(Instant::now());
            }
            shared.progress[thread].add(
                counts.ok,
                counts.latency_ns,
                counts.failed,
                if measured { n } else { 0 },
            );
        }
        if let (Some(at), Some(end), Some(interval)) = (due, end, s.batch_interval) {
            // The batches from `at` to the end were due and never sent.
            let unsent = batches_due(at.max(measure_start), end, interval);
            recorder.borrow_mut().unsent += unsent.saturating_mul(pipeline);
        }
        last_done
    }

    /// Sends `n` requests and reads their replies. `due` is the open-loop send time;
    /// no wait on a socket lasts past `deadline`.
    async fn batch(
        &mut self,
        shared: &Shared,
        recorder: &RefCell<Recorder>,
        n: u64,
        measured: bool,
        due: Option<Instant>,
        deadline: Option<Instant>,
    ) -> BatchCounts {
        let s = &shared.settings;
        let protocol = s.args.protocol;
        let prefix = s.args.key_prefix.as_bytes();
        for _ in 0..n {
            let op = self.mix.next_op();
            let key = self.keys.next_key();
            let key_bytes = format_key(prefix, key, &mut self.key_buf);
            let conn = &mut self.conns[shared.target.route(key_bytes)];
            let id = conn.next_id;
            conn.next_id = conn.next_id.wrapping_add(1);
            match op {
                Op::Get => protocol.encode_get(&mut conn.output, id, key_bytes),
                Op::Set => {
                    shared.values.write(key, &mut self.value);
                    protocol.encode_set(&mut conn.output, id, key_bytes, &self.value);
                }
            }
            conn.pending.push_back(Pending { op, key, id });
        }
        let mut counts = BatchCounts::default();
        let sent_at = due.unwrap_or_else(Instant::now);
        for conn in &mut self.conns {
            if conn.output.is_empty() {
                continue;
            }
            let Some(limit) = wait_limit(s.timeout, deadline) else {
                counts.failed +=
                    conn.fail_pending(&Fail::Drained, &mut recorder.borrow_mut(), measured);
                continue;
            };
            if conn.stream.is_none() {
                match open(conn.addr, limit).await {
                    Ok(stream) => conn.stream = Some(stream),
                    Err(e) => {
                        counts.failed += conn.fail_pending(
                            &Fail::Error(e),
                            &mut recorder.borrow_mut(),
                            measured,
                        );
                        glommio::timer::sleep(RECONNECT_PAUSE.min(s.timeout)).await;
                        continue;
                    }
                }
            }
            let written = match conn.stream.as_mut() {
                Some(stream) if deadline.is_some() => match stream.set_write_timeout(Some(limit)) {
                    Ok(()) => stream.write_all(&conn.output).await,
                    Err(e) => Err(std::io::Error::from(e)),
                },
                Some(stream) => stream.write_all(&conn.output).await,
                None => Err(std::io::Error::from(ErrorKind::NotConnected)),
            };
            conn.output.clear();
            if let Err(e) = written {
                let what = format!("writing to {}", conn.addr);
                let fail = Fail::of_io(&e, limit < s.timeout, what);
                counts.failed += conn.fail_pending(&fail, &mut recorder.borrow_mut(), measured);
            }
        }
        let values = s.args.verify.then_some(&shared.values);
        for conn in &mut self.conns {
            while let Some(front) = conn.pending.front() {
                let (op, key, id) = (front.op, front.key, front.id);
                let parsed = match conn.next_reply(shared, deadline).await {
                    Ok(parsed) => parsed,
                    Err(fail) => {
                        let mut r = recorder.borrow_mut();
                        counts.failed += conn.fail_pending(&fail, &mut r, measured);
                        break;
                    }
                };
                if protocol.has_ids() && parsed.id != Some(id) {
                    let fail = Fail::Error(format!(
                        "reply id {:?} for request {id}: the stream is out of step",
                        parsed.id
                    ));
                    let mut r = recorder.borrow_mut();
                    counts.failed += conn.fail_pending(&fail, &mut r, measured);
                    break;
                }
                conn.pending.pop_front();
                let latency_ns = conn
                    .received_at
                    .saturating_duration_since(sent_at)
                    .as_nanos()
                    .min(u128::from(u64::MAX)) as u64;
                let outcome = Outcome::Reply {
                    reply: &parsed.reply,
                    buf: conn.input.data(),
                    latency_ns,
                };
                if recorder
                    .borrow_mut()
                    .record(op, key, outcome, measured, values)
                {
                    counts.ok += 1;
                    counts.latency_ns += latency_ns;
                } else {
                    counts.failed += 1;
                }
                conn.input.consume(parsed.len);
            }
        }
        counts
    }
}
