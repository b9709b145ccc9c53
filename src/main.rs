//! The `ringkv` binary: `serve` runs a node; the other subcommands are a client.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use ringkv::client::{Client, Error};
use ringkv::config::Config;
use ringkv::proto::Status;

mod uring_flags;

#[derive(Parser)]
#[command(name = "ringkv", version, about = "A thread-per-core key-value node")]
struct Cli {
    #[command(flatten)]
    target: Target,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Target {
    /// Node address (its shared native port).
    #[arg(long, default_value = "127.0.0.1:7878", global = true)]
    addr: String,
    /// Seconds to wait for the node (default 5). For bench: the reply timeout, in
    /// place of --timeout-ms (default 2000 ms there).
    #[arg(long, global = true)]
    timeout: Option<u64>,
}

/// Seconds a client command waits for the node without `--timeout`.
const CLIENT_TIMEOUT_SECS_DEFAULT: u64 = 5;

#[derive(Subcommand)]
enum Cmd {
    /// Run a node.
    Serve(ServeArgs),
    /// Check the node answers.
    Ping,
    /// Print a key's value.
    Get { key: String },
    /// Write a key.
    Set {
        key: String,
        value: String,
        /// Time to live in seconds.
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Write a key only if it is absent.
    Insert {
        key: String,
        value: String,
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Write a key only if it is present.
    Update {
        key: String,
        value: String,
        #[arg(long)]
        ttl: Option<u64>,
    },
    /// Write (or with --delete, delete) a key only if its version matches.
    Cas {
        key: String,
        /// The version the stored value must have.
        version: u64,
        /// New value (not with --delete).
        value: Option<String>,
        #[arg(long)]
        ttl: Option<u64>,
        #[arg(long)]
        delete: bool,
    },
    /// Delete a key.
    Del { key: String },
    /// Print several keys' values.
    Mget { keys: Vec<String> },
    /// Write several keys: KEY VALUE [KEY VALUE ...].
    Mset { pairs: Vec<String> },
    /// Set a key's time to live in seconds.
    Expire { key: String, secs: u64 },
    /// Remove a key's time to live.
    Persist { key: String },
    /// Print a key's remaining time to live in seconds (-1: none).
    Ttl { key: String },
    /// Add to a counter.
    Incr {
        key: String,
        #[arg(default_value_t = 1)]
        delta: i64,
    },
    /// Subtract from a counter.
    Decr {
        key: String,
        #[arg(default_value_t = 1)]
        delta: i64,
    },
    /// List keys, optionally only those with a prefix.
    Scan {
        #[arg(long, default_value = "")]
        prefix: String,
    },
    /// Print node statistics.
    Stats,
    /// Print the shard count, hash function and ports.
    Topology,
    /// Load generator (memtier-style) for ringkv, Redis and memcached.
    ///
    /// Exit status: 0 when the run was made, even if some requests failed (they are
    /// counted in the table and the JSON); 1 when --verify found a problem or no
    /// request succeeded (every one failed or timed out: the wrong --protocol for
    /// the port, a dead server), with the reason on stderr; 2 when the run could not
    /// be made (bad flags, no server to start with). A run that was made always
    /// prints its table and writes its --json-out.
    Bench(ringkv::bench::BenchArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// TOML config file; its keys mirror these flags (kebab-case). Flags win.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Native port shared by all cores (0 = pick a free one).
    #[arg(long)]
    port: Option<u16>,
    /// Address to bind.
    #[arg(long)]
    bind: Option<std::net::IpAddr>,
    /// Number of cores (= shards); default every online CPU.
    #[arg(long)]
    cores: Option<u32>,
    /// Data directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Most client connections at once.
    #[arg(long)]
    max_connections: Option<u32>,
    /// Seconds before a silent, stalled or non-reading connection is closed.
    #[arg(long)]
    idle_timeout_secs: Option<u64>,
    /// When writes are acknowledged: sync (on disk, group commit), periodic, none.
    #[arg(long, value_enum)]
    durability: Option<ringkv::config::Durability>,
    /// Milliseconds between flushes with --durability periodic.
    #[arg(long)]
    flush_interval_ms: Option<u64>,
    /// Log segment size in MiB.
    #[arg(long)]
    segment_size_mib: Option<u32>,
    /// Memory for cached values (with --eviction lru: keys and values), MiB per node.
    #[arg(long)]
    cache_size_mib: Option<u64>,
    /// none: durable store, values beyond the cache are read from disk; lru: pure
    /// in-memory cache that drops least recently used keys.
    #[arg(long, value_enum)]
    eviction: Option<ringkv::config::EvictionMode>,
    /// Compact a log segment once this percentage of it is garbage (default 33: sealed
    /// segments then stay within 1.5x the live data they hold).
    #[arg(long)]
    compact_garbage_percent: Option<u32>,
    /// Seconds between periodic hints (index checkpoints that shorten a restart after a
    /// crash); 0 = only at a clean shutdown.
    #[arg(long)]
    hint_interval_secs: Option<u64>,
    /// Redis-protocol (RESP2/RESP3) port shared by all cores (default 6380; 0 = pick
    /// a free one).
    #[arg(long, conflicts_with = "no_resp")]
    resp_port: Option<u16>,
    /// Serve no Redis protocol (TOML: `resp-port = "off"`).
    #[arg(long)]
    no_resp: bool,
}

fn serve(args: ServeArgs) -> Result<(), String> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.port {
        config.port = v;
    }
    if let Some(v) = args.bind {
        config.bind = v;
    }
    if let Some(v) = args.cores {
        config.cores = Some(v);
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    if let Some(v) = args.max_connections {
        config.max_connections = v;
    }
    if let Some(v) = args.idle_timeout_secs {
        config.idle_timeout_secs = v;
    }
    if let Some(v) = args.durability {
        config.durability = v;
    }
    if let Some(v) = args.flush_interval_ms {
        config.flush_interval_ms = v;
    }
    if let Some(v) = args.segment_size_mib {
        config.segment_size_mib = v;
    }
    if let Some(v) = args.cache_size_mib {
        config.cache_size_mib = v;
    }
    if let Some(v) = args.eviction {
        config.eviction = v;
    }
    if let Some(v) = args.compact_garbage_percent {
        config.compact_garbage_percent = v;
    }
    if let Some(v) = args.hint_interval_secs {
        config.hint_interval_secs = v;
    }
    if let Some(v) = args.resp_port {
        config.resp_port = Some(v);
    }
    if args.no_resp {
        config.resp_port = None;
    }
    ringkv::server::run(config).map_err(|e| e.to_string())
}

/// Outcome of a client command: printed output, or a miss (exit 1).
enum Outcome {
    Print(String),
    Missing(String),
}

fn ttl(secs: Option<u64>) -> Option<Duration> {
    secs.map(Duration::from_secs)
}

fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn client_command(target: &Target, command: Cmd) -> Result<Outcome, Error> {
    let timeout = target.timeout.unwrap_or(CLIENT_TIMEOUT_SECS_DEFAULT);
    let mut c = Client::connect(target.addr.as_str(), Duration::from_secs(timeout))?;
    use Outcome::*;
    Ok(match command {
        Cmd::Serve(_) | Cmd::Bench(_) => unreachable!("handled in main"),
        Cmd::Ping => {
            c.ping()?;
            Print("PONG".into())
        }
        Cmd::Get { key } => match c.get(key.as_bytes())? {
            Some((value, _)) => Print(show(&value)),
            None => Missing(key),
        },
        Cmd::Set { key, value, ttl: t } => Print(format!(
            "OK version {}",
            c.set(key.as_bytes(), value.as_bytes(), ttl(t))?
        )),
        Cmd::Insert { key, value, ttl: t } => Print(format!(
            "OK version {}",
            c.insert(key.as_bytes(), value.as_bytes(), ttl(t))?
        )),
        Cmd::Update { key, value, ttl: t } => Print(format!(
            "OK version {}",
            c.update(key.as_bytes(), value.as_bytes(), ttl(t))?
        )),
        Cmd::Cas {
            key,
            version,
            value,
            ttl: t,
            delete,
        } => {
            if delete {
                c.cas_delete(key.as_bytes(), version)?;
                Print("OK".into())
            } else {
                let value = value
                    .ok_or_else(|| Error::Invalid("cas needs a VALUE unless --delete".into()))?;
                Print(format!(
                    "OK version {}",
                    c.cas(key.as_bytes(), value.as_bytes(), version, ttl(t))?
                ))
            }
        }
        Cmd::Del { key } => match c.delete(key.as_bytes())? {
            true => Print("OK".into()),
            false => Missing(key),
        },
        Cmd::Mget { keys } => {
            let refs: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
            let lines: Vec<String> = c
                .mget(&refs)?
                .iter()
                .map(|e| e.as_ref().map_or("(nil)".to_string(), |(v, _)| show(v)))
                .collect();
            Print(lines.join("\n"))
        }
        Cmd::Mset { pairs } => {
            if pairs.is_empty() || pairs.len() % 2 != 0 {
                return Err(Error::Invalid("mset takes KEY VALUE pairs".into()));
            }
            let refs: Vec<(&[u8], &[u8])> = pairs
                .chunks(2)
                .map(|p| (p[0].as_bytes(), p[1].as_bytes()))
                .collect();
            c.mset(&refs, None)?;
            Print("OK".into())
        }
        Cmd::Expire { key, secs } => match c.expire(key.as_bytes(), Duration::from_secs(secs))? {
            true => Print("OK".into()),
            false => Missing(key),
        },
        Cmd::Persist { key } => match c.persist(key.as_bytes())? {
            Some(_) => Print("OK".into()),
            None => Missing(key),
        },
        Cmd::Ttl { key } => match c.ttl(key.as_bytes())? {
            Some(Some(d)) => Print(d.as_secs_f64().ceil().to_string()),
            Some(None) => Print("-1".into()),
            None => Missing(key),
        },
        Cmd::Incr { key, delta } => Print(c.incr(key.as_bytes(), delta)?.to_string()),
        Cmd::Decr { key, delta } => {
            let delta = delta
                .checked_neg()
                .ok_or_else(|| Error::Invalid("delta out of range".into()))?;
            Print(c.incr(key.as_bytes(), delta)?.to_string())
        }
        Cmd::Scan { prefix } => Print(
            c.scan_all(prefix.as_bytes())?
                .iter()
                .map(|k| show(k))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Cmd::Stats => Print(
            c.stats()?
                .iter()
                .map(|(k, v)| format!("{k} {v}"))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        Cmd::Topology => {
            let t = c
                .topology()
                .cloned()
                .ok_or_else(|| Error::Protocol("no topology".into()))?;
            let ports: Vec<String> = t.shard_ports.iter().map(u16::to_string).collect();
            Print(format!(
                "shards {}\nhash crc32c-mod\nshared_port {}\nshard_ports {}",
                t.shard_count,
                t.shared_port,
                ports.join(",")
            ))
        }
    })
}

fn main() -> ExitCode {
    uring_flags::enable();
    let cli = Cli::parse();
    match cli.command {
        Cmd::Serve(args) => match serve(args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("ringkv: {message}");
                ExitCode::from(2)
            }
        },
        Cmd::Bench(args) => ringkv::bench::main(&cli.target.addr, cli.target.timeout, args),
        command => match client_command(&cli.target, command) {
            Ok(Outcome::Print(text)) => {
                if !text.is_empty() {
                    println!("{text}");
                }
                ExitCode::SUCCESS
            }
            Ok(Outcome::Missing(key)) => {
                eprintln!("ringkv: key not found: {key}");
                ExitCode::from(1)
            }
            Err(e) => {
                let code = if e.status() == Some(Status::NotFound) {
                    1
                } else {
                    2
                };
                eprintln!("ringkv: {e}");
                ExitCode::from(code)
            }
        },
    }
}
