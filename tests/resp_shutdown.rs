//! SIGTERM with RESP connections open (idle, half a command, DEBUG SLEEP, inside
//! MULTI): the node closes them within a watch tick or two and exits cleanly.

mod common;

use std::time::{Duration, Instant};

use common::resp::{simple, Resp};
use common::Node;

#[test]
fn sigterm_closes_resp_connections_promptly() {
    let mut node = Node::start(2, &[]);
    let mut idle = Resp::connect(node.resp_addr());
    assert_eq!(idle.line("PING"), simple("PONG"));
    let mut half = Resp::connect(node.resp_addr());
    half.send_raw(b"*2\r\n$3\r\nGET\r\n$10\r\nabc");
    let mut sleeper = Resp::connect(node.resp_addr());
    sleeper.send_raw(b"DEBUG SLEEP 10\r\n");
    let mut multi = Resp::connect(node.resp_addr());
    assert_eq!(multi.line("MULTI"), simple("OK"));
    std::thread::sleep(Duration::from_millis(100));
    let started = Instant::now();
    let status = node.terminate();
    assert!(status.success(), "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "stopped in {:?}",
        started.elapsed()
    );
    // The sleeper is answered (its sleep cut short), the others just closed.
    assert_eq!(sleeper.try_read(), Some(simple("OK")));
    for c in [&mut idle, &mut half, &mut multi, &mut sleeper] {
        assert!(c.closed());
    }
}
