//! A native-protocol connection for code running on a glommio executor.

use std::net::SocketAddr;

use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::conn::ResponseReader;
use super::Error;
use crate::proto::op::encode_request;
use crate::proto::{Request, Response};

/// One connection; queue requests, flush them in one write, then receive responses in
/// order.
pub struct AsyncConn {
    stream: TcpStream,
    reader: ResponseReader,
    out: BytesMut,
    next_id: u32,
}

impl AsyncConn {
    /// Connects.
    pub async fn connect(addr: SocketAddr) -> Result<AsyncConn, Error> {
        let stream = TcpStream::connect(addr).await.map_err(|e| Error::Connect {
            addr,
            source: e.into(),
        })?;
        stream.set_nodelay(true).map_err(|e| Error::Io(e.into()))?;
        Ok(AsyncConn {
            stream,
            reader: ResponseReader::default(),
            out: BytesMut::new(),
            next_id: 1,
        })
    }

    /// Queues a request; returns its id.
    pub fn queue(&mut self, request: &Request, flags: u16) -> Result<u32, Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        encode_request(&mut self.out, id, flags, request).map_err(|e| Error::Invalid(e.0))?;
        Ok(id)
    }

    /// Queues already-encoded request bytes (the load generator pre-encodes).
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream.write_all(&self.out).await.map_err(Error::Io)?;
        self.out.clear();
        Ok(())
    }

    /// The next response.
    pub async fn receive(&mut self) -> Result<Response, Error> {
        loop {
            if let Some(response) = self.reader.next_response()? {
                return Ok(response);
            }
            let buf = self.reader.buffer();
            let len = buf.len();
            buf.resize(len + 64 * 1024, 0);
            let n = self.stream.read(&mut buf[len..]).await;
            let n = match n {
                Ok(n) => n,
                Err(e) => {
                    buf.truncate(len);
                    return Err(Error::Io(e));
                }
            };
            buf.truncate(len + n);
            if n == 0 {
                return Err(Error::Closed);
            }
        }
    }
}
