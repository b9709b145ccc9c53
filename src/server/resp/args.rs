//! Argument parsing shared by the command groups, and Redis 7.0's error texts.
//!
//! Handlers return `Result<Plan, Reject>`: `?` on any helper here turns a bad
//! argument into the error reply Redis sends for it.

use std::borrow::Cow;

use bytes::Bytes;

use crate::constants::KEY_SIZE_MAX;
use crate::shard::parse_i64;

/// A command refused before it reaches a shard; the text is the whole error reply
/// after the `-` (it starts with the error code).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reject(pub Cow<'static, str>);

/// What a handler returns.
pub(crate) type Handled = Result<super::plan::Plan, Reject>;

/// `-ERR syntax error`.
pub(crate) const SYNTAX: &str = "ERR syntax error";
/// The reply to an argument that is not a 64-bit integer.
pub(crate) const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
/// The reply to an argument that is not a float.
pub(crate) const NOT_FLOAT: &str = "ERR value is not a valid float";

impl Reject {
    /// A fixed error text.
    pub fn new(text: &'static str) -> Reject {
        Reject(Cow::Borrowed(text))
    }

    /// A formatted error text.
    pub fn owned(text: String) -> Reject {
        Reject(Cow::Owned(text))
    }

    /// `-ERR syntax error`.
    pub fn syntax() -> Reject {
        Reject::new(SYNTAX)
    }

    /// `-ERR wrong number of arguments for 'name' command` (name as Redis's
    /// `fullname`: lowercase, `container|sub` for subcommands).
    pub fn arity(name: &str) -> Reject {
        Reject::owned(format!(
            "ERR wrong number of arguments for '{name}' command"
        ))
    }

    /// `-ERR invalid expire time in 'name' command`.
    pub fn expire_time(name: &str) -> Reject {
        Reject::owned(format!("ERR invalid expire time in '{name}' command"))
    }
}

/// True when `arg` equals `word` (ASCII, case-insensitive), as Redis's `strcasecmp`.
pub(crate) fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

/// A 64-bit integer argument, parsed exactly like Redis's `string2ll`.
pub(crate) fn int(arg: &[u8]) -> Result<i64, Reject> {
    parse_i64(arg).ok_or_else(|| Reject::new(NOT_INTEGER))
}

/// A key argument: the shard index holds at most `KEY_SIZE_MAX` bytes per key, so a
/// longer one is refused here (Redis has no such limit; documented).
pub(crate) fn key(arg: &Bytes) -> Result<Bytes, Reject> {
    if arg.len() > KEY_SIZE_MAX as usize {
        return Err(Reject::owned(format!(
            "ERR key is {} bytes, larger than ringkv's limit of {KEY_SIZE_MAX} bytes",
            arg.len()
        )));
    }
    Ok(arg.clone())
}

/// Formats bytes as Redis's `%.128s` does for an argument echoed in an error: at
/// most `max` bytes, cut at the first NUL (it ends the C string), lossy UTF-8 (the
/// reply writer turns CR and LF into spaces).
pub(crate) fn shown(arg: &[u8], max: usize) -> String {
    let end = arg
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(arg.len())
        .min(max);
    String::from_utf8_lossy(arg.get(..end).unwrap_or_default()).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(int(b"-9223372036854775808"), Ok(i64::MIN));
        for bad in [
            &b" 1"[..],
            b"1 ",
            b"+1",
            b"01",
            b"-0",
            b"",
            b"9223372036854775808",
            b"1.0",
        ] {
            assert_eq!(int(bad), Err(Reject::new(NOT_INTEGER)), "{bad:?}");
        }
    }

    #[test]
    fn long_keys_are_refused() {
        let long = Bytes::from(vec![b'k'; KEY_SIZE_MAX as usize + 1]);
        assert!(key(&long).is_err());
        assert!(key(&long.slice(1..)).is_ok());
    }

    #[test]
    fn shown_args_stop_at_nul_and_limit() {
        assert_eq!(shown(b"abc\0def", 128), "abc");
        assert_eq!(shown(b"abcdef", 3), "abc");
    }
}
