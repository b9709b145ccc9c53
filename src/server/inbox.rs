//! A connection's input buffer and the read that fills it, shared by both fronts.
//!
//! A read races the connection's idle [`Watch`](super::idle::Watch) instead of arming
//! a glommio read timeout (a timer per request). The socket needs an initialised
//! slice, so the part of the buffer offered to a read is zeroed first; that window
//! follows the size of recent reads (doubling when a read fills it), so a 40-byte
//! request does not pay for zeroing 16 KiB, and a large frame arriving in pieces grows
//! the buffer geometrically (receiving n bytes costs O(n) copies).

use std::io::ErrorKind;

use bytes::BytesMut;
use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

use super::idle::{Closed, Watch};

/// Largest window offered to one read, unless a frame of known length is arriving.
const WINDOW_MAX: usize = 16 * 1024;

/// Largest window offered to one read while a large frame of known length arrives.
const WINDOW_LARGE: usize = 1024 * 1024;

/// Smallest window offered to one read.
const WINDOW_MIN: usize = 4096;

/// Bytes received and not yet parsed.
pub(crate) struct Inbox {
    pub buf: BytesMut,
    /// Bytes offered to the next read: follows what reads bring.
    window: usize,
}

impl Inbox {
    pub fn new() -> Self {
        Inbox {
            buf: BytesMut::with_capacity(WINDOW_MAX),
            window: WINDOW_MIN,
        }
    }

    /// Reads whatever the socket has, with room for at least `want` bytes (the rest of
    /// a frame whose length is known, or 0). `Ok(false)` on end of stream or when the
    /// node stops; a `TimedOut` error when the connection was idle too long.
    pub async fn read_more(
        &mut self,
        stream: &mut TcpStream,
        watch: &Watch,
        want: usize,
    ) -> std::io::Result<bool> {
        let len = self.buf.len();
        let cap = if want > WINDOW_MAX {
            want.min(WINDOW_LARGE)
        } else {
            WINDOW_MAX
        };
        let window = self.window.min(cap);
        // Room for the whole frame at once, or twice the buffer: no quadratic copying.
        self.buf.reserve(window.max(len).max(want));
        self.buf.resize(len + window, 0);
        let buf = &mut self.buf;
        let read =
            futures_lite::future::or(async { Ok(stream.read(&mut buf[len..]).await) }, async {
                Err(watch.closed().await)
            })
            .await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                self.buf.truncate(len);
                return Err(e);
            }
            Err(Closed::Idle) => {
                self.buf.truncate(len);
                return Err(std::io::Error::new(ErrorKind::TimedOut, "idle timeout"));
            }
            Err(Closed::Stopping) => 0,
        };
        watch.touch();
        self.window = if n == window {
            (window * 2).min(WINDOW_LARGE)
        } else {
            (n * 2).clamp(WINDOW_MIN, WINDOW_MAX)
        };
        self.buf.truncate(len + n);
        Ok(n > 0)
    }
}
