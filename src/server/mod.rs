//! The node: one pinned glommio executor per core, each owning one shard, its own
//! listening sockets, and its half of the channel mesh to the other cores.
//!
//! ```text
//!  main thread: bind sockets, lock data dir, spawn cores, print "ready", wait for a signal
//!      │
//!      ├── core 0 (CPU 0) ── shard 0 ── accepts on shared port (SO_REUSEPORT) + port+1
//!      │                                 + the RESP port (SO_REUSEPORT)
//!      ├── core 1 (CPU 1) ── shard 1 ── accepts on shared port (SO_REUSEPORT) + port+2
//!      │                                 + the RESP port (SO_REUSEPORT)
//!      └── ...        ▲ request mesh / reply mesh (glommio shared channels) ▼
//! ```
//! The main thread owns only start-up and shutdown; it never touches a shard.

pub mod core;
pub mod durable;
mod idle;
mod inbox;
pub mod native;
pub mod resp;
pub mod stats;

use std::fs::File;
use std::io::Write;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, RawFd};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use socket2::{Domain, Protocol, Socket, Type};

use self::core::{Core, Forward, Returned, RunId};
use self::stats::CoreCounters;
use crate::config::{Config, EvictionMode};
use crate::constants::{
    CORE_CHANNEL_CAPACITY, EXECUTOR_IO_MEMORY, EXPIRE_SWEEP_INTERVAL_MS, EXPIRE_SWEEP_SLOTS,
};
use crate::hash::HASH_CRC32C_MOD;
use crate::proto::op::encode_response;
use crate::proto::{Status, Topology};

/// How long a stopping node waits for connections to finish their current batch.
const SHUTDOWN_DRAIN_SECS: u64 = 10;

/// Listen backlog of every listening socket.
const LISTEN_BACKLOG: i32 = 1024;

/// What went wrong starting or running a node.
#[derive(Debug)]
pub struct ServerError(pub String);

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServerError {}

fn err(message: impl Into<String>) -> ServerError {
    ServerError(message.into())
}

/// An exclusive lock on the data directory, held for the life of the process.
pub struct DataDirLock {
    _file: File,
}

/// Creates the data directory if needed and locks it, so two nodes can never use it
/// at once. The second gets a clear error instead of a corrupted shard.
pub fn lock_data_dir(dir: &std::path::Path) -> Result<DataDirLock, ServerError> {
    std::fs::create_dir_all(dir)
        .map_err(|e| err(format!("cannot create data dir {}: {e}", dir.display())))?;
    let path = dir.join("LOCK");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(format!("cannot open {}: {e}", path.display())))?;
    // SAFETY: flock on a file descriptor we own; no memory is involved.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(err(format!(
            "data dir {} is in use by another ringkv process (lock {} is held)",
            dir.display(),
            path.display()
        )));
    }
    Ok(DataDirLock { _file: file })
}

/// The data dir's manifest: which format it holds and how many shards it was made
/// with. Keys are spread by `crc32c(key) mod shards`, so reopening a data dir with a
/// different shard count would lose every key: it is refused.
const MANIFEST_FILE: &str = "MANIFEST";

/// Whether any `shard-*` directory of `dir` holds log data (a segment or a hint): a
/// shard dir without any is what a start interrupted before its first write leaves.
fn shards_hold_data(dir: &std::path::Path) -> bool {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return false;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("shard-"))
        .filter_map(|e| std::fs::read_dir(e.path()).ok())
        .flatten()
        .filter_map(Result::ok)
        .any(|f| {
            let name = f.file_name();
            let name = name.to_string_lossy();
            name.starts_with("segment-") || name == crate::storage::HINT_FILE_NAME
        })
}

fn check_manifest(dir: &std::path::Path, cores: usize) -> Result<(), ServerError> {
    let path = dir.join(MANIFEST_FILE);
    let shard_dir = |k: usize| dir.join(format!("shard-{k}"));
    match std::fs::read_to_string(&path) {
        Ok(text) => {
            let field = |name: &str| {
                text.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .and_then(|n| n.trim().parse::<usize>().ok())
            };
            match (field("format "), field("shards ")) {
                (Some(1), Some(n)) if n == cores => {}
                (Some(1), Some(n)) => {
                    return Err(err(format!(
                        "data dir {} holds {n} shards; start the node with --cores {n} (the shard count of a data dir cannot change)",
                        dir.display()
                    )))
                }
                (Some(f), Some(_)) => {
                    return Err(err(format!(
                        "{} is of data dir format {f}; this ringkv reads format 1",
                        path.display()
                    )))
                }
                _ => return Err(err(format!("{} is not a ringkv manifest", path.display()))),
            }
            // A manifest is written only once its shard dirs exist: one missing was lost.
            if let Some(k) = (0..cores).find(|k| !shard_dir(*k).is_dir()) {
                return Err(err(format!(
                    "data dir {} lost {}: its keys would be gone; restore the directory \
                     (or move the data dir away to start empty)",
                    dir.display(),
                    shard_dir(k).display()
                )));
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if shards_hold_data(dir) {
                return Err(err(format!(
                    "data dir {} holds shard data but no {MANIFEST_FILE}: the shard \
                     count it was made with is unknown; restore the manifest (lines \
                     `ringkv data dir`, `format 1`, `shards N`)",
                    dir.display()
                )));
            }
            // Shard dirs first, the manifest last: a manifest always has its shards.
            let write = || -> std::io::Result<()> {
                for k in 0..cores {
                    std::fs::create_dir_all(shard_dir(k))?;
                }
                File::open(dir)?.sync_all()?;
                let tmp = dir.join("MANIFEST.tmp");
                let mut file = File::create(&tmp)?;
                file.write_all(format!("ringkv data dir\nformat 1\nshards {cores}\n").as_bytes())?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                File::open(dir)?.sync_all()
            };
            write().map_err(|e| err(format!("cannot write {}: {e}", path.display())))
        }
        Err(e) => Err(err(format!("cannot read {}: {e}", path.display()))),
    }
}

fn listener(addr: SocketAddr) -> Result<Socket, ServerError> {
    let domain = if addr.is_ipv6() {
        Domain::IPV6
    } else {
        Domain::IPV4
    };
    let socket = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| err(format!("socket: {e}")))?;
    socket
        .set_reuse_port(true)
        .map_err(|e| err(format!("SO_REUSEPORT: {e}")))?;
    socket
        .set_reuse_address(true)
        .map_err(|e| err(format!("SO_REUSEADDR: {e}")))?;
    socket
        .bind(&addr.into())
        .map_err(|e| err(format!("cannot bind {addr}: {e}")))?;
    socket
        .listen(LISTEN_BACKLOG)
        .map_err(|e| err(format!("cannot listen on {addr}: {e}")))?;
    Ok(socket)
}

fn local_port(socket: &Socket) -> Result<u16, ServerError> {
    socket
        .local_addr()
        .ok()
        .and_then(|a| a.as_socket())
        .map(|a| a.port())
        .ok_or_else(|| err("cannot read a bound socket's port"))
}

/// Listening sockets for every core: each core's copy of the shared port, its own,
/// and its copy of the RESP port.
struct Listeners {
    shared: Vec<Socket>,
    own: Vec<Socket>,
    resp: Vec<Option<Socket>>,
    shared_port: u16,
    own_ports: Vec<u16>,
    resp_port: Option<u16>,
}

fn bind_all(config: &Config, cores: usize) -> Result<Listeners, ServerError> {
    let first = listener(SocketAddr::new(config.bind, config.port))?;
    let shared_port = local_port(&first)?;
    let mut shared = vec![first];
    for _ in 1..cores {
        shared.push(listener(SocketAddr::new(config.bind, shared_port))?);
    }
    let mut own = Vec::with_capacity(cores);
    let mut own_ports = Vec::with_capacity(cores);
    for core in 0..cores {
        let port = match &config.core_ports {
            Some(ports) => ports[core],
            None if config.port == 0 => 0,
            None => config
                .port
                .checked_add(1 + core as u16)
                .ok_or_else(|| err("per-core ports overflow u16"))?,
        };
        let socket = listener(SocketAddr::new(config.bind, port))?;
        own_ports.push(local_port(&socket)?);
        own.push(socket);
    }
    // One RESP socket per core on the same port: the kernel spreads connections
    // over the cores (SO_REUSEPORT), and each core routes keys it does not own.
    let mut resp = Vec::with_capacity(cores);
    let mut resp_port = None;
    if let Some(port) = config.resp_port {
        let first = listener(SocketAddr::new(config.bind, port))?;
        let port = local_port(&first)?;
        resp.push(Some(first));
        for _ in 1..cores {
            resp.push(Some(listener(SocketAddr::new(config.bind, port))?));
        }
        resp_port = Some(port);
    } else {
        resp.resize_with(cores, || None);
    }
    Ok(Listeners {
        shared,
        own,
        resp,
        shared_port,
        own_ports,
        resp_port,
    })
}

/// Blocks SIGINT and SIGTERM in this thread (and the threads it spawns afterwards), so
/// only the main thread receives them, synchronously, with [`wait_for_signal`].
fn block_signals() -> libc::sigset_t {
    // SAFETY: plain libc signal-mask calls on a sigset we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

fn wait_for_signal(set: &libc::sigset_t) -> i32 {
    let mut signal = 0;
    // SAFETY: sigwait on a valid, initialised set.
    unsafe { libc::sigwait(set, &mut signal) };
    signal
}

/// Starts a node and runs it until SIGINT or SIGTERM; then drains and returns.
pub fn run(config: Config) -> Result<(), ServerError> {
    config.validate().map_err(ServerError)?;
    let online = glommio::CpuSet::online()
        .map(|s| s.len())
        .unwrap_or(1)
        .max(1);
    let cores = config.cores.map_or(online, |c| c as usize);
    let _lock = lock_data_dir(&config.data_dir)?;
    if config.eviction == EvictionMode::None {
        check_manifest(&config.data_dir, cores)?;
    }
    let listeners = bind_all(&config, cores)?;
    let topology = Topology {
        shard_count: cores as u16,
        hash: HASH_CRC32C_MOD,
        shared_port: listeners.shared_port,
        shard_ports: listeners.own_ports.clone(),
    };

    let signals = block_signals();
    let shutdown = Arc::new(AtomicBool::new(false));
    let drained = Arc::new(AtomicUsize::new(0));
    let connections = Arc::new(AtomicU32::new(0));
    // One id for the whole run: every core reports the same one.
    let run_id = RunId::random();
    let counters: Arc<Vec<CoreCounters>> =
        Arc::new((0..cores).map(|_| CoreCounters::default()).collect());
    let requests: MeshBuilder<Forward, _> = MeshBuilder::full(cores, CORE_CHANNEL_CAPACITY);
    let replies: MeshBuilder<Returned, _> = MeshBuilder::full(cores, CORE_CHANNEL_CAPACITY);
    let (ready_tx, ready_rx) = mpsc::channel::<Result<usize, String>>();

    let mut handles = Vec::with_capacity(cores);
    let sockets = listeners
        .shared
        .into_iter()
        .zip(listeners.own)
        .zip(listeners.resp);
    for (id, ((shared, own), resp)) in sockets.enumerate() {
        let core_args = CoreArgs {
            id,
            cores,
            counters: counters.clone(),
            topology: topology.clone(),
            config: config.clone(),
            shutdown: shutdown.clone(),
            drained: drained.clone(),
            connections: connections.clone(),
            shared_fd: shared.into_raw_fd(),
            own_fd: own.into_raw_fd(),
            resp_fd: resp.map(IntoRawFd::into_raw_fd),
            resp_port: listeners.resp_port,
            run_id,
        };
        let (requests, replies, ready) = (requests.clone(), replies.clone(), ready_tx.clone());
        let handle = LocalExecutorBuilder::new(Placement::Fixed(id % online))
            .name(&format!("ringkv-core-{id}"))
            .io_memory(EXECUTOR_IO_MEMORY)
            .spawn(move || run_core(core_args, requests, replies, ready))
            .map_err(|e| {
                err(format!(
                    "cannot start core {id}: {e} (is `ulimit -l` at least 8 MiB?)"
                ))
            })?;
        handles.push(handle);
    }
    drop(ready_tx);
    for _ in 0..cores {
        match ready_rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(message)) => return Err(err(message)),
            Err(_) => return Err(err("a core stopped during start-up")),
        }
    }
    let ports: Vec<String> = topology.shard_ports.iter().map(u16::to_string).collect();
    let resp = match listeners.resp_port {
        Some(port) => format!("resp port {port}"),
        None => "resp off".to_string(),
    };
    println!(
        "ringkv {} ready: native port {} on {}, per-core ports {}, {} cores, data dir {}, {resp}",
        env!("CARGO_PKG_VERSION"),
        topology.shared_port,
        config.bind,
        ports.join(","),
        cores,
        config.data_dir.display()
    );
    let _ = std::io::stdout().flush();

    let signal = wait_for_signal(&signals);
    eprintln!("ringkv: signal {signal} received, draining connections");
    shutdown.store(true, Ordering::SeqCst);
    for handle in handles {
        handle
            .join()
            .map_err(|e| err(format!("core failed: {e}")))?;
    }
    eprintln!("ringkv: stopped");
    Ok(())
}

/// What a core thread is handed at start.
struct CoreArgs {
    id: usize,
    cores: usize,
    counters: Arc<Vec<CoreCounters>>,
    topology: Topology,
    config: Config,
    shutdown: Arc<AtomicBool>,
    drained: Arc<AtomicUsize>,
    connections: Arc<AtomicU32>,
    shared_fd: RawFd,
    own_fd: RawFd,
    resp_fd: Option<RawFd>,
    resp_port: Option<u16>,
    run_id: RunId,
}

async fn run_core(
    args: CoreArgs,
    requests: MeshBuilder<Forward, glommio::channels::channel_mesh::Full>,
    replies: MeshBuilder<Returned, glommio::channels::channel_mesh::Full>,
    ready: mpsc::Sender<Result<usize, String>>,
) {
    let (Ok((req_tx, req_rx)), Ok((rep_tx, rep_rx))) =
        (requests.join().await, replies.join().await)
    else {
        let _ = ready.send(Err(format!(
            "core {} could not join the channel mesh",
            args.id
        )));
        return;
    };
    let shard = match durable::open_shard(&args.config, args.id, args.cores).await {
        Ok(shard) => shard,
        Err(message) => {
            let _ = ready.send(Err(message));
            return;
        }
    };
    let core = Core::new(
        args.id,
        args.cores,
        args.counters,
        args.topology,
        args.config,
        args.shutdown.clone(),
        shard,
        (req_tx, rep_tx),
        args.run_id,
    );
    core.resp_port.set(args.resp_port);
    core.spawn_mesh_tasks(req_rx, rep_rx);
    spawn_sweeper(&core);
    let executor = glommio::executor();
    // Flushing is on the request path (writers wait for it); compaction is not.
    let latency = executor.create_task_queue(
        glommio::Shares::Static(1000),
        glommio::Latency::Matters(Duration::from_millis(1)),
        "latency",
    );
    let background = executor.create_task_queue(
        glommio::Shares::Static(50),
        glommio::Latency::NotImportant,
        "background",
    );
    durable::spawn_log_tasks(&core, latency, background);
    // SAFETY: each fd is a listening socket bound in `bind_all`, owned by this core alone.
    let shared = unsafe { TcpListener::from_raw_fd(args.shared_fd) };
    let own = unsafe { TcpListener::from_raw_fd(args.own_fd) };
    let resp = args
        .resp_fd
        .map(|fd| unsafe { TcpListener::from_raw_fd(fd) });
    let _ = ready.send(Ok(args.id));

    let gate = Rc::new(glommio::sync::Gate::new());
    let listeners = [(shared, Front::Native), (own, Front::Native)]
        .into_iter()
        .chain(resp.map(|l| (l, Front::Resp)));
    let accepting: Vec<_> = listeners
        .map(|(listener, front)| {
            glommio::spawn_local(accept_loop(
                core.clone(),
                listener,
                front,
                gate.clone(),
                args.connections.clone(),
            ))
        })
        .collect();
    for task in accepting {
        task.await;
    }
    let drain = futures_lite::future::or(async { gate.close().await.is_ok() }, async {
        glommio::timer::sleep(Duration::from_secs(SHUTDOWN_DRAIN_SECS)).await;
        false
    });
    if !drain.await {
        eprintln!(
            "ringkv: core {} gave up waiting for connections after {SHUTDOWN_DRAIN_SECS}s",
            args.id
        );
    }
    // Keep answering other cores' forwarded commands until every core has drained.
    args.drained.fetch_add(1, Ordering::SeqCst);
    while args.drained.load(Ordering::SeqCst) < args.cores {
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    durable::close_shard(&core).await;
}

/// Which protocol a listener speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Front {
    Native,
    Resp,
}

/// Accepts connections until the node stops.
async fn accept_loop(
    core: Rc<Core>,
    listener: TcpListener,
    front: Front,
    gate: Rc<glommio::sync::Gate>,
    open: Arc<AtomicU32>,
) {
    let idle = Duration::from_secs(core.config.idle_timeout_secs);
    loop {
        let accepted = futures_lite::future::or(async { Some(listener.accept().await) }, async {
            core.stopped().await;
            None
        })
        .await;
        let stream = match accepted {
            None => break,
            Some(Ok(stream)) => stream,
            Some(Err(e)) => {
                // EMFILE and friends: back off instead of spinning.
                eprintln!("ringkv: accept failed on core {}: {e}", core.id);
                glommio::timer::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let counters = core.counters();
        if open.fetch_add(1, Ordering::SeqCst) >= core.config.max_connections {
            open.fetch_sub(1, Ordering::SeqCst);
            stats::bump(&counters.connections_rejected);
            glommio::spawn_local(refuse_connection(stream, front)).detach();
            continue;
        }
        stats::bump(&counters.connections_total);
        stats::bump(&counters.connections_current);
        let _ = stream.set_nodelay(true);
        // The idle timeout of reads is the connection's watch (idle.rs); a peer that
        // stops reading its answers meets the write timeout.
        let _ = stream.set_write_timeout(Some(idle));
        let (conn_core, conn_open) = (core.clone(), open.clone());
        let spawned = gate.spawn(async move {
            match front {
                Front::Native => native::serve(conn_core.clone(), stream).await,
                Front::Resp => resp::serve(conn_core.clone(), stream).await,
            }
            conn_open.fetch_sub(1, Ordering::SeqCst);
            stats::drop_one(&conn_core.counters().connections_current);
        });
        if let Ok(task) = spawned {
            task.detach();
        }
    }
}

/// Tells a connection over the limit why it is closed, then closes it.
async fn refuse_connection(mut stream: glommio::net::TcpStream, front: Front) {
    use futures_lite::AsyncWriteExt;
    let mut out = bytes::BytesMut::new();
    match front {
        Front::Native => encode_response(
            &mut out,
            0,
            0,
            Status::Busy,
            0,
            &[],
            b"too many connections (max-connections reached)",
        ),
        // What Redis sends past `maxclients`.
        Front::Resp => out.extend_from_slice(b"-ERR max number of clients reached\r\n"),
    }
    let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
    let _ = stream.write_all(&out).await;
    let _ = stream.close().await;
}

/// Removes expired keys in the background, a bounded number of slots per round.
fn spawn_sweeper(core: &Rc<Core>) {
    let core = core.clone();
    glommio::spawn_local(async move {
        while !core.stopping() {
            glommio::timer::sleep(Duration::from_millis(EXPIRE_SWEEP_INTERVAL_MS)).await;
            core.shard.borrow_mut().sweep_expired(EXPIRE_SWEEP_SLOTS);
        }
    })
    .detach();
}
