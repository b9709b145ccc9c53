//! Connection and server commands: PING, ECHO, HELLO, AUTH, SELECT, QUIT, INFO,
//! CONFIG, COMMAND, CLIENT, WAIT, DEBUG, FUNCTION, TIME.
//!
//! What ringkv does not have (passwords, databases other than 0, replicas,
//! functions) is answered as Redis answers when it is configured without them, so
//! clients that probe for them carry on.

use std::fmt::Write as _;

use bytes::Bytes;

use super::args::{int, is, shown, Handled, Reject};
use super::plan::{Barrier, Plan};
use super::table::{arity_ok, lookup, Spec, COMMANDS};
use super::{Ctx, Session, REDIS_VERSION};
use crate::constants::{RESP_BULK_LEN_MAX, RESP_DEBUG_SLEEP_MS_MAX, RESP_QUERY_BUFFER_MAX};
use crate::resp::{Protocol, Value};
use crate::server::core::Core;
use crate::server::stats::CoreCounters;
use crate::shard::{Command, Reply, ShardStats};

fn bulk(text: impl Into<Bytes>) -> Value {
    Value::Bulk(text.into())
}

fn bulk_str(text: &str) -> Value {
    Value::Bulk(Bytes::copy_from_slice(text.as_bytes()))
}

/// `ERR unknown subcommand 'x'. Try NAME HELP.`
fn unknown_subcommand(args: &[Bytes]) -> Reject {
    Reject::owned(format!(
        "ERR unknown subcommand '{}'. Try {} HELP.",
        shown(&args[1], 128),
        String::from_utf8_lossy(&args[0]).to_ascii_uppercase()
    ))
}

/// Checks a subcommand's arity; Redis names it `container|sub`.
fn sub_arity(args: &[Bytes], container: &str, sub: &str, arity: i32) -> Result<(), Reject> {
    if arity_ok(arity, args.len()) {
        Ok(())
    } else {
        Err(Reject::arity(&format!("{container}|{sub}")))
    }
}

/// `PING [message]`.
pub(crate) fn ping(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    match args {
        [_] => Ok(Plan::Static(b"+PONG\r\n")),
        [_, message] => Ok(Plan::Bulk(message.clone())),
        _ => Err(Reject::arity("ping")),
    }
}

/// `ECHO message`.
pub(crate) fn echo(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    Ok(Plan::Bulk(args[1].clone()))
}

/// Accepts a client name as Redis's `clientSetNameOrReply` does: printable ASCII
/// without spaces; empty clears it.
fn set_name(session: &mut Session, name: &Bytes) -> Result<(), Reject> {
    if name.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
        return Err(Reject::new(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    session.name = (!name.is_empty()).then(|| Bytes::copy_from_slice(name));
    Ok(())
}

/// Checks credentials the way Redis does without a password configured: the
/// `default` user accepts any password, other users do not exist.
fn check_auth(user: &[u8]) -> Result<(), Reject> {
    if user == b"default" {
        Ok(())
    } else {
        Err(Reject::new(
            "WRONGPASS invalid username-password pair or user is disabled.",
        ))
    }
}

/// `HELLO [protover [AUTH username password] [SETNAME clientname]]`.
pub(crate) fn hello(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let mut proto = None;
    if let Some(version) = args.get(1) {
        let version = int(version)
            .map_err(|_| Reject::new("ERR Protocol version is not an integer or out of range"))?;
        proto = Some(
            Protocol::from_version(version)
                .ok_or_else(|| Reject::new("NOPROTO unsupported protocol version"))?,
        );
    }
    let mut j = 2;
    let mut name = None;
    let mut user = None;
    while let Some(opt) = args.get(j) {
        let more = args.len() - 1 - j;
        if is(opt, "auth") && more >= 2 {
            user = Some(&args[j + 1]);
            j += 3;
        } else if is(opt, "setname") && more >= 1 {
            name = Some(&args[j + 1]);
            j += 2;
        } else {
            return Err(Reject::owned(format!(
                "ERR Syntax error in HELLO option '{}'",
                shown(opt, usize::MAX)
            )));
        }
    }
    if let Some(user) = user {
        check_auth(user)?;
    }
    if let Some(name) = name {
        set_name(ctx.session, name)?;
    }
    Ok(Plan::Hello(proto))
}

/// HELLO's reply: the same seven fields as Redis's.
pub(crate) fn hello_reply(_core: &Core, session: &Session) -> Value {
    Value::Map(vec![
        (bulk_str("server"), bulk_str("redis")),
        (bulk_str("version"), bulk_str(REDIS_VERSION)),
        (
            bulk_str("proto"),
            Value::Integer(i64::from(session.proto.version())),
        ),
        (bulk_str("id"), Value::Integer(session.id as i64)),
        (bulk_str("mode"), bulk_str("standalone")),
        (bulk_str("role"), bulk_str("master")),
        (bulk_str("modules"), Value::Array(vec![])),
    ])
}

/// `AUTH [username] password`, answered as by a Redis without a password.
pub(crate) fn auth(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    match args {
        [_, _] => Err(Reject::new(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        )),
        [_, user, _] => check_auth(user).map(|()| Plan::Static(b"+OK\r\n")),
        _ => Err(Reject::syntax()),
    }
}

/// `SELECT index`: ringkv has database 0 only, as a Redis with `databases 1`.
pub(crate) fn select(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let index = int(&args[1])?;
    if i32::try_from(index).is_err() {
        return Err(Reject::new(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    if index != 0 {
        return Err(Reject::new("ERR DB index is out of range"));
    }
    Ok(Plan::Static(b"+OK\r\n"))
}

/// `QUIT`.
pub(crate) fn quit(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    Ok(Plan::Barrier(Barrier::Quit))
}

/// `WAIT numreplicas timeout`: ringkv has no replicas yet, so 0 acknowledged them,
/// at once (Redis would wait for the timeout when asked for more than 0).
pub(crate) fn wait(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let timeout =
        int(&args[2]).map_err(|_| Reject::new("ERR timeout is not an integer or out of range"))?;
    if timeout < 0 {
        return Err(Reject::new("ERR timeout is negative"));
    }
    int(&args[1])?;
    Ok(Plan::Integer(0))
}

/// `TIME`.
pub(crate) fn time(_ctx: &mut Ctx<'_>, _args: &[Bytes]) -> Handled {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Ok(Plan::Value(Value::Array(vec![
        bulk(now.as_secs().to_string()),
        bulk(now.subsec_micros().to_string()),
    ])))
}

/// `DEBUG SLEEP seconds` (fractions allowed) and `DEBUG HELP`; no other DEBUG
/// subcommand.
pub(crate) fn debug(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    if is(&args[1], "help") && args.len() == 2 {
        return Ok(Plan::Value(Value::Array(vec![
            bulk_str("DEBUG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"),
            bulk_str("SLEEP <seconds>"),
            bulk_str(
                "    Delay this connection's reply for <seconds> (at most 10). Decimals allowed.",
            ),
            bulk_str("HELP"),
            bulk_str("    Print this help."),
        ])));
    }
    if !is(&args[1], "sleep") || args.len() != 3 {
        // DEBUG is not a container command in Redis 7.0: it parses its own
        // subcommands and answers a wrong one, or a wrong count, with this text.
        return Err(Reject::owned(format!(
            "ERR unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
            shown(&args[1], 128)
        )));
    }
    // Redis uses strtod and ignores junk; a non-number sleeps 0.
    let secs: f64 = std::str::from_utf8(&args[2])
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0.0);
    let ms = (secs * 1000.0).clamp(0.0, RESP_DEBUG_SLEEP_MS_MAX as f64) as u64;
    Ok(if ms == 0 {
        Plan::Static(b"+OK\r\n")
    } else {
        Plan::Barrier(Barrier::Sleep(ms))
    })
}

/// `FUNCTION FLUSH [ASYNC | SYNC]` and `FUNCTION LIST`: there are no functions.
pub(crate) fn function(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let sub = &args[1];
    if is(sub, "flush") {
        sub_arity(args, "function", "flush", -2)?;
        match args.get(2..) {
            Some([]) => {}
            Some([mode]) if is(mode, "async") || is(mode, "sync") => {}
            _ => {
                return Err(Reject::new(
                    "ERR FUNCTION FLUSH only supports SYNC|ASYNC option",
                ))
            }
        }
        Ok(Plan::Static(b"+OK\r\n"))
    } else if is(sub, "list") {
        Ok(Plan::Value(Value::Array(vec![])))
    } else {
        Err(unknown_subcommand(args))
    }
}

/// `CLIENT ID | GETNAME | SETNAME | SETINFO | INFO | LIST | NO-EVICT | NO-TOUCH`.
pub(crate) fn client(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let sub = &args[1];
    let session = &mut *ctx.session;
    if is(sub, "id") {
        sub_arity(args, "client", "id", 2)?;
        Ok(Plan::Integer(session.id as i64))
    } else if is(sub, "getname") {
        sub_arity(args, "client", "getname", 2)?;
        Ok(Plan::BulkOrNull(session.name.clone()))
    } else if is(sub, "setname") {
        sub_arity(args, "client", "setname", 3)?;
        set_name(session, &args[2])?;
        Ok(Plan::Static(b"+OK\r\n"))
    } else if is(sub, "setinfo") {
        sub_arity(args, "client", "setinfo", 4)?;
        let value = &args[3];
        if value.iter().any(|&b| !(b'!'..=b'~').contains(&b)) {
            return Err(Reject::owned(format!(
                "ERR {} cannot contain spaces, newlines or special characters.",
                shown(&args[2], 128)
            )));
        }
        let value = Some(Bytes::copy_from_slice(value));
        if is(&args[2], "lib-name") {
            session.lib.0 = value;
        } else if is(&args[2], "lib-ver") {
            session.lib.1 = value;
        } else {
            return Err(Reject::owned(format!(
                "ERR Unrecognized option '{}'",
                shown(&args[2], 128)
            )));
        }
        Ok(Plan::Static(b"+OK\r\n"))
    } else if is(sub, "info") {
        sub_arity(args, "client", "info", 2)?;
        Ok(client_text(client_line(session)))
    } else if is(sub, "list") {
        client_list(session, &args[2..]).map(client_text)
    } else if is(sub, "no-evict") || is(sub, "no-touch") {
        sub_arity(
            args,
            "client",
            &String::from_utf8_lossy(sub).to_ascii_lowercase(),
            3,
        )?;
        if is(&args[2], "on") || is(&args[2], "off") {
            Ok(Plan::Static(b"+OK\r\n"))
        } else {
            Err(Reject::syntax())
        }
    } else {
        Err(unknown_subcommand(args))
    }
}

/// The CLIENT INFO line of this connection, `\n` included. Only this connection:
/// connections live on their own cores, and ringkv does not gather them in one place.
fn client_line(session: &Session) -> String {
    let show = |b: &Option<Bytes>| {
        b.as_deref()
            .map(String::from_utf8_lossy)
            .unwrap_or_default()
            .into_owned()
    };
    format!(
        "id={} name={} db=0 multi={} watch={} resp={} lib-name={} lib-ver={}\n",
        session.id,
        show(&session.name),
        session
            .multi
            .as_ref()
            .map_or(-1, |q| q.commands.len() as i64),
        session.watched.len(),
        session.proto.version(),
        show(&session.lib.0),
        show(&session.lib.1),
    )
}

/// CLIENT INFO and LIST answer verbatim text (a bulk string in RESP2), as Redis does.
fn client_text(text: String) -> Plan {
    Plan::Value(Value::Verbatim {
        format: *b"txt",
        text: Bytes::from(text),
    })
}

/// `CLIENT LIST [TYPE type | ID id [id ...]]`, parsed in Redis's order. The list holds
/// this connection only, so the filters are exact for it: it is of type `normal`
/// (ringkv has no replicas, masters or pub/sub clients), and an ID names it or no one.
fn client_list(session: &Session, options: &[Bytes]) -> Result<String, Reject> {
    let line = client_line(session);
    match options {
        [] => Ok(line),
        [opt, kind] if is(opt, "type") => {
            if is(kind, "normal") {
                Ok(line)
            } else if ["master", "replica", "slave", "pubsub"]
                .iter()
                .any(|t| is(kind, t))
            {
                Ok(String::new())
            } else {
                Err(Reject::owned(format!(
                    "ERR Unknown client type '{}'",
                    shown(kind, usize::MAX)
                )))
            }
        }
        [opt, ids @ ..] if is(opt, "id") && !ids.is_empty() => {
            let mut text = String::new();
            for id in ids {
                let id = int(id).map_err(|_| Reject::new("ERR Invalid client ID"))?;
                // A repeated ID is listed each time, as in Redis.
                if id == session.id as i64 {
                    text.push_str(&line);
                }
            }
            Ok(text)
        }
        _ => Err(Reject::syntax()),
    }
}

/// The settings `CONFIG GET` reports: what tools probe, with ringkv's values.
fn settings(core: &Core) -> Vec<(&'static str, String)> {
    let config = &core.config;
    vec![
        ("save", String::new()),
        ("appendonly", "no".into()),
        ("maxmemory", "0".into()),
        ("maxmemory-policy", "noeviction".into()),
        ("databases", "1".into()),
        ("cluster-enabled", "no".into()),
        ("requirepass", String::new()),
        (
            "port",
            core.resp_port.get().map_or(0, u32::from).to_string(),
        ),
        ("bind", config.bind.to_string()),
        ("timeout", config.idle_timeout_secs.to_string()),
        ("maxclients", config.max_connections.to_string()),
        ("proto-max-bulk-len", RESP_BULK_LEN_MAX.to_string()),
        (
            "client-query-buffer-limit",
            RESP_QUERY_BUFFER_MAX.to_string(),
        ),
        ("dir", config.data_dir.display().to_string()),
    ]
}

/// `CONFIG GET parameter [parameter ...]` (globs, any case); SET and the rest are
/// refused: settings come from flags and the TOML file.
pub(crate) fn config(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let sub = &args[1];
    if is(sub, "get") {
        sub_arity(args, "config", "get", -3)?;
        let mut pairs = Vec::new();
        for (name, value) in settings(ctx.core) {
            let wanted = args[2..]
                .iter()
                .any(|p| super::glob::string_match(p, name.as_bytes(), true));
            if wanted {
                pairs.push((bulk_str(name), bulk(value)));
            }
        }
        Ok(Plan::Value(Value::Map(pairs)))
    } else if is(sub, "set") || is(sub, "resetstat") || is(sub, "rewrite") {
        // Redis's arity checks first, so a malformed call gets Redis's error.
        let (name, arity) = if is(sub, "set") {
            ("set", -4)
        } else if is(sub, "resetstat") {
            ("resetstat", 2)
        } else {
            ("rewrite", 2)
        };
        sub_arity(args, "config", name, arity)?;
        Err(Reject::owned(format!(
            "ERR CONFIG {} is not supported by ringkv: settings come from its flags and TOML file",
            String::from_utf8_lossy(sub).to_ascii_uppercase()
        )))
    } else if is(sub, "help") {
        Ok(Plan::Value(Value::Array(vec![
            bulk_str("CONFIG <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"),
            bulk_str("GET <pattern>"),
            bulk_str("    Return parameters matching the glob-like <pattern> and their values."),
        ])))
    } else {
        Err(unknown_subcommand(args))
    }
}

/// One command as `COMMAND` / `COMMAND INFO` describe it.
fn command_info(spec: &Spec) -> Value {
    let set = |items: Vec<Value>| Value::Set(items);
    let mut categories = vec![Value::Simple(Bytes::from(format!("@{}", spec.group)))];
    let flag_set = |f: &str| spec.flags.contains(&f);
    categories.push(Value::Simple(Bytes::from_static(if flag_set("write") {
        b"@write"
    } else {
        b"@read"
    })));
    if flag_set("fast") {
        categories.push(Value::Simple(Bytes::from_static(b"@fast")));
    }
    Value::Array(vec![
        bulk_str(spec.name),
        Value::Integer(i64::from(spec.arity)),
        set(spec
            .flags
            .iter()
            .map(|f| Value::Simple(Bytes::from_static(f.as_bytes())))
            .collect()),
        Value::Integer(i64::from(spec.keys.0)),
        Value::Integer(i64::from(spec.keys.1)),
        Value::Integer(i64::from(spec.keys.2)),
        set(categories),
        Value::Array(vec![]),
        Value::Array(vec![]),
        Value::Array(vec![]),
    ])
}

fn command_docs(spec: &Spec) -> Value {
    Value::Map(vec![
        (bulk_str("summary"), bulk_str(spec.summary)),
        (bulk_str("since"), bulk_str(spec.since)),
        (bulk_str("group"), bulk_str(spec.group)),
    ])
}

/// `COMMAND`, `COMMAND COUNT`, `COMMAND INFO [name ...]`, `COMMAND DOCS [name ...]`,
/// `COMMAND LIST`: enough for redis-cli's hints and clients that read the table.
pub(crate) fn command(_ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let Some(sub) = args.get(1) else {
        return Ok(Plan::Value(Value::Array(
            COMMANDS.iter().map(command_info).collect(),
        )));
    };
    let named = || args[2..].iter().map(|n| lookup(n));
    if is(sub, "count") {
        sub_arity(args, "command", "count", 2)?;
        Ok(Plan::Integer(COMMANDS.len() as i64))
    } else if is(sub, "info") {
        let infos = if args.len() == 2 {
            COMMANDS.iter().map(command_info).collect()
        } else {
            // An unknown name is a null bulk (`$-1`; `_` in RESP3), as in Redis.
            named()
                .map(|s| s.map_or(Value::Null, command_info))
                .collect()
        };
        Ok(Plan::Value(Value::Array(infos)))
    } else if is(sub, "docs") {
        let docs = if args.len() == 2 {
            COMMANDS
                .iter()
                .map(|s| (bulk_str(s.name), command_docs(s)))
                .collect()
        } else {
            named()
                .flatten()
                .map(|s| (bulk_str(s.name), command_docs(s)))
                .collect()
        };
        Ok(Plan::Value(Value::Map(docs)))
    } else if is(sub, "list") {
        command_list(&args[2..])
            .map(|names| Plan::Value(Value::Array(names.into_iter().map(bulk_str).collect())))
    } else {
        Err(unknown_subcommand(args))
    }
}

/// `COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN pattern]`, parsed
/// as Redis 7.0 does (one filter, last). The names are ringkv's commands, without
/// Redis's subcommand entries (`config|get`). There are no modules, so MODULE lists
/// nothing; ACLCAT is refused, since ringkv does not keep Redis's ACL categories and
/// an empty or partial list would pass for an answer.
fn command_list(options: &[Bytes]) -> Result<Vec<&'static str>, Reject> {
    let names = COMMANDS.iter().map(|s| s.name);
    match options {
        [] => Ok(names.collect()),
        [filterby, kind, arg] if is(filterby, "filterby") => {
            if is(kind, "module") {
                Ok(Vec::new())
            } else if is(kind, "pattern") {
                Ok(names
                    .filter(|n| super::glob::string_match(arg, n.as_bytes(), true))
                    .collect())
            } else if is(kind, "aclcat") {
                Err(Reject::new(
                    "ERR COMMAND LIST FILTERBY ACLCAT is not supported by ringkv: it does not keep Redis's ACL categories",
                ))
            } else {
                Err(Reject::syntax())
            }
        }
        _ => Err(Reject::syntax()),
    }
}

/// Which INFO sections to write.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Sections(u16);

const SECTION_NAMES: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
];

impl Sections {
    fn has(self, name: &str) -> bool {
        SECTION_NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }
}

/// `INFO [section ...]`: `default`, `all` and `everything` mean every section
/// ringkv has; unknown names are ignored, as in Redis.
pub(crate) fn info(ctx: &mut Ctx<'_>, args: &[Bytes]) -> Handled {
    let all = (1u16 << SECTION_NAMES.len()) - 1;
    let mut sections = Sections(if args.len() == 1 { all } else { 0 });
    for arg in &args[1..] {
        if is(arg, "default") || is(arg, "all") || is(arg, "everything") {
            sections.0 = all;
        } else if let Some(i) = SECTION_NAMES.iter().position(|n| is(arg, n)) {
            sections.0 |= 1 << i;
        }
    }
    let start = ctx.parts.len();
    for shard in 0..ctx.core.count {
        ctx.parts.push(shard, Command::Stats);
    }
    Ok(Plan::Info {
        parts: start..ctx.parts.len(),
        sections,
    })
}

fn sum_stats(replies: &[Reply]) -> ShardStats {
    let mut t = ShardStats::default();
    for reply in replies {
        if let Reply::Stats(s) = reply {
            t.keys += s.keys;
            t.key_bytes += s.key_bytes;
            t.value_bytes += s.value_bytes;
            t.reads += s.reads;
            t.hits += s.hits;
            t.misses += s.misses;
            t.writes += s.writes;
            t.expired += s.expired;
            t.keys_with_ttl += s.keys_with_ttl;
        }
    }
    t
}

fn counter_sums(core: &Core) -> impl Fn(&str) -> u64 + '_ {
    move |name: &str| {
        core.counters
            .iter()
            .map(CoreCounters::snapshot)
            .flat_map(|s| s.into_iter().filter(|(n, _)| *n == name))
            .map(|(_, v)| v)
            .sum()
    }
}

/// Resident memory of the process, from /proc/self/statm (0 if unreadable).
fn rss_bytes() -> u64 {
    let pages: u64 = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|t| t.split_whitespace().nth(1).and_then(|p| p.parse().ok()))
        .unwrap_or(0);
    // SAFETY: sysconf has no memory-safety preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    match bytes {
        0..1024 => format!("{bytes}B"),
        1024..1_048_576 => format!("{:.2}K", b / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.2}M", b / 1_048_576.0),
        _ => format!("{:.2}G", b / 1_073_741_824.0),
    }
}

fn os_name() -> String {
    // SAFETY: uname fills a zeroed struct we own.
    let mut u: libc::utsname = unsafe { std::mem::zeroed() };
    if unsafe { libc::uname(&mut u) } != 0 {
        return "Linux".into();
    }
    let field = |f: &[libc::c_char]| {
        let bytes: Vec<u8> = f
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    };
    format!(
        "{} {} {}",
        field(&u.sysname),
        field(&u.release),
        field(&u.machine)
    )
}

fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills a zeroed struct we own.
    let mut r: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut r) } != 0 {
        return (0.0, 0.0);
    }
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    (secs(r.ru_stime), secs(r.ru_utime))
}

/// INFO's text: `# Section` headers, `field:value` lines, CRLF line ends, a blank
/// line between sections, as Redis writes it. Figures are ringkv's own.
pub(crate) fn info_text(core: &Core, sections: &Sections, replies: &[Reply]) -> String {
    let stats = sum_stats(replies);
    let count = counter_sums(core);
    let uptime = core.started.elapsed().as_secs();
    let mut out = String::new();
    let mut section = |name: &str, title: &str, lines: &mut dyn FnMut(&mut String)| {
        if !sections.has(name) {
            return;
        }
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {title}\r\n");
        lines(&mut out);
    };
    let line = |out: &mut String, k: &str, v: &dyn std::fmt::Display| {
        let _ = write!(out, "{k}:{v}\r\n");
    };
    let pid = std::process::id();
    let run_id = core.run_id.hex();
    section("server", "Server", &mut |o| {
        line(o, "redis_version", &REDIS_VERSION);
        line(o, "redis_git_sha1", &"00000000");
        line(o, "redis_git_dirty", &0);
        line(o, "redis_mode", &"standalone");
        line(o, "ringkv_version", &env!("CARGO_PKG_VERSION"));
        line(o, "ringkv_cores", &core.count);
        line(o, "os", &os_name());
        line(o, "arch_bits", &usize::BITS);
        line(o, "multiplexing_api", &"io_uring");
        line(o, "process_id", &pid);
        line(o, "run_id", &run_id);
        line(o, "tcp_port", &core.resp_port.get().unwrap_or(0));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        line(o, "server_time_usec", &now.as_micros());
        line(o, "uptime_in_seconds", &uptime);
        line(o, "uptime_in_days", &(uptime / 86_400));
        if !sections.has("cluster") {
            line(o, "cluster_enabled", &0);
        }
    });
    section("clients", "Clients", &mut |o| {
        line(o, "connected_clients", &count("connections_current"));
        line(o, "maxclients", &core.config.max_connections);
        line(o, "blocked_clients", &0);
    });
    section("memory", "Memory", &mut |o| {
        let rss = rss_bytes();
        let data = stats.key_bytes + stats.value_bytes;
        line(o, "used_memory", &rss);
        line(o, "used_memory_human", &human(rss));
        line(o, "used_memory_rss", &rss);
        line(o, "used_memory_dataset", &data);
        line(o, "ringkv_key_bytes", &stats.key_bytes);
        line(o, "ringkv_value_bytes", &stats.value_bytes);
        line(o, "maxmemory", &0);
        line(o, "maxmemory_human", &"0B");
        line(o, "maxmemory_policy", &"noeviction");
    });
    section("persistence", "Persistence", &mut |o| {
        line(o, "loading", &0);
        line(o, "async_loading", &0);
        line(o, "rdb_bgsave_in_progress", &0);
        line(o, "aof_enabled", &0);
        line(o, "aof_rewrite_in_progress", &0);
    });
    section("stats", "Stats", &mut |o| {
        line(o, "total_connections_received", &count("connections_total"));
        line(o, "total_commands_processed", &count("requests"));
        line(o, "rejected_connections", &count("connections_rejected"));
        line(o, "expired_keys", &stats.expired);
        line(o, "evicted_keys", &0);
        line(o, "keyspace_hits", &stats.hits);
        line(o, "keyspace_misses", &stats.misses);
        line(o, "ringkv_writes", &stats.writes);
        line(o, "ringkv_requests_forwarded", &count("requests_forwarded"));
        line(o, "ringkv_forward_batches", &count("forward_batches"));
        line(o, "ringkv_protocol_errors", &count("frames_malformed"));
    });
    section("replication", "Replication", &mut |o| {
        line(o, "role", &"master");
        line(o, "connected_slaves", &0);
        line(o, "master_failover_state", &"no-failover");
        line(o, "master_replid", &run_id);
        line(o, "master_replid2", &"0".repeat(40));
        line(o, "master_repl_offset", &0);
        line(o, "second_repl_offset", &-1);
        line(o, "repl_backlog_active", &0);
    });
    section("cpu", "CPU", &mut |o| {
        let (sys, user) = cpu_times();
        line(o, "used_cpu_sys", &format!("{sys:.6}"));
        line(o, "used_cpu_user", &format!("{user:.6}"));
    });
    section("cluster", "Cluster", &mut |o| {
        line(o, "cluster_enabled", &0);
    });
    section("keyspace", "Keyspace", &mut |o| {
        if stats.keys > 0 {
            let _ = write!(
                o,
                "db0:keys={},expires={},avg_ttl=0\r\n",
                stats.keys, stats.keys_with_ttl
            );
        }
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 20), "3.00M");
    }

    #[test]
    fn sections_parse() {
        let s = Sections(1 << 8);
        assert!(s.has("keyspace"));
        assert!(!s.has("server"));
        assert!(!s.has("nosuch"));
    }
}
