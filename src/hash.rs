//! The stable function that maps a key to its shard.
//!
//! `shard = crc32c(key) mod shard_count`, where crc32c is CRC-32C (Castagnoli,
//! polynomial 0x1EDC6F41, reflected, initial value and final xor 0xFFFFFFFF) over the
//! key's bytes. It is specified in `proto-spec/protocol.md` so that a client in any
//! language routes a key to its owner without asking. It must never change: a
//! different function would move every key of a durable node to another shard.

/// Identifier of the key-to-shard function as announced in `TOPOLOGY`.
pub const HASH_CRC32C_MOD: u8 = 1;

/// CRC-32C of the key.
pub fn key_hash(key: &[u8]) -> u32 {
    crc32c::crc32c(key)
}

/// The shard that owns `key` on a node with `shard_count` shards.
pub fn shard_of(key: &[u8], shard_count: u32) -> u32 {
    assert!(shard_count > 0);
    key_hash(key) % shard_count
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_check_value() {
        // The standard CRC-32C check value for the ASCII digits "123456789".
        assert_eq!(key_hash(b"123456789"), 0xE306_9283);
        assert_eq!(key_hash(b""), 0);
    }

    #[test]
    fn owner_is_stable_and_in_range() {
        assert_eq!(shard_of(b"123456789", 2), 0xE306_9283 % 2);
        for n in 1..8u32 {
            for i in 0..1000u32 {
                let key = format!("key:{i}");
                assert!(shard_of(key.as_bytes(), n) < n);
            }
        }
    }
}
