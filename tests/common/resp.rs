//! A small blocking RESP client for tests, on ringkv's own codec, and helpers to run
//! a real redis-server beside ringkv.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringkv::resp::{encode_command, parse_reply, Value};

pub const TIMEOUT: Duration = Duration::from_secs(10);

/// One connection.
pub struct Resp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Resp {
    pub fn connect(addr: SocketAddr) -> Resp {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Resp {
            stream,
            buf: Vec::new(),
        }
    }

    /// Sends one command as a multibulk array.
    pub fn send<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let mut out = BytesMut::new();
        encode_command(&mut out, args);
        self.stream.write_all(&out).expect("write");
    }

    /// Sends raw bytes.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write");
    }

    /// Reads the next reply.
    pub fn read(&mut self) -> Value {
        self.try_read()
            .expect("a reply before the connection closed")
    }

    /// Reads the next reply's raw bytes.
    pub fn read_raw(&mut self) -> Vec<u8> {
        loop {
            if let Some(n) = ringkv::resp::reply_len(&self.buf).expect("valid reply") {
                return self.buf.drain(..n).collect();
            }
            self.fill().expect("connection open");
        }
    }

    /// Reads the next reply, `None` if the server closed first.
    pub fn try_read(&mut self) -> Option<Value> {
        loop {
            if let Some((value, n)) = parse_reply(&self.buf).expect("valid reply") {
                self.buf.drain(..n);
                return Some(value);
            }
            if !self.fill()? {
                return None;
            }
        }
    }

    fn fill(&mut self) -> Option<bool> {
        let mut chunk = [0u8; 64 * 1024];
        match self.stream.read(&mut chunk) {
            Ok(0) => Some(false),
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                Some(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => Some(false),
            Err(e) => panic!("read: {e}"),
        }
    }

    /// True once the server has closed the connection (after any pending replies).
    pub fn closed(&mut self) -> bool {
        matches!(self.fill(), Some(false)) && self.buf.is_empty()
    }

    /// Sends one command and reads its reply.
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Value {
        self.send(args);
        self.read()
    }

    /// `cmd` from one space-separated string (no quoting).
    pub fn line(&mut self, line: &str) -> Value {
        let args: Vec<&str> = line.split_whitespace().collect();
        self.cmd(&args)
    }
}

pub fn bulk(s: &str) -> Value {
    Value::Bulk(s.as_bytes().to_vec().into())
}

pub fn simple(s: &str) -> Value {
    Value::Simple(s.as_bytes().to_vec().into())
}

pub fn error(s: &str) -> Value {
    Value::Error(s.as_bytes().to_vec().into())
}

/// True when a command-line tool is installed.
pub fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// The major version the Redis comparisons need: ringkv follows Redis 7.0.15.
pub const REDIS_MAJOR: &str = "7";

/// What `redis-server --version` says (`Redis server v=7.0.15 sha=...`), if it runs.
pub fn redis_server_version() -> Option<String> {
    let out = Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The `x.y.z` after `v=` in a `--version` line.
fn version_number(line: &str) -> Option<&str> {
    line.split_whitespace().find_map(|w| w.strip_prefix("v="))
}

/// Whether a test that needs `tool` can run. A missing tool fails the test, so a
/// machine without it cannot pass silently: under CI=true always; elsewhere unless
/// RINGKV_SKIP_MISSING_TOOLS=1, which prints a note and passes. For redis-server
/// the version counts too: the comparisons are against Redis 7, and another major
/// version answers differently, so it counts as missing.
pub fn require(tool: &str) -> bool {
    let missing = if !have(tool) {
        format!("{tool} is not installed (apt-get install redis-server redis-tools)")
    } else if tool == "redis-server" {
        let line = redis_server_version().unwrap_or_default();
        match version_number(&line) {
            Some(v) if v.split('.').next() == Some(REDIS_MAJOR) => return true,
            _ => format!(
                "redis-server {REDIS_MAJOR}.x is required (ringkv follows Redis 7.0.15), \
                 but `redis-server --version` says {line:?}; install Redis {REDIS_MAJOR}.x"
            ),
        }
    } else {
        return true;
    };
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let skip = std::env::var("RINGKV_SKIP_MISSING_TOOLS").is_ok_and(|v| v == "1");
    assert!(
        !ci && skip,
        "{missing}; set RINGKV_SKIP_MISSING_TOOLS=1 to skip this test outside CI"
    );
    super::note(&format!(
        "{missing}: skipped, NOT run (RINGKV_SKIP_MISSING_TOOLS=1)"
    ));
    false
}

/// A real redis-server on a free loopback port, without persistence, stopped by
/// its pid when dropped.
pub struct RedisServer {
    pub child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = super::temp_dir();
        // Ask the kernel for a free port, then hand it to redis-server.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let server = RedisServer {
            child,
            port,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(s) = TcpStream::connect(server.addr()) {
                drop(s);
                let mut c = Resp::connect(server.addr());
                if c.line("PING") == simple("PONG") {
                    server.check_version(&mut c);
                    return server;
                }
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The server that answers must be Redis 7 too (`require` checked the binary).
    fn check_version(&self, c: &mut Resp) {
        let info = match c.line("INFO server") {
            Value::Bulk(text) => String::from_utf8_lossy(&text).into_owned(),
            other => panic!("INFO server -> {other:?}"),
        };
        let version = info
            .lines()
            .find_map(|l| l.strip_prefix("redis_version:"))
            .unwrap_or("unknown");
        assert!(
            version.split('.').next() == Some(REDIS_MAJOR),
            "the redis-server started reports redis_version:{version}; \
             these tests compare against Redis {REDIS_MAJOR}.x (ringkv follows 7.0.15)"
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
