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

/// Collects bytes and splits whole response frames off them.
#[derive(Default)]
pub struct ResponseReader {
    buf: BytesMut,
}

impl ResponseReader {
    /// The buffer to read into (append at the end).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next complete response, if one is buffered.
    #[allow(clippy::should_implement_trait)] // fallible and buffer-driven, not an Iterator
    pub fn next(&mut self) -> Result<Option<Response>, Error> {
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
    out: BytesMut,
    next_id: u32,
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
            out: BytesMut::new(),
            next_id: 1,
        })
    }

    /// Queues a request; nothing is sent until [`Conn::flush`]. Returns its id.
    pub fn queue(&mut self, request: &Request, flags: u16) -> Result<u32, Error> {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        encode_request(&mut self.out, id, flags, request).map_err(|e| Error::Invalid(e.0))?;
        Ok(id)
    }

    /// Sends every queued request in one write.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.stream.write_all(&self.out).map_err(Error::Io)?;
        self.out.clear();
        Ok(())
    }

    /// Reads the next response.
    pub fn receive(&mut self) -> Result<Response, Error> {
        loop {
            if let Some(response) = self.reader.next()? {
                return Ok(response);
            }
            let buf = self.reader.buffer();
            let len = buf.len();
            buf.resize(len + 64 * 1024, 0);
            let n = self.stream.read(&mut buf[len..]);
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
