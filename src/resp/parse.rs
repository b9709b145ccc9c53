//! Request parser (what a server reads from clients) and request encoder (what a
//! client writes).
//!
//! The parser follows Redis 7.0's `processMultibulkBuffer` / `processInlineBuffer`
//! (networking.c) decision for decision, so the same bytes are accepted, refused or
//! waited on as by Redis, and refusals carry Redis's exact text:
//!
//! - A buffer starting with `*` is a multibulk command `*N\r\n` then N times
//!   `$len\r\n<len bytes>\r\n`; anything else is an inline command, one line split
//!   like `sdssplitargs` splits it.
//! - `*0`, `*-1` (any count <= 0) and empty inline lines are no command; they are
//!   consumed and skipped.
//! - Like Redis, the byte after a header's `\r` and the two bytes after a bulk's data
//!   are skipped without checking that they are `\n` / `\r\n`.
//!
//! Two entry points share one engine:
//! - [`RequestParser::parse`] for connections: takes the connection's `BytesMut`,
//!   splits each complete command off it and returns the arguments as `Bytes` slices
//!   of that frozen chunk (no copy for multibulk arguments). It keeps its place inside
//!   a partly received command, so a big command arriving in many reads is scanned
//!   once, not once per read.
//! - [`parse`] for a plain `&[u8]`: stateless, returns borrowed arguments and the
//!   number of bytes consumed.
//!
//! Nothing is allocated in proportion to a *declared* size: a count or a length is
//! only a number to wait for; memory grows with the bytes actually received.

use std::borrow::Cow;
use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use super::num::{put_header_u64, string2ll};
use super::{ARGS_MAX, BULK_LEN_MAX, INLINE_LEN_MAX, UNAUTH_ARGS_MAX, UNAUTH_BULK_LEN_MAX};

/// Argument slots reserved when a multibulk header arrives, whatever count it
/// declares (Redis reserves `min(count, 1024)` too); more grow as arguments arrive.
const ARGS_PREALLOC_MAX: usize = 1024;

/// The limits the parser enforces. The server builds one from its configuration;
/// [`Limits::default`] holds the `*_MAX` constants of [`crate::resp`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Largest bulk argument, in bytes ([`BULK_LEN_MAX`] by default).
    pub bulk_len_max: usize,
    /// Largest number of arguments of one command ([`ARGS_MAX`] by default).
    pub args_max: usize,
    /// Largest inline line and largest header line, in bytes ([`INLINE_LEN_MAX`]
    /// by default).
    pub inline_len_max: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            bulk_len_max: BULK_LEN_MAX,
            args_max: ARGS_MAX,
            inline_len_max: INLINE_LEN_MAX,
        }
    }
}

/// A protocol error in a request. Redis answers each with `-ERR <Display text>` and
/// closes the connection after the reply; [`RespError::write_reply`] writes exactly
/// that reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RespError {
    /// "Protocol error: invalid multibulk length": a `*` count that is not a
    /// `string2ll` number, or is above `args_max` (also used for an inline command
    /// with more than `args_max` arguments, only reachable with a small `args_max`).
    InvalidMultibulkLength,
    /// "Protocol error: invalid bulk length": a `$` length that is not a number, is
    /// negative, or is above `bulk_len_max` (also used for an inline argument longer
    /// than `bulk_len_max`, only reachable with a small `bulk_len_max`).
    InvalidBulkLength,
    /// "Protocol error: expected '$', got 'X'": an argument header of a multibulk
    /// command that does not start with `$`; carries the byte found.
    ExpectedDollar(u8),
    /// "Protocol error: unbalanced quotes in request": an inline line with an
    /// unterminated quote, or a closing quote not followed by a space or the end.
    UnbalancedQuotes,
    /// "Protocol error: too big inline request": more than `inline_len_max` bytes
    /// without a `\n` in an inline request.
    InlineTooBig,
    /// "Protocol error: too big mbulk count string": more than `inline_len_max`
    /// bytes without a `\r` in a `*` header.
    MbulkCountTooBig,
    /// "Protocol error: too big bulk count string": more than `inline_len_max`
    /// bytes without a `\r` in a `$` header.
    BulkCountTooBig,
    /// "Protocol error: unauthenticated multibulk length": a count above
    /// [`UNAUTH_ARGS_MAX`] before the connection authenticated.
    UnauthenticatedMultibulkLength,
    /// "Protocol error: unauthenticated bulk length": a length above
    /// [`UNAUTH_BULK_LEN_MAX`] before the connection authenticated.
    UnauthenticatedBulkLength,
}

impl RespError {
    /// The text up to the offending byte for `ExpectedDollar`, the whole text for the
    /// others.
    fn static_text(&self) -> &'static str {
        match self {
            RespError::InvalidMultibulkLength => "Protocol error: invalid multibulk length",
            RespError::InvalidBulkLength => "Protocol error: invalid bulk length",
            RespError::ExpectedDollar(_) => "Protocol error: expected '$', got '",
            RespError::UnbalancedQuotes => "Protocol error: unbalanced quotes in request",
            RespError::InlineTooBig => "Protocol error: too big inline request",
            RespError::MbulkCountTooBig => "Protocol error: too big mbulk count string",
            RespError::BulkCountTooBig => "Protocol error: too big bulk count string",
            RespError::UnauthenticatedMultibulkLength => {
                "Protocol error: unauthenticated multibulk length"
            }
            RespError::UnauthenticatedBulkLength => "Protocol error: unauthenticated bulk length",
        }
    }

    /// What Redis prints for the byte of `ExpectedDollar`: its `addReplyErrorFormat`
    /// turns CR and LF into spaces, and a NUL ends the formatted C string, so the
    /// message stops right after `got '`.
    fn shown_byte(&self) -> Option<u8> {
        match *self {
            RespError::ExpectedDollar(0) => None,
            RespError::ExpectedDollar(b'\r' | b'\n') => Some(b' '),
            RespError::ExpectedDollar(b) => Some(b),
            _ => None,
        }
    }

    /// Appends the reply Redis 7.0 sends for this error, byte for byte:
    /// `-ERR <text>\r\n` (the offending byte of `ExpectedDollar` raw, as Redis sends
    /// it). The server then closes the connection once the reply is written.
    pub fn write_reply(&self, out: &mut BytesMut) {
        out.extend_from_slice(b"-ERR ");
        out.extend_from_slice(self.static_text().as_bytes());
        if let Some(b) = self.shown_byte() {
            out.extend_from_slice(&[b, b'\'']);
        }
        out.extend_from_slice(b"\r\n");
    }
}

/// The Redis text, without the `ERR ` code. A non-ASCII offending byte shows as the
/// Latin-1 character of that value (Redis sends the raw byte; use
/// [`RespError::write_reply`] for the wire).
impl fmt::Display for RespError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.static_text())?;
        if let Some(b) = self.shown_byte() {
            write!(f, "{}'", char::from(b))?;
        }
        Ok(())
    }
}

impl std::error::Error for RespError {}

/// What one step of the engine found at the start of the buffer.
enum Step {
    /// A complete multibulk command; its arguments are `RequestParser::spans`.
    Multibulk,
    /// A complete inline command.
    Inline(Vec<Vec<u8>>),
    /// Bytes that are no command (`*0`, `*-1`, an empty inline line).
    Skip,
}

/// Where the terminator of a line is.
enum Line {
    /// At this offset.
    End(usize),
    /// Not received yet.
    More,
    /// Not within the line length limit.
    TooLong,
}

/// The parser of one connection. It remembers how far it got inside a partly
/// received command, so between two calls the caller must only *append* to the
/// buffer (or call [`RequestParser::reset`] after discarding it).
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    auth_required: bool,
    /// Arguments of the multibulk command in progress still to read; 0 between
    /// commands.
    remaining: usize,
    /// Offset, from the command's first byte, of the next unread byte of the
    /// multibulk command in progress.
    pos: usize,
    /// Length of the argument whose `$` header is read but whose data is not.
    bulk: Option<usize>,
    /// Offset up to which the line being looked at is known to hold no terminator.
    scanned: usize,
    /// Argument ranges (start, end) of the multibulk command in progress, reused
    /// from command to command.
    spans: Vec<(usize, usize)>,
}

impl Default for RequestParser {
    fn default() -> RequestParser {
        RequestParser::new(Limits::default())
    }
}

impl RequestParser {
    /// A parser enforcing `limits`.
    pub fn new(limits: Limits) -> RequestParser {
        RequestParser {
            limits,
            auth_required: false,
            remaining: 0,
            pos: 0,
            bulk: None,
            scanned: 0,
            spans: Vec::new(),
        }
    }

    /// The limits this parser enforces.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// While `true`, counts above [`UNAUTH_ARGS_MAX`] and lengths above
    /// [`UNAUTH_BULK_LEN_MAX`] are refused, as Redis 7.0 does for a connection that
    /// has not passed `AUTH` yet when a password is set. `false` by default.
    pub fn set_auth_required(&mut self, required: bool) {
        self.auth_required = required;
    }

    /// Forgets any partly parsed command. Call it if the buffer was cleared.
    pub fn reset(&mut self) {
        self.remaining = 0;
        self.pos = 0;
        self.bulk = None;
        self.scanned = 0;
        self.spans.clear();
    }

    /// Parses the next command at the front of `buf`.
    ///
    /// - `Ok(Some(args))`: a complete command (never empty) was split off `buf`.
    ///   Multibulk arguments are slices of one frozen chunk (zero copy); inline
    ///   arguments are owned. A value kept long-term should be copied out, or it pins
    ///   the whole chunk it came from.
    /// - `Ok(None)`: more bytes are needed. Empty commands (`*0`, `*-1`, blank
    ///   inline lines) before that point were consumed from `buf`.
    /// - `Err(e)`: the input is malformed; reply with [`RespError::write_reply`] and
    ///   close. The parser is reset.
    ///
    /// Call it in a loop until `Ok(None)` to run every pipelined command of a read.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Vec<Bytes>>, RespError> {
        loop {
            match self.step(buf) {
                Err(e) => {
                    self.reset();
                    return Err(e);
                }
                Ok(None) => return Ok(None),
                Ok(Some((Step::Skip, consumed))) => buf.advance(consumed),
                Ok(Some((Step::Multibulk, consumed))) => {
                    let frame = buf.split_to(consumed).freeze();
                    // Every span lies within `consumed`: `step` only records a span
                    // after checking its bytes (and CRLF) are in the buffer.
                    let args = self.spans.drain(..).map(|(s, e)| frame.slice(s..e));
                    return Ok(Some(args.collect()));
                }
                Ok(Some((Step::Inline(args), consumed))) => {
                    buf.advance(consumed);
                    return Ok(Some(args.into_iter().map(Bytes::from).collect()));
                }
            }
        }
    }

    /// Parses one unit at the front of `buf`; on success the returned count of
    /// consumed bytes is at least 1 and at most `buf.len()`, and the parser is ready
    /// for the next command (whose first byte is `buf[consumed]`).
    fn step(&mut self, buf: &[u8]) -> Result<Option<(Step, usize)>, RespError> {
        if self.remaining == 0 {
            let Some(&first) = buf.first() else {
                return Ok(None);
            };
            if first != b'*' {
                return self.inline(buf);
            }
            match self.multibulk_header(buf)? {
                None => return Ok(None),
                Some(Some(consumed)) => {
                    self.end_command();
                    return Ok(Some((Step::Skip, consumed)));
                }
                Some(None) => {}
            }
        }
        while self.remaining > 0 {
            let len = match self.bulk {
                Some(len) => len,
                None => match self.bulk_header(buf)? {
                    Some(len) => len,
                    None => return Ok(None),
                },
            };
            let Some(next) = self.pos.checked_add(len).and_then(|e| e.checked_add(2)) else {
                return Ok(None);
            };
            if next > buf.len() {
                return Ok(None);
            }
            self.spans.push((self.pos, self.pos + len));
            self.pos = next;
            self.bulk = None;
            self.remaining -= 1;
        }
        let consumed = self.pos;
        self.end_command();
        Ok(Some((Step::Multibulk, consumed)))
    }

    /// Reads the `*N\r\n` header at the start of `buf`. `Ok(None)`: incomplete;
    /// `Ok(Some(Some(n)))`: a count <= 0 taking `n` bytes, no command;
    /// `Ok(Some(None))`: a multibulk command is now in progress.
    fn multibulk_header(&mut self, buf: &[u8]) -> Result<Option<Option<usize>>, RespError> {
        let cr = match self.line_end(buf, 0, b'\r') {
            Line::End(cr) => cr,
            Line::More => return Ok(None),
            Line::TooLong => return Err(RespError::MbulkCountTooBig),
        };
        // Redis needs one more byte after the '\r' (and skips it unchecked).
        if cr.saturating_add(1) >= buf.len() {
            return Ok(None);
        }
        let count = buf
            .get(1..cr)
            .and_then(string2ll)
            .filter(|&n| n <= i64::from(i32::MAX))
            .ok_or(RespError::InvalidMultibulkLength)?;
        let count = usize::try_from(count).unwrap_or(0);
        if count > self.limits.args_max {
            return Err(RespError::InvalidMultibulkLength);
        }
        if count > UNAUTH_ARGS_MAX && self.auth_required {
            return Err(RespError::UnauthenticatedMultibulkLength);
        }
        let header_len = cr + 2;
        if count == 0 {
            return Ok(Some(Some(header_len)));
        }
        self.spans.clear();
        if self.spans.capacity() > ARGS_PREALLOC_MAX {
            // A huge command came before: do not keep its slots for the
            // connection's lifetime.
            self.spans.shrink_to(ARGS_PREALLOC_MAX);
        }
        self.spans.reserve(count.min(ARGS_PREALLOC_MAX));
        self.remaining = count;
        self.pos = header_len;
        self.bulk = None;
        Ok(Some(None))
    }

    /// Reads the `$len\r\n` header at `self.pos`. `Ok(None)`: incomplete.
    fn bulk_header(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        let start = self.pos;
        let cr = match self.line_end(buf, start, b'\r') {
            Line::End(cr) => cr,
            Line::More => return Ok(None),
            Line::TooLong => return Err(RespError::BulkCountTooBig),
        };
        if cr.saturating_add(1) >= buf.len() {
            return Ok(None);
        }
        // `start <= cr < buf.len()`, so the byte exists.
        let first = buf.get(start).copied().unwrap_or(0);
        if first != b'$' {
            return Err(RespError::ExpectedDollar(first));
        }
        let len = buf
            .get(start + 1..cr)
            .and_then(string2ll)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n <= self.limits.bulk_len_max)
            .ok_or(RespError::InvalidBulkLength)?;
        if len > UNAUTH_BULK_LEN_MAX && self.auth_required {
            return Err(RespError::UnauthenticatedBulkLength);
        }
        self.pos = cr + 2;
        self.bulk = Some(len);
        Ok(Some(len))
    }

    /// Parses an inline command: one line, split like Redis's `sdssplitargs`.
    fn inline(&mut self, buf: &[u8]) -> Result<Option<(Step, usize)>, RespError> {
        let newline = match self.line_end(buf, 0, b'\n') {
            Line::End(at) => at,
            Line::More => return Ok(None),
            Line::TooLong => return Err(RespError::InlineTooBig),
        };
        self.end_command();
        let mut line = buf.get(..newline).unwrap_or_default();
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        let args = split_args(line).ok_or(RespError::UnbalancedQuotes)?;
        let consumed = newline + 1;
        if args.is_empty() {
            return Ok(Some((Step::Skip, consumed)));
        }
        if args.len() > self.limits.args_max {
            return Err(RespError::InvalidMultibulkLength);
        }
        if args.iter().any(|a| a.len() > self.limits.bulk_len_max) {
            return Err(RespError::InvalidBulkLength);
        }
        Ok(Some((Step::Inline(args), consumed)))
    }

    /// Finds `terminator` in the line starting at `start`, looking at most
    /// `inline_len_max + 1` bytes past `start` (Redis refuses a header or inline line
    /// once more than `inline_len_max` bytes are pending without a terminator).
    /// Resumes where the previous call on the same line stopped.
    fn line_end(&mut self, buf: &[u8], start: usize, terminator: u8) -> Line {
        let limit = self.limits.inline_len_max;
        let window_end = start.saturating_add(limit).saturating_add(1).min(buf.len());
        let from = self.scanned.max(start);
        let found = buf
            .get(from..window_end)
            .and_then(|w| w.iter().position(|&b| b == terminator));
        match found {
            Some(i) => {
                self.scanned = from + i;
                Line::End(from + i)
            }
            None => {
                self.scanned = from.max(window_end);
                if buf.len().saturating_sub(start) > limit {
                    Line::TooLong
                } else {
                    Line::More
                }
            }
        }
    }

    /// Clears the per-command position state (not `spans`, which the caller drains).
    fn end_command(&mut self) {
        self.remaining = 0;
        self.pos = 0;
        self.bulk = None;
        self.scanned = 0;
    }
}

/// The arguments of one command as [`parse`] returns them: borrowed from the input
/// for multibulk commands, owned for inline ones.
pub type Args<'a> = Vec<Cow<'a, [u8]>>;

/// Parses the next command at the front of `buf`, statelessly.
///
/// - `Ok(Some((args, consumed)))`: a command taking `consumed` bytes (`>= 1`,
///   `<= buf.len()`). Multibulk arguments borrow from `buf`; inline ones are owned.
///   `args` is empty only when `buf` held nothing but empty commands (`*0`, blank
///   lines) before an incomplete one or its end: skip `consumed` bytes and go on.
/// - `Ok(None)`: more bytes are needed.
/// - `Err(e)`: malformed input.
///
/// Each call starts from scratch; a connection should use [`RequestParser`], which
/// does not rescan a partly received command.
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Option<(Args<'a>, usize)>, RespError> {
    let mut parser = RequestParser::new(*limits);
    let mut skipped = 0;
    loop {
        let rest = buf.get(skipped..).unwrap_or_default();
        match parser.step(rest)? {
            None if skipped == 0 => return Ok(None),
            None => return Ok(Some((Vec::new(), skipped))),
            Some((Step::Skip, consumed)) => skipped += consumed,
            Some((Step::Multibulk, consumed)) => {
                let args = parser
                    .spans
                    .iter()
                    .map(|&(s, e)| Cow::Borrowed(rest.get(s..e).unwrap_or_default()));
                return Ok(Some((args.collect(), skipped + consumed)));
            }
            Some((Step::Inline(args), consumed)) => {
                let args = args.into_iter().map(Cow::Owned).collect();
                return Ok(Some((args, skipped + consumed)));
            }
        }
    }
}

/// C's `isspace` in the C locale.
fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// Value of an ASCII hex digit.
fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Redis's `sdssplitargs` (sds.c) over one inline line; `None` for unbalanced
/// quotes. The line is a C string there, so it ends at its first NUL byte.
///
/// Blanks between arguments are C `isspace` bytes, but an unquoted argument ends
/// only at space, tab, CR, LF or the end. Inside double quotes: `\xHH`, `\n`, `\r`,
/// `\t`, `\b`, `\a`, and `\<any>` for that byte. Inside single quotes only `\'`. A
/// quote may open mid-argument (`a"b c"` is `ab c`), and a closing quote must be
/// followed by an `isspace` byte or the end.
fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    // The byte at `i`, or the C string's terminating NUL past the end.
    let at = |i: usize| line.get(i).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut p = 0;
    loop {
        while at(p) != 0 && is_c_space(at(p)) {
            p += 1;
        }
        if at(p) == 0 {
            return Some(args);
        }
        let mut current = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(p);
            if in_double {
                let hex = (at(p + 1) == b'x')
                    .then(|| Some(hex_value(at(p + 2))? * 16 + hex_value(at(p + 3))?))
                    .flatten();
                if let (b'\\', Some(byte)) = (c, hex) {
                    current.push(byte);
                    p += 3;
                } else if c == b'\\' && at(p + 1) != 0 {
                    p += 1;
                    current.push(match at(p) {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 0x08,
                        b'a' => 0x07,
                        other => other,
                    });
                } else if c == b'"' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else if in_single {
                if c == b'\\' && at(p + 1) == b'\'' {
                    p += 1;
                    current.push(b'\'');
                } else if c == b'\'' {
                    if at(p + 1) != 0 && !is_c_space(at(p + 1)) {
                        return None;
                    }
                    p += 1;
                    break;
                } else if c == 0 {
                    return None;
                } else {
                    current.push(c);
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' | 0 => {
                        if c != 0 {
                            p += 1;
                        }
                        break;
                    }
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => current.push(c),
                }
            }
            p += 1;
        }
        args.push(current);
    }
}

/// Appends `args` as one multibulk command (`*N` then `$len` + bytes per argument):
/// the request encoder of clients and load generators.
pub fn encode_command<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    let payload: usize = args
        .iter()
        .map(|a| a.as_ref().len().saturating_add(16))
        .fold(16, usize::saturating_add);
    out.reserve(payload);
    put_header_u64(out, b'*', args.len() as u64);
    for arg in args {
        let arg = arg.as_ref();
        put_header_u64(out, b'$', arg.len() as u64);
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Cmd = Vec<Vec<u8>>;

    fn cmd(args: &[&[u8]]) -> Cmd {
        args.iter().map(|a| a.to_vec()).collect()
    }

    /// Parses the whole of `data` statelessly: the commands, then the outcome.
    fn parse_all(data: &[u8], limits: &Limits) -> (Vec<Cmd>, Result<usize, RespError>) {
        let mut cmds = Vec::new();
        let mut off = 0;
        loop {
            match parse(&data[off..], limits) {
                Ok(Some((args, n))) => {
                    off += n;
                    if !args.is_empty() {
                        cmds.push(args.into_iter().map(|a| a.into_owned()).collect());
                    }
                }
                Ok(None) => return (cmds, Ok(off)),
                Err(e) => return (cmds, Err(e)),
            }
        }
    }

    /// The error the stateless parser reports for `data` (which must fail).
    fn error_of(data: &[u8]) -> RespError {
        parse_all(data, &Limits::default()).1.unwrap_err()
    }

    fn inline(line: &str) -> Result<Option<Cmd>, RespError> {
        parse(line.as_bytes(), &Limits::default())
            .map(|o| o.map(|(args, _)| args.into_iter().map(|a| a.into_owned()).collect()))
    }

    fn reply_of(e: RespError) -> Vec<u8> {
        let mut out = BytesMut::new();
        e.write_reply(&mut out);
        out.to_vec()
    }

    #[test]
    fn error_texts_are_redis_7_0s() {
        let cases: &[(&[u8], &str)] = &[
            (b"*abc\r\n", "Protocol error: invalid multibulk length"),
            (b"*1x\r\n", "Protocol error: invalid multibulk length"),
            (b"*-0\r\n", "Protocol error: invalid multibulk length"),
            (b"*01\r\n", "Protocol error: invalid multibulk length"),
            (b"*\r\n", "Protocol error: invalid multibulk length"),
            (b"*1048577\r\n", "Protocol error: invalid multibulk length"),
            (b"*1\r\n$-1\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$x\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\n$4194305\r\n", "Protocol error: invalid bulk length"),
            (b"*1\r\nGET\r\n", "Protocol error: expected '$', got 'G'"),
            (
                b"*2\r\n$1\r\na\r\n:1\r\n",
                "Protocol error: expected '$', got ':'",
            ),
            (b"*1\r\n\r\n", "Protocol error: expected '$', got ' '"),
            (
                b"SET k \"v\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
            (
                b"SET k 'v\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
            (
                b"SET k \"v\"x\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
            (
                b"SET k 'v'x\r\n",
                "Protocol error: unbalanced quotes in request",
            ),
        ];
        for &(input, text) in cases {
            let e = error_of(input);
            assert_eq!(e.to_string(), text, "{:?}", String::from_utf8_lossy(input));
            assert_eq!(reply_of(e), format!("-ERR {text}\r\n").into_bytes());
        }
    }

    #[test]
    fn too_big_lines_are_refused_one_byte_past_the_limit() {
        let limits = Limits::default();
        let inline_ok = vec![b'a'; INLINE_LEN_MAX];
        assert_eq!(parse(&inline_ok, &limits), Ok(None));
        let mut inline_big = inline_ok.clone();
        inline_big.push(b'a');
        assert_eq!(error_of(&inline_big), RespError::InlineTooBig);
        assert_eq!(
            error_of(&inline_big).to_string(),
            "Protocol error: too big inline request"
        );
        // A line of exactly the limit, then its newline, is accepted.
        let mut line = inline_ok.clone();
        line.push(b'\n');
        let (args, n) = parse(&line, &limits).unwrap().unwrap();
        assert_eq!((args.len(), n), (1, INLINE_LEN_MAX + 1));

        let mut mbulk = b"*".to_vec();
        mbulk.resize(INLINE_LEN_MAX, b'1');
        assert_eq!(parse(&mbulk, &limits), Ok(None));
        mbulk.push(b'1');
        assert_eq!(
            error_of(&mbulk).to_string(),
            "Protocol error: too big mbulk count string"
        );

        let mut bulk = b"*1\r\n$".to_vec();
        bulk.resize(4 + INLINE_LEN_MAX, b'1');
        assert_eq!(parse(&bulk, &limits), Ok(None));
        bulk.push(b'1');
        assert_eq!(
            error_of(&bulk).to_string(),
            "Protocol error: too big bulk count string"
        );
    }

    #[test]
    fn limits_are_inclusive_and_overridable() {
        let d = Limits::default();
        assert_eq!(
            (d.bulk_len_max, d.args_max, d.inline_len_max),
            (4 << 20, 1 << 20, 64 << 10)
        );
        // At the limits: incomplete, not refused.
        assert_eq!(parse(b"*1048576\r\n", &d), Ok(None));
        assert_eq!(parse(b"*1\r\n$4194304\r\n", &d), Ok(None));

        let small = Limits {
            bulk_len_max: 3,
            args_max: 2,
            inline_len_max: 8,
        };
        assert_eq!(
            parse_all(b"*2\r\n$3\r\nabc\r\n$0\r\n\r\n", &small).1,
            Ok(19)
        );
        assert_eq!(
            parse_all(b"*3\r\n", &small).1,
            Err(RespError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"*1\r\n$4\r\n", &small).1,
            Err(RespError::InvalidBulkLength)
        );
        assert_eq!(
            parse_all(b"a b c\n", &small).1,
            Err(RespError::InvalidMultibulkLength)
        );
        assert_eq!(
            parse_all(b"abcd\n", &small).1,
            Err(RespError::InvalidBulkLength)
        );
        assert_eq!(
            parse_all(b"abcdefgh\n", &small).1,
            Err(RespError::InvalidBulkLength)
        );
        assert_eq!(
            parse_all(b"abcdefghi", &small).1,
            Err(RespError::InlineTooBig)
        );
        assert_eq!(
            parse_all(b"*123456789", &small).1,
            Err(RespError::MbulkCountTooBig)
        );
        assert_eq!(
            parse_all(b"*1\r\n$12345678", &small).1,
            Err(RespError::BulkCountTooBig)
        );
    }

    #[test]
    fn unauthenticated_limits_apply_only_when_required() {
        let mut p = RequestParser::default();
        p.set_auth_required(true);
        let mut buf = BytesMut::from(&b"*11\r\n"[..]);
        let e = p.parse(&mut buf).unwrap_err();
        assert_eq!(
            e.to_string(),
            "Protocol error: unauthenticated multibulk length"
        );
        let mut buf = BytesMut::from(&b"*1\r\n$16385\r\n"[..]);
        let e = p.parse(&mut buf).unwrap_err();
        assert_eq!(e.to_string(), "Protocol error: unauthenticated bulk length");
        let mut buf = BytesMut::from(&b"*10\r\n$16384\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        p.reset();
        p.set_auth_required(false);
        let mut buf = BytesMut::from(&b"*11\r\n$16385\r\n"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
    }

    #[test]
    fn expected_dollar_shows_the_byte_like_redis() {
        assert_eq!(
            reply_of(RespError::ExpectedDollar(b'\n')),
            b"-ERR Protocol error: expected '$', got ' '\r\n"
        );
        // A NUL ends Redis's formatted C string.
        assert_eq!(
            reply_of(RespError::ExpectedDollar(0)),
            b"-ERR Protocol error: expected '$', got '\r\n"
        );
        assert_eq!(
            reply_of(RespError::ExpectedDollar(0xff)),
            b"-ERR Protocol error: expected '$', got '\xff'\r\n"
        );
        assert_eq!(
            RespError::ExpectedDollar(0xe9).to_string(),
            "Protocol error: expected '$', got '\u{e9}'"
        );
    }

    /// Valid pipelined input mixing every form, and the commands it holds.
    fn pipeline() -> (Vec<u8>, Vec<Cmd>) {
        let mut data = Vec::new();
        data.extend_from_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nhello\r\n");
        data.extend_from_slice(b"PING\r\n");
        data.extend_from_slice(b"\r\n");
        data.extend_from_slice(b"*0\r\n*-1\r\n");
        data.extend_from_slice(b"ECHO \"a b\\x41\" 'c\\'d'\n");
        data.extend_from_slice(b"*2\r\n$0\r\n\r\n$2\r\n\r\n\r\n");
        data.extend_from_slice(b"  \t \r\n");
        data.extend_from_slice(b"*1\r\n$4\r\nQUIT\r\n");
        let cmds = vec![
            cmd(&[b"SET", b"k", b"hello"]),
            cmd(&[b"PING"]),
            cmd(&[b"ECHO", b"a bA", b"c'd"]),
            cmd(&[b"", b"\r\n"]),
            cmd(&[b"QUIT"]),
        ];
        (data, cmds)
    }

    fn drain(p: &mut RequestParser, buf: &mut BytesMut, into: &mut Vec<Cmd>) {
        while let Some(args) = p.parse(buf).unwrap() {
            assert!(!args.is_empty());
            into.push(args.iter().map(|a| a.to_vec()).collect());
        }
    }

    #[test]
    fn every_split_point_waits_then_parses_the_same_commands() {
        let (data, want) = pipeline();
        assert_eq!(
            parse_all(&data, &Limits::default()),
            (want.clone(), Ok(data.len()))
        );
        for k in 0..=data.len() {
            // Stateless: a prefix never errors and yields a prefix of the commands.
            let (got, end) = parse_all(&data[..k], &Limits::default());
            assert!(end.is_ok(), "split {k}");
            assert_eq!(got[..], want[..got.len()], "split {k}");
            // Stateful: first part, then the rest.
            let mut p = RequestParser::default();
            let mut buf = BytesMut::from(&data[..k]);
            let mut got = Vec::new();
            drain(&mut p, &mut buf, &mut got);
            buf.extend_from_slice(&data[k..]);
            drain(&mut p, &mut buf, &mut got);
            assert_eq!(got, want, "split {k}");
            assert!(buf.is_empty());
        }
        // One byte at a time.
        let mut p = RequestParser::default();
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for &b in &data {
            buf.extend_from_slice(&[b]);
            drain(&mut p, &mut buf, &mut got);
        }
        assert_eq!(got, want);
    }

    #[test]
    fn multibulk_args_are_slices_of_the_read_buffer() {
        let mut buf = BytesMut::with_capacity(64);
        buf.extend_from_slice(b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n*1\r\n$4\r\nPING\r\n");
        let base = buf.as_ptr() as usize;
        let end = base + buf.len();
        let mut p = RequestParser::default();
        let first = p.parse(&mut buf).unwrap().unwrap();
        let second = p.parse(&mut buf).unwrap().unwrap();
        for arg in first.iter().chain(&second) {
            let at = arg.as_ptr() as usize;
            assert!(at >= base && at + arg.len() <= end, "argument was copied");
        }
        assert_eq!(first, vec![Bytes::from("GET"), Bytes::from("key")]);
        assert_eq!(second, vec![Bytes::from("PING")]);
        assert_eq!(p.parse(&mut buf), Ok(None));
    }

    #[test]
    fn skipped_commands_are_consumed() {
        assert_eq!(
            parse(b"\r\n*0\r\n", &Limits::default()),
            Ok(Some((vec![], 6)))
        );
        assert_eq!(
            parse(b"\n\n*-5\r\n*1", &Limits::default()),
            Ok(Some((vec![], 7)))
        );
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(&b"\r\n\n   \n*0\r\n*-1\r\n*2"[..]);
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert_eq!(&buf[..], b"*2");
    }

    #[test]
    fn declared_sizes_are_not_allocated() {
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(&b"*1048576\r\n$4194304\r\nabc"[..]);
        let cap = buf.capacity();
        assert_eq!(p.parse(&mut buf), Ok(None));
        assert!(p.spans.capacity() <= ARGS_PREALLOC_MAX);
        assert_eq!(buf.capacity(), cap);
        assert_eq!(buf.len(), 23);
    }

    #[test]
    fn redis_does_not_check_crlf_bytes() {
        // The byte after '\r' in a header and the two after the data are skipped.
        let (cmds, end) = parse_all(b"*1\rX$4\r?PINGxy*1\r\n$1\r\nz\r\n", &Limits::default());
        assert_eq!(cmds, vec![cmd(&[b"PING"]), cmd(&[b"z"])]);
        assert!(end.is_ok());
    }

    #[test]
    fn inline_quoting_follows_sdssplitargs() {
        let ok: &[(&str, &[&[u8]])] = &[
            ("SET k \"hello world\"\r\n", &[b"SET", b"k", b"hello world"]),
            ("  GET\t k  \n", &[b"GET", b"k"]),
            ("PING\r\r\n", &[b"PING"]),
            (
                "E \"\\x41\\x4a\\n\\r\\t\\b\\a\\\\\\\"z\"\n",
                &[b"E", b"AJ\n\r\t\x08\x07\\\"z"],
            ),
            ("E \"\\xZZ\\q\"\n", &[b"E", b"xZZq"]),
            ("E \"\\x4\"\n", &[b"E", b"x4"]),
            ("E 'it\\'s' 'a\\nb'\n", &[b"E", b"it's", b"a\\nb"]),
            ("E a\"b c\"\n", &[b"E", b"ab c"]),
            ("E x'y z'\n", &[b"E", b"xy z"]),
            ("E \"\" ''\n", &[b"E", b"", b""]),
            ("E \"a\"\x0bb\n", &[b"E", b"a", b"b"]),
            ("E \"a\"\tb\n", &[b"E", b"a", b"b"]),
            ("\x0bGET\x0bk\n", &[b"GET\x0bk"]),
            ("GET a\0b c\r\n", &[b"GET", b"a"]),
            ("GET caf\u{e9}\n", &[b"GET", "caf\u{e9}".as_bytes()]),
        ];
        for &(line, want) in ok {
            let want: Cmd = want.iter().map(|a| a.to_vec()).collect();
            assert_eq!(inline(line), Ok(Some(want)), "{line:?}");
        }
        for bad in [
            "E \"abc\n",
            "E 'abc\n",
            "E \"a\"b\n",
            "E 'a'b\n",
            "E \"a\\\"\n",
            "E \"a\0\"\n",
            "E \"a\\\n",
        ] {
            assert_eq!(inline(bad), Err(RespError::UnbalancedQuotes), "{bad:?}");
        }
    }

    #[test]
    fn encode_command_round_trips() {
        let mut out = BytesMut::new();
        encode_command(&mut out, &[&b"SET"[..], b"key", b"", b"a\r\nb"]);
        assert_eq!(
            &out[..],
            b"*4\r\n$3\r\nSET\r\n$3\r\nkey\r\n$0\r\n\r\n$4\r\na\r\nb\r\n"
        );
        let (args, n) = parse(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!(n, out.len());
        assert_eq!(args, vec![&b"SET"[..], b"key", b"", b"a\r\nb"]);
        let mut out = BytesMut::new();
        encode_command::<&[u8]>(&mut out, &[]);
        assert_eq!(&out[..], b"*0\r\n");
    }

    proptest! {
        #[test]
        fn encoded_commands_parse_back_at_any_split(
            cmds in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 1..6),
                1..8,
            ),
            split in any::<prop::sample::Index>(),
        ) {
            let mut data = BytesMut::new();
            for c in &cmds {
                encode_command(&mut data, c);
            }
            let k = split.index(data.len() + 1);
            let mut p = RequestParser::default();
            let mut buf = BytesMut::from(&data[..k]);
            let mut got = Vec::new();
            drain(&mut p, &mut buf, &mut got);
            buf.extend_from_slice(&data[k..]);
            drain(&mut p, &mut buf, &mut got);
            prop_assert_eq!(got, cmds);
        }
    }
}
