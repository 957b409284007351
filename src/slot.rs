//! Key to slot: CRC16 (XMODEM) mod 16384 over the key, or over its `{hash tag}` when it has a
//! non-empty one, as the cluster specification defines.

pub const SLOTS: usize = 16384;

/// A cluster hash slot, 0..16384.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot(pub u16);

/// The part of the key that is hashed: the content of the first `{...}` when it is
/// non-empty, else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

pub fn key_slot(key: &[u8]) -> Slot {
    Slot(crc16::State::<crc16::XMODEM>::calculate(hash_tag(key)) & (SLOTS as u16 - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_test_vector() {
        assert_eq!(
            crc16::State::<crc16::XMODEM>::calculate(b"123456789"),
            0x31C3
        );
    }

    #[test]
    fn known_slots() {
        // Values from CLUSTER KEYSLOT on a real server.
        assert_eq!(key_slot(b"foo"), Slot(12182));
        assert_eq!(key_slot(b"bar"), Slot(5061));
        assert_eq!(key_slot(b""), Slot(0));
    }

    #[test]
    fn hash_tags() {
        assert_eq!(hash_tag(b"{user1}:name"), b"user1");
        assert_eq!(key_slot(b"{user1}:name"), key_slot(b"{user1}:email"));
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{"), b"{");
    }
}
