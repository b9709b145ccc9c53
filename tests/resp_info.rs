//! INFO's identity fields: `run_id` and `master_replid` name one run of the process,
//! as in Redis. Tools compare them to notice a restart, so they must be the same on
//! every call and on every core, and change when the node restarts.

mod common;

use common::resp::Resp;
use common::Node;
use ringkv::resp::Value;

const CORES: u32 = 2;

/// `field:value` from an INFO reply.
fn info_field(c: &mut Resp, field: &str) -> String {
    let Value::Bulk(text) = c.line("INFO") else {
        panic!("INFO is a bulk string in RESP2");
    };
    let text = String::from_utf8_lossy(&text).into_owned();
    let prefix = format!("{field}:");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{text}"))
        .to_string()
}

/// The core serving a connection: core k hands out CLIENT IDs k+1, k+1+n, ...
fn core_of(c: &mut Resp) -> u32 {
    let Value::Integer(id) = c.line("CLIENT ID") else {
        panic!("CLIENT ID is an integer");
    };
    ((id - 1) % i64::from(CORES)) as u32
}

/// The run id every core reports, after checking they all report the same one.
fn run_id_of(node: &Node) -> String {
    let mut seen_cores = [false; CORES as usize];
    let mut ids = Vec::new();
    // The kernel spreads connections over the cores; enough of them reach both.
    for _ in 0..32 {
        let mut c = Resp::connect(node.resp_addr());
        seen_cores[core_of(&mut c) as usize] = true;
        for _ in 0..2 {
            let run_id = info_field(&mut c, "run_id");
            assert_eq!(run_id.len(), 40, "{run_id}");
            assert!(run_id.bytes().all(|b| b.is_ascii_hexdigit()), "{run_id}");
            assert_eq!(info_field(&mut c, "master_replid"), run_id);
            ids.push(run_id);
        }
        if seen_cores.iter().all(|&s| s) && ids.len() >= 8 {
            break;
        }
    }
    assert!(
        seen_cores.iter().all(|&s| s),
        "connections reached every core"
    );
    ids.dedup();
    assert_eq!(ids.len(), 1, "one run id for the whole run: {ids:?}");
    ids.remove(0)
}

#[test]
fn run_id_is_fixed_for_a_run_and_changes_on_restart() {
    let dir = common::temp_dir();
    let data = dir.path().join("data");
    let mut node = Node::start_in(&data, CORES, &[]).expect("node starts");
    let first = run_id_of(&node);
    assert!(node.terminate().success());
    let node = Node::start_in(&data, CORES, &[]).expect("node restarts");
    let second = run_id_of(&node);
    assert_ne!(first, second, "a restart is a new run");
}
