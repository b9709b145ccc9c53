#!/usr/bin/env python3
"""Reference implementation of ringkv's key-to-shard function, for client authors.

    shard = crc32c(key) mod shard_count

CRC-32C (Castagnoli): reflected polynomial 0x82F63B78 (0x1EDC6F41 unreflected),
initial value 0xFFFFFFFF, final XOR 0xFFFFFFFF. Usage:

    tools/shard_of.py SHARD_COUNT KEY [KEY ...]      prints "KEY SHARD" per key
    tools/shard_of.py SHARD_COUNT -                  reads keys, one per line, from stdin
"""
import sys

_TABLE = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
    _TABLE.append(c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc = _TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def shard_of(key: bytes, shard_count: int) -> int:
    if shard_count < 1:
        raise ValueError("shard_count must be at least 1")
    return crc32c(key) % shard_count


def main() -> None:
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    count = int(sys.argv[1])
    keys = [line.rstrip("\n") for line in sys.stdin] if sys.argv[2:] == ["-"] else sys.argv[2:]
    for key in keys:
        print(key, shard_of(key.encode(), count))


if __name__ == "__main__":
    assert crc32c(b"123456789") == 0xE3069283, "CRC-32C check value"
    main()
