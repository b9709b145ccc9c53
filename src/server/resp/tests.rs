//! The command layer in process, without sockets: every golden vector of
//! `proto-spec/vectors/resp-commands.txt` (each command and error text of Redis
//! 7.0.15 that ringkv answers) is planned, run on a one-core `Core` and encoded,
//! and must give exactly the vector's bytes. `tests/resp_vectors.rs` runs the same
//! file over TCP against a node and against redis-server.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use super::plan::{respond, Barrier, Plan};
use super::{keys, multi, table, Ctx, Session};
use crate::config::Config;
use crate::constants::EXECUTOR_IO_MEMORY;
use crate::proto::Topology;
use crate::resp::{parse, Limits};
use crate::server::core::{Core, Forward, Parts, Returned, RunId, SyncNeed};
use crate::server::durable::NodeLog;
use crate::server::stats::CoreCounters;
use crate::shard::{MemoryLog, Shard, SystemClock};

const VECTORS: &str = include_str!("../../../proto-spec/vectors/resp-commands.txt");

fn unescape(text: &str) -> Vec<u8> {
    let (mut out, bytes, mut i) = (Vec::new(), text.as_bytes(), 0);
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        match bytes[i + 1] {
            b'r' => out.push(b'\r'),
            b'n' => out.push(b'\n'),
            b'\\' => out.push(b'\\'),
            b'x' => {
                let hex = std::str::from_utf8(&bytes[i + 2..i + 4]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            other => panic!("bad escape {other}"),
        }
        i += 2;
    }
    out
}

/// `(line number, command line, ringkv's expected reply)`.
fn vectors() -> Vec<(usize, String, Vec<u8>)> {
    let mut cases: Vec<(usize, String, Vec<u8>)> = Vec::new();
    for (n, line) in VECTORS.lines().enumerate() {
        if let Some(command) = line.strip_prefix("> ") {
            cases.push((n + 1, command.to_string(), Vec::new()));
        } else if let Some(reply) = line.strip_prefix("< ").or(line.strip_prefix("= ")) {
            cases.last_mut().unwrap().2 = unescape(reply);
        }
    }
    assert!(cases.len() > 200, "the vectors file is read");
    cases
}

/// Plans, runs and encodes one command, as a connection does.
async fn answer(core: &Core, session: &mut Session, args: &[Bytes]) -> Vec<u8> {
    let mut out = BytesMut::new();
    let mut parts = Parts::default();
    let plan = table::dispatch(
        &mut Ctx {
            core,
            session,
            parts: &mut parts,
        },
        args,
    );
    match plan {
        Plan::Barrier(Barrier::Exec) => multi::exec(core, session, &mut out).await,
        Plan::Barrier(Barrier::Keys(pattern)) => {
            keys::keys(core, session.proto, &pattern, &mut out).await
        }
        Plan::Barrier(Barrier::Quit | Barrier::Sleep(_)) => out.extend_from_slice(b"+OK\r\n"),
        plan => {
            let replies = core.run(parts, SyncNeed::Default).await;
            respond(core, session, plan, &replies, &mut out);
        }
    }
    out.to_vec()
}

#[test]
fn every_golden_vector_through_the_command_layer() {
    let failures = LocalExecutorBuilder::new(Placement::Unbound)
        .io_memory(EXECUTOR_IO_MEMORY)
        .spawn(|| async move {
            let requests: MeshBuilder<Forward, _> = MeshBuilder::full(1, 16);
            let replies: MeshBuilder<Returned, _> = MeshBuilder::full(1, 16);
            let (req_tx, req_rx) = requests.join().await.unwrap();
            let (rep_tx, rep_rx) = replies.join().await.unwrap();
            let topology = Topology {
                shard_count: 1,
                hash: crate::hash::HASH_CRC32C_MOD,
                shared_port: 0,
                shard_ports: vec![0],
            };
            let core = Core::new(
                0,
                1,
                Arc::new(vec![CoreCounters::default()]),
                topology,
                Config::default(),
                Arc::new(AtomicBool::new(false)),
                // The command layer over an in-memory shard: the vectors check
                // semantics, not storage.
                Shard::new(NodeLog::Memory(MemoryLog::default()), SystemClock),
                (req_tx, rep_tx),
                RunId::random(),
            );
            core.spawn_mesh_tasks(req_rx, rep_rx);
            let mut session = Session::new(1);
            let mut failures = Vec::new();
            let mut checked = 0;
            assert_eq!(
                answer(&core, &mut session, &[Bytes::from("FLUSHALL")]).await,
                b"+OK\r\n"
            );
            for (line, command, want) in vectors() {
                let wire = format!("{command}\r\n");
                let (args, _) = parse(wire.as_bytes(), &Limits::default()).unwrap().unwrap();
                let args: Vec<Bytes> = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
                let got = answer(&core, &mut session, &args).await;
                checked += 1;
                if got != want {
                    failures.push(format!(
                        "line {line}: {command}\n   want {:?}\n    got {:?}",
                        String::from_utf8_lossy(&want),
                        String::from_utf8_lossy(&got)
                    ));
                }
            }
            assert!(checked > 200);
            failures
        })
        .unwrap()
        .join()
        .unwrap();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
