//! One core: its shard, its links to the other cores, and the routing of commands.
//!
//! A command for a key this core owns runs here, synchronously. A command for another
//! core's key travels in a [`Forward`] batch over glommio's channel mesh; the owner runs
//! it and sends a [`Returned`] batch back. Requests and replies use two separate meshes,
//! so a core waiting to send a reply can never be blocked by requests queued behind it:
//! replies are always drained.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::channels::local_channel::{self, LocalSender};

use super::durable::{self, NodeShard};
use super::stats::{self, CoreCounters};
use crate::config::Config;
use crate::constants::FORWARD_BATCH_MAX;
use crate::proto::Topology;
use crate::shard::{Command, Reply, ShardError};

/// Commands one core asks another to run.
pub struct Forward {
    /// Core that sent them (and wants the replies).
    pub from: usize,
    /// Identifies the waiting batch on the sender.
    pub token: u64,
    /// The commands, run in this order.
    pub commands: Vec<Command>,
    /// How their writes are acknowledged.
    pub need: SyncNeed,
}

/// How the writes of a batch are acknowledged, from the requests' flags.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SyncNeed {
    /// As the node's durability mode says.
    Default,
    /// Only once on disk, whatever the mode (`FLAG_SYNC`).
    Force,
    /// Once applied in memory, whatever the mode (`FLAG_NO_SYNC` on every write).
    Skip,
}

/// A node's identity for one run of its process: 20 random bytes drawn once at start
/// and shared by every core. `INFO` reports it as Redis's `run_id` and
/// `master_replid`, which tools compare to notice a restart, so it must stay the
/// same while the process runs, whichever core answers, and change when it restarts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunId([u8; 20]);

impl RunId {
    /// A fresh id. std's hasher keys come from the OS's random source, so a hash of
    /// the clock under fresh keys is unpredictable and differs between starts.
    pub fn random() -> RunId {
        use std::hash::{BuildHasher, Hasher};
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut bytes = [0u8; 20];
        for chunk in bytes.chunks_mut(8) {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(now);
            chunk.copy_from_slice(&h.finish().to_le_bytes()[..chunk.len()]);
        }
        RunId(bytes)
    }

    /// 40 lowercase hex digits, as Redis writes its run id.
    pub fn hex(&self) -> String {
        self.0.iter().fold(String::with_capacity(40), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// Replies to a [`Forward`], in the same order.
pub struct Returned {
    /// The token of the [`Forward`].
    pub token: u64,
    /// One reply per command.
    pub replies: Vec<Reply>,
}

/// The shard commands of one batch of requests, each bound for its shard. Front-ends
/// turn requests into parts, [`Core::run`] runs them, and the replies come back in
/// the order the parts were pushed.
#[derive(Default)]
pub struct Parts {
    shard: Vec<usize>,
    commands: Vec<Command>,
}

impl Parts {
    /// Adds a command for `shard`; returns its index among the replies.
    pub fn push(&mut self, shard: usize, command: Command) -> usize {
        self.shard.push(shard);
        self.commands.push(command);
        self.commands.len() - 1
    }
}

impl Parts {
    /// Number of parts pushed so far.
    pub fn len(&self) -> usize {
        self.commands.len()
    }

    /// The shard of every part, in push order.
    pub fn shards(&self) -> &[usize] {
        &self.shard
    }

    /// The commands, in push order (to wrap them into one `Transaction`).
    pub fn into_commands(self) -> Vec<Command> {
        self.commands
    }

    /// True when no part was pushed.
    pub fn is_empty(&self) -> bool {
        self.commands.is_empty()
    }
}

/// Replies on their way back from another core.
pub struct Pending {
    rx: local_channel::LocalReceiver<Vec<Reply>>,
    n: usize,
}

impl Pending {
    /// The replies, in the order of the commands sent.
    pub async fn wait(self) -> Vec<Reply> {
        match self.rx.recv().await {
            Some(replies) => replies,
            // Only when the node is tearing down its mesh.
            None => vec![Reply::Error(ShardError::Io("core channel closed".into())); self.n],
        }
    }
}

/// Everything one core owns. Lives in an `Rc` on its executor; never crosses threads.
pub struct Core {
    /// This core's index, which is also its shard number.
    pub id: usize,
    /// Number of cores (= shards).
    pub count: usize,
    /// The shard.
    pub shard: RefCell<NodeShard>,
    /// Counters of every core (this core writes only its own).
    pub counters: Arc<Vec<CoreCounters>>,
    /// What `TOPOLOGY` answers.
    pub topology: Topology,
    /// Node settings.
    pub config: Config,
    /// Set once, by the signal thread, when the node must stop.
    pub shutdown: Arc<AtomicBool>,
    /// When the node started.
    pub started: Instant,
    /// This run of the node, the same on every core.
    pub run_id: RunId,
    /// The RESP port, once bound (`INFO` and `CONFIG GET port` report it).
    pub resp_port: Cell<Option<u16>>,
    requests: Senders<Forward>,
    replies: Senders<Returned>,
    waiting: RefCell<HashMap<u64, LocalSender<Vec<Reply>>>>,
    next_token: Cell<u64>,
    stop: StopBell,
}

/// Milliseconds between two looks at the stop flag (set by the signal thread).
const STOP_POLL_MS: u64 = 20;

/// Wakes its waiters once a flag set by another thread turns true, and not before.
/// One task per bell polls the flag and closes a semaphore that never has a permit.
///
/// Racing a socket operation against a polling loop instead would re-poll the socket
/// future every tick, and glommio 0.9 keeps one more waker per poll of a pending socket
/// operation: after 32767 ticks (about 11 minutes of an accept loop without a
/// connection) the task's reference count overflowed, the listener's task panicked and
/// the port stopped answering.
pub(crate) struct StopBell {
    flag: Arc<AtomicBool>,
    bell: Rc<glommio::sync::Semaphore>,
    watching: Cell<bool>,
}

impl StopBell {
    pub(crate) fn new(flag: Arc<AtomicBool>) -> StopBell {
        StopBell {
            flag,
            bell: Rc::new(glommio::sync::Semaphore::new(0)),
            watching: Cell::new(false),
        }
    }

    /// Resolves once the flag is set.
    pub(crate) async fn rung(&self) {
        if !self.watching.replace(true) {
            let (flag, bell) = (self.flag.clone(), self.bell.clone());
            glommio::spawn_local(async move {
                while !flag.load(Ordering::Relaxed) {
                    glommio::timer::sleep(Duration::from_millis(STOP_POLL_MS)).await;
                }
                bell.close();
            })
            .detach();
        }
        let _ = self.bell.acquire(1).await;
    }
}

impl Core {
    /// Builds the core once both meshes are joined.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: usize,
        count: usize,
        counters: Arc<Vec<CoreCounters>>,
        topology: Topology,
        config: Config,
        shutdown: Arc<AtomicBool>,
        shard: NodeShard,
        meshes: (Senders<Forward>, Senders<Returned>),
        run_id: RunId,
    ) -> Rc<Core> {
        let (requests, replies) = meshes;
        Rc::new(Core {
            id,
            count,
            shard: RefCell::new(shard),
            counters,
            topology,
            config,
            started: Instant::now(),
            run_id,
            resp_port: Cell::new(None),
            requests,
            replies,
            waiting: RefCell::new(HashMap::new()),
            next_token: Cell::new(1),
            stop: StopBell::new(shutdown.clone()),
            shutdown,
        })
    }

    /// This core's counters.
    pub fn counters(&self) -> &CoreCounters {
        &self.counters[self.id]
    }

    /// True once the node has been asked to stop.
    pub fn stopping(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Resolves when the node has been asked to stop, and wakes nothing before
    /// ([`StopBell`]).
    pub async fn stopped(&self) {
        self.stop.rung().await
    }

    /// Runs commands on this core's shard, in order, and answers once their writes (and
    /// any value they read) are as durable as `need` asks. Values the cache dropped are
    /// read back from the log first; no shard borrow is held across an await.
    pub async fn apply_batch(&self, commands: Vec<Command>, need: SyncNeed) -> Vec<Reply> {
        let log = self.shard.borrow().log().durable();
        let mut replies = Vec::with_capacity(commands.len());
        let mut writes = Vec::with_capacity(commands.len());
        let mut read_seq = 0;
        let first_seq = self.shard.borrow().last_seq();
        if commands.len() > 1 {
            self.shard.borrow().prefetch(&commands);
        }
        // One clock reading serves the commands applied back to back; a read from disk
        // lets time pass (and other connections run), so the clock is read again.
        let mut now = self.shard.borrow().now_ms();
        for cmd in commands {
            if let Some(log) = &log {
                match self.load_values(log, &cmd).await {
                    Ok(false) => {}
                    Ok(true) => now = self.shard.borrow().now_ms(),
                    Err(reply) => {
                        replies.push(reply);
                        writes.push(false);
                        continue;
                    }
                }
            }
            let write = cmd.is_write();
            writes.push(write);
            let reply = self.shard.borrow_mut().apply_at(cmd, now);
            let refused = match &reply {
                Reply::Error(ShardError::NoSpace) => true,
                // Not the I/O error of a value read back for the write (APPEND, INCR).
                Reply::Error(ShardError::Io(_)) => {
                    log.as_ref().is_some_and(|l| l.refuses_appends())
                }
                _ => false,
            };
            if write && refused {
                stats::bump(&self.counters().writes_refused);
            }
            // A key seen to exist is a read too: its write must be durable first.
            if let Reply::Value { version, .. } | Reply::Exists { version } = reply {
                read_seq = read_seq.max(version);
            }
            replies.push(reply);
        }
        let Some(log) = log else { return replies };
        let last_seq = self.shard.borrow().last_seq();
        // Wait for the batch's own writes, and for any value it read that is not on
        // disk yet: a client never sees a write that a crash could still take back.
        let wait_seq = if last_seq > first_seq {
            last_seq.max(read_seq)
        } else {
            read_seq
        };
        if wait_seq == 0 || need == SyncNeed::Skip {
            return replies;
        }
        let started = Instant::now();
        let result = match need {
            SyncNeed::Force => log.sync().await,
            _ => log.wait_durable(wait_seq).await,
        };
        let counters = self.counters();
        stats::bump(&counters.durable_waits);
        stats::add(
            &counters.durable_wait_us,
            started.elapsed().as_micros() as u64,
        );
        if let Err(e) = result {
            // None of this batch's writes is acknowledged. They were applied in memory,
            // so their outcome is unknown (as after a timeout), never a silent loss.
            let err = match durable::log_error(e) {
                crate::shard::LogError::NoSpace => ShardError::NoSpace,
                other => ShardError::Io(format!("{other:?}")),
            };
            // Nor is a value it read that is not on disk.
            let durable_seq = log.stats().durable_seq;
            for (reply, write) in replies.iter_mut().zip(writes) {
                let unsafe_read = matches!(
                    reply,
                    Reply::Value { version, .. } | Reply::Exists { version }
                        if *version > durable_seq
                );
                if (write && !matches!(reply, Reply::Error(_))) || unsafe_read {
                    stats::bump(&counters.durable_failures);
                    *reply = Reply::Error(err.clone());
                }
            }
        }
        replies
    }

    /// Reads back the value `cmd` needs if the cache dropped it; true when it read
    /// anything (time passed, and other connections may have run).
    async fn load_values(
        &self,
        log: &crate::storage::Log<crate::storage::DmaDisk>,
        cmd: &Command,
    ) -> Result<bool, Reply> {
        // A value can be dropped again by the loads of other connections while this one
        // waits; a few tries settle it, and the budget never drops the value just loaded.
        for tries in 0..4 {
            let Some(location) = self.shard.borrow().needs_fetch(cmd) else {
                return Ok(tries > 0);
            };
            stats::bump(&self.counters().value_fetches);
            match log.read(location).await {
                Ok(record) => self
                    .shard
                    .borrow_mut()
                    .install(&record.key, location, record.value),
                Err(e) => {
                    return Err(Reply::Error(ShardError::Io(format!(
                        "reading a value back from disk: {e}"
                    ))))
                }
            }
        }
        match self.shard.borrow().needs_fetch(cmd) {
            None => Ok(true),
            Some(_) => Err(Reply::Error(ShardError::Io(
                "value evicted while loading; retry".into(),
            ))),
        }
    }

    /// Sends commands to core `to`; await the returned [`Pending`] for the replies.
    /// Send to every core first, then wait, so the cores work in parallel.
    pub async fn forward(&self, to: usize, commands: Vec<Command>, need: SyncNeed) -> Pending {
        let n = commands.len();
        let token = self.next_token.get();
        self.next_token.set(token + 1);
        let (tx, rx) = local_channel::new_bounded(1);
        self.waiting.borrow_mut().insert(token, tx);
        stats::bump(&self.counters().forward_batches);
        stats::add(&self.counters().requests_forwarded, n as u64);
        if self
            .requests
            .send_to(
                to,
                Forward {
                    from: self.id,
                    token,
                    commands,
                    need,
                },
            )
            .await
            .is_err()
        {
            self.waiting.borrow_mut().remove(&token);
        }
        Pending { rx, n }
    }

    /// Runs every part on its shard: this core's inline, the others' as one batch per
    /// core, all sent before any is awaited. Replies come back in part order.
    pub async fn run(&self, parts: Parts, need: SyncNeed) -> Vec<Reply> {
        let core = self;
        if parts.commands.is_empty() {
            return Vec::new();
        }
        // All on this core (one core, or a shard-aware client): no regrouping.
        if parts.shard.iter().all(|&shard| shard == core.id) {
            return core.apply_batch(parts.commands, need).await;
        }
        let n = parts.commands.len();
        let mut per_core: Vec<Vec<usize>> = vec![Vec::new(); core.count];
        for (i, &shard) in parts.shard.iter().enumerate() {
            per_core[shard].push(i);
        }
        let mut commands: Vec<Option<Command>> = parts.commands.into_iter().map(Some).collect();
        let mut take = |indexes: &[usize]| -> Vec<Command> {
            indexes.iter().filter_map(|&i| commands[i].take()).collect()
        };
        // One message per destination core, split at FORWARD_BATCH_MAX commands (a
        // RESP MGET may name up to RESP_ARGS_MAX keys).
        let mut pending = Vec::new();
        for (to, indexes) in per_core.iter().enumerate() {
            if to != core.id {
                for chunk in indexes.chunks(FORWARD_BATCH_MAX as usize) {
                    pending.push((chunk, core.forward(to, take(chunk), need).await));
                }
            }
        }
        let mut replies: Vec<Option<Reply>> = vec![None; n];
        let local = core.apply_batch(take(&per_core[core.id]), need).await;
        for (&i, reply) in per_core[core.id].iter().zip(local) {
            replies[i] = Some(reply);
        }
        for (chunk, waiting) in pending {
            for (&i, reply) in chunk.iter().zip(waiting.wait().await) {
                replies[i] = Some(reply);
            }
        }
        replies
            .into_iter()
            .map(|r| r.unwrap_or(Reply::Error(ShardError::Io("reply lost".into()))))
            .collect()
    }

    /// Serves the commands other cores forward here, until the senders close.
    pub fn spawn_mesh_tasks(
        self: &Rc<Self>,
        mut requests: Receivers<Forward>,
        mut replies: Receivers<Returned>,
    ) {
        for (_, stream) in requests.streams() {
            let core = self.clone();
            glommio::spawn_local(async move {
                while let Some(batch) = stream.recv().await {
                    // One task per batch: while one waits for its flush, the next is
                    // applied and joins the same group commit.
                    let core = core.clone();
                    glommio::spawn_local(async move {
                        let replies = core.apply_batch(batch.commands, batch.need).await;
                        let back = Returned {
                            token: batch.token,
                            replies,
                        };
                        let _ = core.replies.send_to(batch.from, back).await;
                    })
                    .detach();
                }
            })
            .detach();
        }
        for (_, stream) in replies.streams() {
            let core = self.clone();
            glommio::spawn_local(async move {
                while let Some(returned) = stream.recv().await {
                    if let Some(tx) = core.waiting.borrow_mut().remove(&returned.token) {
                        // The waiter may be gone (its connection closed); that is fine.
                        let _ = tx.try_send(returned.replies);
                    }
                }
            })
            .detach();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use super::*;

    /// A future that never completes and counts how often it is polled.
    struct CountPolls(Rc<Cell<u32>>);

    impl Future for CountPolls {
        type Output = ();
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
            self.0.set(self.0.get() + 1);
            Poll::Pending
        }
    }

    #[test]
    fn a_stop_bell_wakes_its_racer_only_when_rung() {
        let handle = glommio::LocalExecutorBuilder::new(glommio::Placement::Unbound)
            .io_memory(512 * 1024)
            .spawn(|| async {
                let flag = Arc::new(AtomicBool::new(false));
                let bell = Rc::new(StopBell::new(flag.clone()));
                let polls = Rc::new(Cell::new(0));
                let racer = {
                    let (bell, polls) = (bell.clone(), polls.clone());
                    glommio::spawn_local(async move {
                        futures_lite::future::or(CountPolls(polls), bell.rung()).await;
                    })
                };
                glommio::timer::sleep(Duration::from_millis(30 * STOP_POLL_MS)).await;
                assert_eq!(polls.get(), 1, "the racer was woken before the bell rang");
                flag.store(true, Ordering::Relaxed);
                racer.await;
            })
            .expect("executor");
        handle.join().expect("join");
    }

    #[test]
    fn run_ids_are_40_hex_digits_and_differ_between_runs() {
        let (a, b) = (RunId::random(), RunId::random());
        assert_ne!(a, b);
        let hex = a.hex();
        assert_eq!(hex.len(), 40);
        assert!(hex
            .bytes()
            .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(hex, a.hex(), "the same id prints the same");
    }
}
