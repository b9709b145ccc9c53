//! Where requests go. A ringkv node is asked for its `TOPOLOGY` once, and every key is
//! then sent to its owner core's own port (the same routing the client library does),
//! so no request pays a cross-core hop. Redis and memcached have one address.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use super::driver::Protocol;
use crate::client::Client;
use crate::hash::shard_of;

/// The addresses of a target and how keys map to them.
#[derive(Clone, Debug)]
pub struct Target {
    /// One address per route: per shard for ringkv, a single one otherwise.
    pub addrs: Vec<SocketAddr>,
    /// Shard count when routing by key.
    pub shards: Option<u32>,
}

impl Target {
    /// Resolves `addr` and, for ringkv, learns the node's shard ports.
    pub fn discover(addr: &str, protocol: Protocol, timeout: Duration) -> Result<Target, String> {
        let resolved = addr
            .to_socket_addrs()
            .map_err(|e| format!("cannot resolve {addr}: {e}"))?
            .next()
            .ok_or_else(|| format!("{addr} resolves to no address"))?;
        if protocol != Protocol::Ringkv {
            return Ok(Target {
                addrs: vec![resolved],
                shards: None,
            });
        }
        let client = Client::connect(resolved, timeout)
            .map_err(|e| format!("cannot reach the ringkv node at {addr}: {e}"))?;
        let topology = client
            .topology()
            .ok_or_else(|| format!("{addr} did not describe its topology"))?;
        Ok(Target {
            addrs: topology
                .shard_ports
                .iter()
                .map(|&port| SocketAddr::new(resolved.ip(), port))
                .collect(),
            shards: Some(u32::from(topology.shard_count)),
        })
    }

    /// The route (index into `addrs`) of a key.
    pub fn route(&self, key: &[u8]) -> usize {
        match self.shards {
            Some(n) if n > 1 => shard_of(key, n) as usize,
            _ => 0,
        }
    }
}
