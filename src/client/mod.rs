//! Clients of the native protocol.
//!
//! - [`Client`]: blocking, shard-aware. It asks the node for its `TOPOLOGY` and keeps
//!   one connection per core, so each key goes straight to the core that owns it and no
//!   request pays a cross-core hop. Explicit pipelining with [`Client::pipeline`].
//! - [`glommio::AsyncConn`]: one connection for code running on a glommio executor
//!   (the load generator).
//!
//! ```no_run
//! use std::time::Duration;
//! use ringkv::client::Client;
//!
//! let mut client = Client::connect("127.0.0.1:7878", Duration::from_secs(2))?;
//! let version = client.set(b"greeting", b"hello", None)?;
//! let (value, v) = client.get(b"greeting")?.expect("just written");
//! assert_eq!((&value[..], v), (&b"hello"[..], version));
//! # Ok::<(), ringkv::client::Error>(())
//! ```

pub mod conn;
pub mod glommio;

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use bytes::Bytes;

pub use conn::Conn;

use crate::hash::{shard_of, HASH_CRC32C_MOD};
use crate::proto::{Request, Response, SetMode, Status, Topology};

/// Everything a client call can fail with.
#[derive(Debug)]
pub enum Error {
    /// Could not connect.
    Connect {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing failed (timeouts are `TimedOut`/`WouldBlock` I/O errors).
    Io(std::io::Error),
    /// The server closed the connection.
    Closed,
    /// The server sent something that is not valid protocol.
    Protocol(String),
    /// The request was refused before sending (too large, empty batch, ...).
    Invalid(String),
    /// The server answered with a non-OK status.
    Status {
        /// The status.
        status: Status,
        /// The server's message, if any.
        message: String,
        /// The version in the response (current version on `EXISTS`/`VERSION_MISMATCH`).
        version: u64,
    },
}

impl Error {
    fn from_io(source: std::io::Error, addr: SocketAddr) -> Error {
        Error::Connect { addr, source }
    }

    /// The server status, when the error is one.
    pub fn status(&self) -> Option<Status> {
        match self {
            Error::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// True for errors that mean the connection is unusable (it is re-opened on the
    /// next call).
    pub fn is_connection_error(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::Io(_) | Error::Closed | Error::Protocol(_)
        )
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Connect { addr, source } => write!(f, "cannot connect to {addr}: {source}"),
            Error::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                write!(f, "timed out waiting for the server")
            }
            Error::Io(e) => write!(f, "I/O error: {e}"),
            Error::Closed => write!(f, "the server closed the connection"),
            Error::Protocol(m) => write!(f, "protocol error: {m}"),
            Error::Invalid(m) => write!(f, "invalid request: {m}"),
            Error::Status {
                status, message, ..
            } if message.is_empty() => write!(f, "{}", status.name()),
            Error::Status {
                status, message, ..
            } => write!(f, "{}: {message}", status.name()),
        }
    }
}

impl std::error::Error for Error {}

/// Turns a response into `Ok` or the matching [`Error::Status`].
pub fn ok(response: Response) -> Result<Response, Error> {
    match response.status {
        Some(Status::Ok) => Ok(response),
        Some(status) => Err(Error::Status {
            status,
            message: String::from_utf8_lossy(&response.value).into_owned(),
            version: response.header.version,
        }),
        None => Err(Error::Protocol(format!(
            "unknown status 0x{:04x}",
            response.header.flags_or_status
        ))),
    }
}

/// A blocking, shard-aware client. Not thread-safe: one per thread.
pub struct Client {
    addr: SocketAddr,
    timeout: Duration,
    topology: Option<Topology>,
    /// `conns[0]` is the shared port; `conns[1 + shard]` the shard's own port.
    conns: Vec<Option<Conn>>,
    flags: u16,
}

impl Client {
    /// Connects to a node's shared port and learns its topology, so later calls go
    /// straight to each key's core.
    pub fn connect(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client, Error> {
        let mut client = Client::connect_unrouted(addr, timeout)?;
        let response = ok(client.call_on(0, &Request::Topology)?)?;
        let topology = Topology::decode(&response.value)
            .ok_or_else(|| Error::Protocol("bad TOPOLOGY value".into()))?;
        if topology.hash != HASH_CRC32C_MOD {
            return Err(Error::Protocol(format!(
                "unknown hash function {}",
                topology.hash
            )));
        }
        client
            .conns
            .resize_with(1 + topology.shard_count as usize, || None);
        client.topology = Some(topology);
        Ok(client)
    }

    /// Connects without routing: every request goes to the given port, and the node
    /// forwards it to the owning core.
    pub fn connect_unrouted(addr: impl ToSocketAddrs, timeout: Duration) -> Result<Client, Error> {
        let addr = addr
            .to_socket_addrs()
            .map_err(Error::Io)?
            .next()
            .ok_or_else(|| Error::Invalid("address resolves to nothing".into()))?;
        let conn = Conn::connect(addr, timeout)?;
        Ok(Client {
            addr,
            timeout,
            topology: None,
            conns: vec![Some(conn)],
            flags: 0,
        })
    }

    /// Request flags sent with every request from now on (`proto::op::FLAG_SYNC`, ...).
    pub fn set_flags(&mut self, flags: u16) {
        self.flags = flags;
    }

    /// The node's topology, when connected with [`Client::connect`].
    pub fn topology(&self) -> Option<&Topology> {
        self.topology.as_ref()
    }

    /// Which connection serves `key`: its shard's port when routing, else the shared one.
    fn route(&self, key: Option<&[u8]>) -> usize {
        match (&self.topology, key) {
            (Some(t), Some(key)) => 1 + shard_of(key, u32::from(t.shard_count)) as usize,
            _ => 0,
        }
    }

    fn conn(&mut self, index: usize) -> Result<&mut Conn, Error> {
        if self.conns[index].is_none() {
            let addr = match (index, &self.topology) {
                (0, _) | (_, None) => self.addr,
                (i, Some(t)) => SocketAddr::new(self.addr.ip(), t.shard_ports[i - 1]),
            };
            self.conns[index] = Some(Conn::connect(addr, self.timeout)?);
        }
        self.conns[index].as_mut().ok_or(Error::Closed)
    }

    fn call_on(&mut self, index: usize, request: &Request) -> Result<Response, Error> {
        let flags = self.flags;
        let result = self.conn(index)?.call(request, flags);
        if let Err(e) = &result {
            if e.is_connection_error() {
                // Reconnect on the next call rather than reuse a broken stream.
                self.conns[index] = None;
            }
        }
        result
    }

    /// Sends one request to the core owning its key and returns the raw response.
    pub fn call(&mut self, request: &Request) -> Result<Response, Error> {
        let index = self.route(request_key(request));
        self.call_on(index, request)
    }

    /// Sends many requests at once, each to its key's core, and returns the responses
    /// in request order. One write per connection, then the reads.
    pub fn pipeline(&mut self, requests: &[Request]) -> Result<Vec<Response>, Error> {
        let routes: Vec<usize> = requests
            .iter()
            .map(|r| self.route(request_key(r)))
            .collect();
        let flags = self.flags;
        let mut used = vec![false; self.conns.len()];
        for (request, &index) in requests.iter().zip(&routes) {
            self.conn(index)?.queue(request, flags)?;
            used[index] = true;
        }
        for (index, used) in used.iter().enumerate() {
            if *used {
                self.conn(index)?.flush()?;
            }
        }
        let mut responses = Vec::with_capacity(requests.len());
        for &index in &routes {
            match self.conn(index)?.receive() {
                Ok(r) => responses.push(r),
                Err(e) => {
                    self.conns[index] = None;
                    return Err(e);
                }
            }
        }
        Ok(responses)
    }

    /// `PING`.
    pub fn ping(&mut self) -> Result<(), Error> {
        ok(self.call_on(
            0,
            &Request::Ping {
                payload: Bytes::new(),
            },
        )?)
        .map(|_| ())
    }

    /// `GET`: the value and its version, or `None`.
    pub fn get(&mut self, key: &[u8]) -> Result<Option<(Bytes, u64)>, Error> {
        let r = self.call(&Request::Get {
            key: Bytes::copy_from_slice(key),
        })?;
        match r.status {
            Some(Status::NotFound) => Ok(None),
            _ => ok(r).map(|r| Some((r.value, r.header.version))),
        }
    }

    fn write(
        &mut self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
        mode: SetMode,
    ) -> Result<u64, Error> {
        let request = Request::Set {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_ms: ttl.map_or(0, |t| (t.as_millis() as u64).max(1)),
            mode,
        };
        ok(self.call(&request)?).map(|r| r.header.version)
    }

    /// `SET`: returns the new version.
    pub fn set(&mut self, key: &[u8], value: &[u8], ttl: Option<Duration>) -> Result<u64, Error> {
        self.write(key, value, ttl, SetMode::Always)
    }

    /// `INSERT`: fails with status `EXISTS` if the key is present.
    pub fn insert(
        &mut self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64, Error> {
        self.write(key, value, ttl, SetMode::IfAbsent)
    }

    /// `UPDATE`: fails with status `NOT_FOUND` if the key is absent.
    pub fn update(
        &mut self,
        key: &[u8],
        value: &[u8],
        ttl: Option<Duration>,
    ) -> Result<u64, Error> {
        self.write(key, value, ttl, SetMode::IfPresent)
    }

    /// `CAS` write: fails with `VERSION_MISMATCH` (carrying the current version) or
    /// `NOT_FOUND`.
    pub fn cas(
        &mut self,
        key: &[u8],
        value: &[u8],
        expected: u64,
        ttl: Option<Duration>,
    ) -> Result<u64, Error> {
        let request = Request::Cas {
            key: Bytes::copy_from_slice(key),
            value: Bytes::copy_from_slice(value),
            ttl_ms: ttl.map_or(0, |t| (t.as_millis() as u64).max(1)),
            expected,
            delete: false,
        };
        ok(self.call(&request)?).map(|r| r.header.version)
    }

    /// `CAS` delete.
    pub fn cas_delete(&mut self, key: &[u8], expected: u64) -> Result<(), Error> {
        let request = Request::Cas {
            key: Bytes::copy_from_slice(key),
            value: Bytes::new(),
            ttl_ms: 0,
            expected,
            delete: true,
        };
        ok(self.call(&request)?).map(|_| ())
    }

    /// `DELETE`: true if the key existed.
    pub fn delete(&mut self, key: &[u8]) -> Result<bool, Error> {
        let r = self.call(&Request::Delete {
            key: Bytes::copy_from_slice(key),
        })?;
        match r.status {
            Some(Status::NotFound) => Ok(false),
            _ => ok(r).map(|_| true),
        }
    }

    /// `MGET`, through the shared port (the node splits it per core).
    pub fn mget(&mut self, keys: &[&[u8]]) -> Result<Vec<Option<(Bytes, u64)>>, Error> {
        let keys = keys.iter().map(|k| Bytes::copy_from_slice(k)).collect();
        let r = ok(self.call_on(0, &Request::MGet { keys })?)?;
        r.mget_entries()
            .ok_or_else(|| Error::Protocol("bad MGET value".into()))
    }

    /// `MSET`, through the shared port; returns each pair's version.
    pub fn mset(
        &mut self,
        pairs: &[(&[u8], &[u8])],
        ttl: Option<Duration>,
    ) -> Result<Vec<u64>, Error> {
        let pairs = pairs
            .iter()
            .map(|(k, v)| (Bytes::copy_from_slice(k), Bytes::copy_from_slice(v)))
            .collect();
        let ttl_ms = ttl.map_or(0, |t| (t.as_millis() as u64).max(1));
        let r = ok(self.call_on(0, &Request::MSet { pairs, ttl_ms })?)?;
        r.mset_versions()
            .ok_or_else(|| Error::Protocol("bad MSET value".into()))
    }

    /// `EXPIRE`: false if the key does not exist.
    pub fn expire(&mut self, key: &[u8], ttl: Duration) -> Result<bool, Error> {
        let r = self.call(&Request::Expire {
            key: Bytes::copy_from_slice(key),
            ttl_ms: ttl.as_millis() as u64,
        })?;
        match r.status {
            Some(Status::NotFound) => Ok(false),
            _ => ok(r).map(|_| true),
        }
    }

    /// `PERSIST`: `None` if the key does not exist, else whether a TTL was removed.
    pub fn persist(&mut self, key: &[u8]) -> Result<Option<bool>, Error> {
        let r = self.call(&Request::Persist {
            key: Bytes::copy_from_slice(key),
        })?;
        match r.status {
            Some(Status::NotFound) => Ok(None),
            _ => ok(r).map(|r| Some(r.value.first() == Some(&1))),
        }
    }

    /// `TTL`: `None` if the key does not exist; `Some(None)` if it never expires.
    pub fn ttl(&mut self, key: &[u8]) -> Result<Option<Option<Duration>>, Error> {
        let r = self.call(&Request::Ttl {
            key: Bytes::copy_from_slice(key),
        })?;
        match r.status {
            Some(Status::NotFound) => Ok(None),
            _ => {
                let r = ok(r)?;
                let ms = r
                    .extras_i64()
                    .ok_or_else(|| Error::Protocol("TTL without extras".into()))?;
                Ok(Some((ms >= 0).then(|| Duration::from_millis(ms as u64))))
            }
        }
    }

    /// `INCR` / `DECR` (negative delta): the new value.
    pub fn incr(&mut self, key: &[u8], delta: i64) -> Result<i64, Error> {
        let r = ok(self.call(&Request::Incr {
            key: Bytes::copy_from_slice(key),
            delta,
        })?)?;
        r.extras_i64()
            .ok_or_else(|| Error::Protocol("INCR without extras".into()))
    }

    /// One `SCAN` page: the next cursor (0 when done) and the keys.
    pub fn scan(
        &mut self,
        cursor: u64,
        count: u32,
        prefix: &[u8],
    ) -> Result<(u64, Vec<Bytes>), Error> {
        let request = Request::Scan {
            cursor,
            count,
            prefix: Bytes::copy_from_slice(prefix),
        };
        let r = ok(self.call_on(0, &request)?)?;
        r.scan_page()
            .ok_or_else(|| Error::Protocol("bad SCAN value".into()))
    }

    /// Every key with the prefix, page by page.
    pub fn scan_all(&mut self, prefix: &[u8]) -> Result<Vec<Bytes>, Error> {
        let (mut cursor, mut keys) = (0, Vec::new());
        loop {
            let (next, page) = self.scan(cursor, 1000, prefix)?;
            keys.extend(page);
            if next == 0 {
                return Ok(keys);
            }
            cursor = next;
        }
    }

    /// `STATS` as `(name, value)` pairs.
    pub fn stats(&mut self) -> Result<Vec<(String, String)>, Error> {
        let r = ok(self.call_on(0, &Request::Stats)?)?;
        let text = String::from_utf8_lossy(&r.value).into_owned();
        Ok(text
            .lines()
            .filter_map(|l| {
                l.split_once(' ')
                    .map(|(k, v)| (k.to_string(), v.to_string()))
            })
            .collect())
    }
}

/// The key a request is routed by, if it has exactly one.
pub fn request_key(request: &Request) -> Option<&[u8]> {
    match request {
        Request::Get { key }
        | Request::Set { key, .. }
        | Request::Cas { key, .. }
        | Request::Delete { key }
        | Request::Expire { key, .. }
        | Request::Persist { key }
        | Request::Ttl { key }
        | Request::Incr { key, .. } => Some(key),
        _ => None,
    }
}
