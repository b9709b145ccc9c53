//! Node settings: defaults, a TOML file whose keys mirror the command-line flags, and
//! the flags themselves, applied in that order.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::Deserialize;

use crate::constants::{
    CONNECTIONS_MAX_DEFAULT, CORES_MAX, IDLE_TIMEOUT_SECS_DEFAULT, PORT_DEFAULT, RESP_PORT_DEFAULT,
};

/// When a write is acknowledged.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Durability {
    /// After it is on disk (fdatasync); writes waiting together share one flush.
    Sync,
    /// At once; the log is flushed and synced every `flush-interval-ms` (a crash loses
    /// at most that much acknowledged data, like Redis `appendfsync everysec`).
    Periodic,
    /// At once; the log is written lazily and never synced by ringkv (the OS decides).
    None,
}

/// What a node does when its memory budget (`cache-size-mib`) is reached.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum EvictionMode {
    /// Durable store: drop cached values (they are read back from disk); keys stay.
    None,
    /// Pure cache, memcached-style: nothing is written to disk and least recently used
    /// keys are dropped.
    Lru,
}

/// Everything a node needs to start.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", default)]
pub struct Config {
    /// Address the listeners bind to.
    pub bind: IpAddr,
    /// Shared native port (0 picks a free one); per-core ports are `port + 1 + core`.
    pub port: u16,
    /// Per-core ports: `None` = `port + 1 + core` (or free ones when `port` is 0).
    pub core_ports: Option<Vec<u16>>,
    /// Number of cores (= shards); `None` = every online CPU.
    pub cores: Option<u32>,
    /// Directory holding the node's data and its lock file.
    pub data_dir: PathBuf,
    /// Most client connections the node accepts at once.
    pub max_connections: u32,
    /// Seconds a connection may be silent, stall mid-frame, or not read before it is closed.
    pub idle_timeout_secs: u64,
    /// When writes are acknowledged.
    pub durability: Durability,
    /// Milliseconds between flushes in `periodic` durability.
    pub flush_interval_ms: u64,
    /// Size of each log segment file, in MiB.
    pub segment_size_mib: u32,
    /// Memory for cached values (or, with `eviction = lru`, for keys and values), in
    /// MiB, for the whole node; each core gets an equal share.
    pub cache_size_mib: u64,
    /// What goes when the cache budget is reached.
    pub eviction: EvictionMode,
    /// A log segment is compacted once this percentage of it is garbage.
    pub compact_garbage_percent: u32,
    /// Seconds between periodic hints (checkpoints of the index) of each shard, written
    /// when the log has grown since the last one; a hint is also written early once the
    /// records since the last one reach half the shard's keys (at least 100 000), and
    /// always at a clean shutdown. 0: only at a clean shutdown.
    pub hint_interval_secs: u64,
    /// Redis-protocol port shared by all cores (0 picks a free one); `None` serves no
    /// RESP. In TOML: `resp-port = 6380`, or `resp-port = "off"`.
    #[serde(deserialize_with = "resp_port")]
    pub resp_port: Option<u16>,
}

/// `resp-port` in TOML: a port number, or the string `"off"`.
fn resp_port<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Port {
        Number(u16),
        Word(String),
    }
    match Port::deserialize(d)? {
        Port::Number(port) => Ok(Some(port)),
        Port::Word(word) if word == "off" => Ok(None),
        Port::Word(word) => Err(serde::de::Error::custom(format!(
            "resp-port must be a port number or \"off\", got \"{word}\""
        ))),
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: IpAddr::from([127, 0, 0, 1]),
            port: PORT_DEFAULT,
            core_ports: None,
            cores: None,
            data_dir: PathBuf::from("./ringkv-data"),
            max_connections: CONNECTIONS_MAX_DEFAULT,
            idle_timeout_secs: IDLE_TIMEOUT_SECS_DEFAULT,
            durability: Durability::Sync,
            flush_interval_ms: 1000,
            segment_size_mib: 64,
            cache_size_mib: 1024,
            eviction: EvictionMode::None,
            compact_garbage_percent: 33,
            hint_interval_secs: 60,
            resp_port: Some(RESP_PORT_DEFAULT),
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are an error, missing ones keep their default.
    pub fn from_file(path: &std::path::Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        toml::from_str(&text).map_err(|e| format!("invalid config {}: {e}", path.display()))
    }

    /// Checks the settings against the limits; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        if let Some(cores) = self.cores {
            if cores == 0 || cores > CORES_MAX {
                return Err(format!(
                    "cores must be between 1 and {CORES_MAX}, got {cores}"
                ));
            }
        }
        if self.max_connections == 0 {
            return Err("max-connections must be at least 1".into());
        }
        if self.idle_timeout_secs == 0 {
            return Err("idle-timeout-secs must be at least 1".into());
        }
        if self.flush_interval_ms == 0 {
            return Err("flush-interval-ms must be at least 1".into());
        }
        if !(1..=1024).contains(&self.segment_size_mib) {
            return Err(format!(
                "segment-size-mib must be between 1 and 1024, got {}",
                self.segment_size_mib
            ));
        }
        if self.compact_garbage_percent == 0 || self.compact_garbage_percent > 100 {
            return Err("compact-garbage-percent must be between 1 and 100".into());
        }
        if let (Some(ports), Some(cores)) = (&self.core_ports, self.cores) {
            if ports.len() != cores as usize {
                return Err(format!(
                    "core-ports lists {} ports for {cores} cores",
                    ports.len()
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_keys_mirror_flags() {
        let config: Config =
            toml::from_str("port = 9000\ncores = 2\ndata-dir = \"/tmp/x\"\nidle-timeout-secs = 5")
                .unwrap();
        assert_eq!(config.port, 9000);
        assert_eq!(config.cores, Some(2));
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.max_connections, CONNECTIONS_MAX_DEFAULT);
        assert!(
            toml::from_str::<Config>("prot = 1").is_err(),
            "unknown keys are refused"
        );
    }

    #[test]
    fn resp_port_is_a_number_or_off() {
        assert_eq!(Config::default().resp_port, Some(RESP_PORT_DEFAULT));
        let on: Config = toml::from_str("resp-port = 0").unwrap();
        assert_eq!(on.resp_port, Some(0));
        let off: Config = toml::from_str("resp-port = \"off\"").unwrap();
        assert_eq!(off.resp_port, None);
        assert!(toml::from_str::<Config>("resp-port = \"no\"").is_err());
        assert!(toml::from_str::<Config>("resp-port = 70000").is_err());
    }

    #[test]
    fn validate_refuses_nonsense() {
        assert!(Config {
            cores: Some(0),
            ..Config::default()
        }
        .validate()
        .is_err());
        assert!(Config {
            max_connections: 0,
            ..Config::default()
        }
        .validate()
        .is_err());
        assert!(Config::default().validate().is_ok());
    }
}
