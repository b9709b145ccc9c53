//! Malformed RESP: each gets Redis's protocol error and a clean close, memory stays
//! bounded, the node never panics, and other connections carry on.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::resp::{error, simple, Resp};
use common::Node;
use ringkv::constants::{KEY_SIZE_MAX, RESP_ARGS_MAX, RESP_BULK_LEN_MAX, RESP_INLINE_LEN_MAX};
use ringkv::resp::Value;

/// Sends `input`, then expects `replies` followed by the server closing.
fn closes_after(node: &Node, input: &[u8], replies: &[Value]) {
    let mut c = Resp::connect(node.resp_addr());
    c.send_raw(input);
    for want in replies {
        assert_eq!(
            &c.read(),
            want,
            "input {:?}",
            String::from_utf8_lossy(input)
        );
    }
    assert!(
        c.closed(),
        "connection closed after {:?}",
        String::from_utf8_lossy(input)
    );
}

#[test]
fn protocol_errors_get_redis_texts_then_a_close() {
    let node = Node::start(2, &["--idle-timeout-secs", "2"]);
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            b"*1\r\n$-5\r\n".to_vec(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            format!("*2\r\n$3\r\nGET\r\n${}\r\n", RESP_BULK_LEN_MAX + 1).into_bytes(),
            "ERR Protocol error: invalid bulk length",
        ),
        (
            b"*1\r\n*1\r\n$4\r\nPING\r\n".to_vec(),
            "ERR Protocol error: expected '$', got '*'",
        ),
        (
            b"*x\r\n".to_vec(),
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            format!("*{}\r\n", RESP_ARGS_MAX + 1).into_bytes(),
            "ERR Protocol error: invalid multibulk length",
        ),
        (
            b"SET k \"v\r\n".to_vec(),
            "ERR Protocol error: unbalanced quotes in request",
        ),
        (
            vec![b'a'; RESP_INLINE_LEN_MAX as usize + 1],
            "ERR Protocol error: too big inline request",
        ),
    ];
    for (input, text) in cases {
        closes_after(&node, &input, &[error(text)]);
    }
    // Commands before the bad one are answered first, as Redis does.
    closes_after(
        &node,
        b"PING\r\n*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n",
        &[
            simple("PONG"),
            simple("PONG"),
            error("ERR Protocol error: invalid bulk length"),
        ],
    );
    // The node is fine, and counted them.
    let mut c = Resp::connect(node.resp_addr());
    assert_eq!(c.line("PING"), simple("PONG"));
    let Value::Bulk(info) = c.line("INFO stats") else {
        panic!("INFO is a bulk string")
    };
    let info = String::from_utf8_lossy(&info).into_owned();
    assert!(info.contains("ringkv_protocol_errors:8\r\n"), "{info}");
}

#[test]
fn bad_commands_never_drop_the_connection() {
    let node = Node::start(2, &[]);
    let mut c = Resp::connect(node.resp_addr());
    c.send_raw(b"FOO\r\n*0\r\n\r\nGET\r\n");
    assert_eq!(
        c.read(),
        error("ERR unknown command 'FOO', with args beginning with: ")
    );
    assert_eq!(
        c.read(),
        error("ERR wrong number of arguments for 'get' command")
    );
    let long_key = vec![b'k'; KEY_SIZE_MAX as usize + 1];
    let Value::Error(e) = c.cmd(&[&b"SET"[..], &long_key, b"v"]) else {
        panic!("a key past the limit is refused")
    };
    assert!(e.starts_with(b"ERR key is"), "{e:?}");
    assert_eq!(c.line("PING"), simple("PONG"));
}

/// A command declaring more than it sends cannot make the node buffer without
/// bound: past RESP_QUERY_BUFFER_MAX the connection gets an error and is closed.
#[test]
fn a_huge_command_that_keeps_coming_is_cut_off() {
    let node = Node::start(1, &[]);
    let mut c = Resp::connect(node.resp_addr());
    let mut writer = c.stream.try_clone().expect("clone");
    let sender = std::thread::spawn(move || {
        let started = Instant::now();
        let mut sent = 0usize;
        let _ = writer.write_all(format!("*{}\r\n", RESP_ARGS_MAX).as_bytes());
        let arg = [b"$1000\r\n".as_slice(), &[b'x'; 1000], b"\r\n"].concat();
        // Bounded: at most 64 MiB or 20 s, whichever first; the server cuts earlier.
        while sent < 64 << 20 && started.elapsed() < Duration::from_secs(20) {
            if writer.write_all(&arg).is_err() {
                return true;
            }
            sent += arg.len();
        }
        false
    });
    let reply = c.try_read();
    assert!(
        matches!(&reply, Some(Value::Error(e)) if e.starts_with(b"ERR Protocol error: a command exceeds")),
        "{reply:?}"
    );
    assert!(c.closed());
    assert!(sender.join().expect("sender"), "the server stopped reading");
}

/// A command that stalls half-way is closed by the idle timeout.
#[test]
fn a_stalled_command_times_out() {
    let node = Node::start(1, &["--idle-timeout-secs", "1"]);
    let mut c = Resp::connect(node.resp_addr());
    c.send_raw(b"*2\r\n$3\r\nGET\r\n$10\r\nabc");
    let started = Instant::now();
    assert!(c.closed());
    assert!(started.elapsed() < Duration::from_secs(5));
}
