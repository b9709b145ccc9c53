#!/usr/bin/env python3
"""A scripted redis-py workload against a ringkv RESP port.

Usage: resp_workload.py PORT KEY_A KEY_B
KEY_A and KEY_B live on the same ringkv shard (transactions need that).
Runs the workload over RESP2 and over RESP3 (HELLO 3, what current redis-py
sends when protocol=3), and exits non-zero on the first mismatch.
"""
import sys
import time

import redis


def check(label, got, want):
    if got != want:
        raise AssertionError(f"{label}: got {got!r}, want {want!r}")


def expect_error(label, fn, text):
    try:
        fn()
    except redis.ResponseError as e:
        check(label, str(e), text)
        return
    raise AssertionError(f"{label}: no error, want {text!r}")


def workload(port, proto, key_a, key_b):
    r = redis.Redis(host="127.0.0.1", port=port, protocol=proto, decode_responses=True)
    check("ping", r.ping(), True)
    r.flushall()
    # Strings and SET options.
    check("set", r.set("s", "v1"), True)
    check("get", r.get("s"), "v1")
    check("set nx on present", r.set("s", "x", nx=True), None)
    check("set xx", r.set("s", "v2", xx=True), True)
    check("set get", r.set("s", "v3", get=True), "v2")
    check("set ex", r.set("t", "v", ex=100), True)
    check("ttl", r.ttl("t"), 100)
    check("set keepttl", r.set("t", "w", keepttl=True), True)
    check("ttl kept", 99 <= r.ttl("t") <= 100, True)
    check("pttl", 98_000 <= r.pttl("t") <= 100_000, True)
    check("setnx", r.setnx("n1", "a"), True)
    check("setnx again", r.setnx("n1", "b"), False)
    check("setex", r.setex("se", 50, "v"), True)
    check("psetex", r.psetex("pse", 50_000, "v"), True)
    check("getset", r.getset("s", "v4"), "v3")
    check("getdel", r.getdel("s"), "v4")
    check("getdel gone", r.get("s"), None)
    r.set("gx", "v")
    check("getex ex", r.getex("gx", ex=30), "v")
    check("getex ttl", r.ttl("gx"), 30)
    check("getex persist", r.getex("gx", persist=True), "v")
    check("getex persisted", r.ttl("gx"), -1)
    check("mset", r.mset({"m1": "1", "m2": "2", "m3": "3"}), True)
    check("mget", r.mget(["m1", "m2", "nope", "m3"]), ["1", "2", None, "3"])
    check("msetnx", r.msetnx({key_a: "1", key_b: "2"}), True)
    check("msetnx again", r.msetnx({key_a: "x", key_b: "y"}), False)
    # Counters.
    check("incr", r.incr("c"), 1)
    check("incrby", r.incrby("c", 41), 42)
    check("decr", r.decr("c"), 41)
    check("decrby", r.decrby("c", 1), 40)
    check("incrbyfloat", r.incrbyfloat("f", 10.5), 10.5)
    check("incrbyfloat 2", r.incrbyfloat("f", 0.1), 10.6)
    expect_error("incr text", lambda: r.incr("m1x") and r.set("m1x", "a") and r.incr("m1x"),
                 "value is not an integer or out of range")
    # Ranges.
    check("append", r.append("ap", "Hello"), 5)
    check("append 2", r.append("ap", " World"), 11)
    check("strlen", r.strlen("ap"), 11)
    check("getrange", r.getrange("ap", 0, 4), "Hello")
    check("getrange neg", r.getrange("ap", -5, -1), "World")
    check("setrange", r.setrange("ap", 6, "Redis"), 11)
    check("setrange value", r.get("ap"), "Hello Redis")
    # Keys.
    check("exists", r.exists("m1", "m2", "nope"), 2)
    check("type", r.type("m1"), "string")
    check("type none", r.type("nope"), "none")
    check("delete", r.delete("m1", "m2", "nope"), 2)
    check("unlink", r.unlink("m3"), 1)
    for i in range(50):
        r.set(f"scan:{i}", i)
    check("scan_iter", sorted(r.scan_iter(match="scan:*", count=7)),
          sorted(f"scan:{i}" for i in range(50)))
    check("keys", sorted(r.keys("scan:1*")), sorted(["scan:1"] + [f"scan:1{i}" for i in range(10)]))
    check("dbsize", r.dbsize() >= 50, True)
    check("randomkey", r.randomkey() is not None, True)
    # Expiry.
    r.set("e", "v")
    check("expire", r.expire("e", 100), True)
    check("expire nx", r.expire("e", 200, nx=True), False)
    check("expire gt", r.expire("e", 200, gt=True), True)
    check("expire lt", r.expire("e", 300, lt=True), False)
    check("pexpire xx", r.pexpire("e", 150_000, xx=True), True)
    at = int(time.time()) + 500
    check("expireat", r.expireat("e", at), True)
    check("expiretime", r.expiretime("e"), at)
    check("pexpireat", r.pexpireat("e", at * 1000 + 5), True)
    check("persist", r.persist("e"), True)
    check("ttl none", r.ttl("e"), -1)
    check("ttl missing", r.ttl("nope"), -2)
    check("expire past", r.expire("e", -1), True)
    check("expired", r.exists("e"), 0)
    r.set("short", "v", px=50)
    time.sleep(0.2)
    check("expired after px", r.get("short"), None)
    # Errors keep Redis's words.
    expect_error("set nx xx", lambda: r.execute_command("SET", "k", "v", "NX", "XX"), "syntax error")
    expect_error("expire nx gt", lambda: r.execute_command("EXPIRE", "k", "1", "NX", "GT"),
                 "NX and XX, GT or LT options at the same time are not compatible")
    expect_error("arity", lambda: r.execute_command("GET"), "wrong number of arguments for 'get' command")
    expect_error("unknown", lambda: r.execute_command("NOSUCH", "a"),
                 "unknown command 'NOSUCH', with args beginning with: 'a' ")
    # Pipelines, plain and transactional.
    p = r.pipeline(transaction=False)
    for i in range(100):
        p.set(f"p:{i}", i)
        p.incr(f"pc:{i % 3}")
    results = p.execute()
    check("pipeline", len(results), 200)
    check("pipeline counter", r.get("pc:0"), "34")
    p = r.pipeline(transaction=True)
    p.set(key_a, "10").incr(key_a).get(key_b)
    check("multi/exec", p.execute(), [True, 11, "2"])

    def bump(pipe):
        value = int(pipe.get(key_a))
        pipe.multi()
        pipe.set(key_a, value + 1)
    check("watch transaction", r.transaction(bump, key_a), [True])
    check("watch result", r.get(key_a), "12")
    # Connection commands.
    check("client setname", r.client_setname("workload"), True)
    check("client getname", r.client_getname(), "workload")
    check("client id", r.client_id() > 0, True)
    check("echo", r.echo("hi"), "hi")
    info = r.info()
    check("info version", info["redis_version"], "7.0.15")
    check("info cluster", info["cluster_enabled"], 0)
    check("config get", r.config_get("maxmemory"), {"maxmemory": "0"})
    check("select 0", r.execute_command("SELECT", 0), True)
    check("wait", r.wait(0, 10), 0)
    check("flushdb", r.flushdb(), True)
    check("dbsize empty", r.dbsize(), 0)
    r.close()


def main():
    port, key_a, key_b = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    for proto in (2, 3):
        workload(port, proto, key_a, key_b)
    print(f"redis-py {redis.__version__}: workload passed over RESP2 and RESP3")


if __name__ == "__main__":
    main()
