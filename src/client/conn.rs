//! One connection speaking the native protocol: requests go out in batches, responses
//! come back in the same order. Shared by the blocking client; the glommio client
//! reuses its framing ([`ResponseReader`]).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use bytes::BytesMut;

use super::Error;
use crate::proto::op::encode_request;
use crate::proto::{check, Request, Response, MAGIC_RESPONSE};

/// Bytes asked of the socket per read.
const READ_CHUNK: usize = 64 * 1024;

/// Numbers requests and encodes them into one output buffer, sent in one write.
#[derive(Default)]
pub struct RequestQueue {
    out: BytesMut,
    next_id: u32,
}

impl RequestQueue {
    /// Encodes a request; returns its id.
    pub fn queue(&mut self, request: &Request, flags: u16) -> Result<u32, Error> {
        self.next_id = self.next_id.wrapping_add(1);
        encode_request(&mut self.out, self.next_id, flags, request)
            .map_err(|e| Error::Invalid(e.0))?;
        Ok(self.next_id)
    }

    /// Appends already-encoded request bytes.
    pub fn queue_raw(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// Everything queued since the last [`RequestQueue::clear`].
    pub fn bytes(&self) -> &[u8] {
        &self.out
    }

    /// Forgets what was sent.
    pub fn clear(&mut self) {
        self.out.clear();
    }
}

/// Collects bytes and splits whole response frames off them.
#[derive(Default)]
pub struct ResponseReader {
    buf: BytesMut,
    filled: usize,
}

impl ResponseReader {
    /// Room to read into; report what the read did with [`ResponseReader::commit`].
    pub fn spare(&mut self) -> &mut [u8] {
        self.filled = self.buf.len();
        self.buf.resize(self.filled + READ_CHUNK, 0);
        &mut self.buf[self.filled..]
    }

    /// Keeps the bytes a read into [`ResponseReader::spare`] returned; end of stream is
    /// `Error::Closed`.
    pub fn commit(&mut self, read: std::io::Result<usize>) -> Result<(), Error> {
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(self.filled + n);
        match read {
            Ok(0) => Err(Error::Closed),
            Ok(_) => Ok(()),
            Err(e) => Err(Error::Io(e)),
        }
    }

    /// The next complete response, if one is buffered.
    pub fn next_response(&mut self) -> Result<Option<Response>, Error> {
        match check(&self.buf, MAGIC_RESPONSE) {
            Ok(Some((header, len))) => Ok(Some(Response::from_frame(
                header,
                self.buf.split_to(len).freeze(),
            ))),
            Ok(None) => Ok(None),
            Err(e) => Err(Error::Protocol(format!("malformed response: {e}"))),
        }
    }
}

/// A blocking connection.
pub struct Conn {
    stream: TcpStream,
    reader: ResponseReader,
    requests: RequestQueue,
}

impl Conn {
    /// Connects with a timeout applied to connecting, reading and writing.
    pub fn connect(addr: SocketAddr, timeout: Duration) -> Result<Conn, Error> {
        let stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| Error::from_io(e, addr))?;
        stream.set_nodelay(true).map_err(Error::Io)?;
        stream.set_read_timeout(Some(timeout)).map_err(Error::Io)?;
        stream.set_write_timeout(Some(timeout)).map_err(Error::Io)?;
        Ok(Conn {
            stream,
            reader: ResponseReader::default(),
            requests: RequestQueue::default(),
        })
    }

    /// Queues a request; nothing is sent until [`Conn::flush`]. Returns its id.
    pub fn queue(&mut self, request: &Request, flags: u16) -> Result<u32, Error> {
        self.requests.queue(request, flags)
    }

    /// Sends every queued request in one write.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.stream
            .write_all(self.requests.bytes())
            .map_err(Error::Io)?;
        self.requests.clear();
        Ok(())
    }

    /// Reads the next response.
    pub fn receive(&mut self) -> Result<Response, Error> {
        loop {
            if let Some(response) = self.reader.next_response()? {
                return Ok(response);
            }
            let read = self.stream.read(self.reader.spare());
            self.reader.commit(read)?;
        }
    }

    /// Sends one request and waits for its response.
    pub fn call(&mut self, request: &Request, flags: u16) -> Result<Response, Error> {
        let id = self.queue(request, flags)?;
        self.flush()?;
        let response = self.receive()?;
        if response.header.request_id != id && response.header.request_id != 0 {
            return Err(Error::Protocol(format!(
                "response id {} for request {id}",
                response.header.request_id
            )));
        }
        Ok(response)
    }
}
