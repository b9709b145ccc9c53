//! A native-protocol connection for code running on a glommio executor.

use std::net::SocketAddr;

use futures_lite::{AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;

use super::conn::{RequestQueue, ResponseReader};
use super::Error;
use crate::proto::{Request, Response};

/// One connection; queue requests, flush them in one write, then receive responses in
/// order.
pub struct AsyncConn {
    stream: TcpStream,
    reader: ResponseReader,
    requests: RequestQueue,
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
            requests: RequestQueue::default(),
        })
    }

    /// Queues a request; returns its id.
    pub fn queue(&mut self, request: &Request, flags: u16) -> Result<u32, Error> {
        self.requests.queue(request, flags)
    }

    /// Queues already-encoded request bytes (the load generator pre-encodes).
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.requests.queue_raw(bytes);
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<(), Error> {
        self.stream
            .write_all(self.requests.bytes())
            .await
            .map_err(Error::Io)?;
        self.requests.clear();
        Ok(())
    }

    /// The next response.
    pub async fn receive(&mut self) -> Result<Response, Error> {
        loop {
            if let Some(response) = self.reader.next_response()? {
                return Ok(response);
            }
            let read = self.stream.read(self.reader.spare()).await;
            self.reader.commit(read)?;
        }
    }
}
