//! The commit log's record format.
//!
//! `[u32 LE payload length][u32 LE crc32 of length and payload][payload]`, the
//! payload a version byte then the postcard-encoded [`StoredMessage`]. A
//! record's commit-log offset and size are its position, not stored in it.

use serde::{Deserialize, Serialize};

/// Bytes before the payload.
pub const HEADER: usize = 8;
/// The payload version this build writes and reads.
pub const VERSION: u8 = 1;
/// A length above this cannot be a record (messages are capped far lower).
const MAX_PAYLOAD: u32 = 64 << 20;

/// A message as the broker stores it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    /// Id assigned by the producer client, kept across retries.
    pub msg_id: String,
    pub topic: String,
    pub queue_id: u32,
    /// Position in the topic queue, assigned by the broker.
    pub queue_offset: u64,
    pub keys: Vec<String>,
    pub tags: Option<String>,
    /// User and system properties, e.g. `traceparent`.
    pub properties: Vec<(String, String)>,
    pub born_ms: u64,
    pub store_ms: u64,
    pub reconsume_times: u32,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl StoredMessage {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// What reading the record at an offset found.
#[derive(Debug, PartialEq, Eq)]
pub enum ReadOutcome {
    /// A whole record with a matching checksum; `size` includes the header.
    Value { message: StoredMessage, size: u64 },
    /// The data ends inside the record: a write cut short.
    Torn,
    /// The record is whole but its checksum, length, version or content is wrong.
    Corrupt,
}

/// Encodes a message as one record.
pub fn encode(message: &StoredMessage) -> Vec<u8> {
    let mut out = vec![0u8; HEADER];
    out.push(VERSION);
    let mut out = postcard::to_extend(message, out).expect("a Vec grows to fit any message");
    let len = (out.len() - HEADER) as u32;
    let crc = checksum(len, &out[HEADER..]);
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    out
}

/// The payload length a header announces, if it is plausible.
pub fn announced_len(header: &[u8; HEADER]) -> Option<u32> {
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    (!(len == 0 && crc == 0) && len <= MAX_PAYLOAD).then_some(len)
}

/// Reads the record at the start of `buf` (which may hold more after it).
pub fn decode(buf: &[u8]) -> ReadOutcome {
    let Some(header) = buf.first_chunk::<HEADER>() else {
        return ReadOutcome::Torn;
    };
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes"));
    let crc = u32::from_le_bytes(header[4..8].try_into().expect("4 bytes"));
    if len == 0 && crc == 0 {
        return ReadOutcome::Torn;
    }
    if len > MAX_PAYLOAD || len == 0 {
        return ReadOutcome::Corrupt;
    }
    let Some(payload) = buf.get(HEADER..HEADER + len as usize) else {
        return ReadOutcome::Torn;
    };
    if checksum(len, payload) != crc || payload[0] != VERSION {
        return ReadOutcome::Corrupt;
    }
    match postcard::from_bytes::<StoredMessage>(&payload[1..]) {
        Ok(message) => ReadOutcome::Value {
            message,
            size: HEADER as u64 + u64::from(len),
        },
        Err(_) => ReadOutcome::Corrupt,
    }
}

fn checksum(len: u32, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&len.to_le_bytes());
    h.update(payload);
    h.finalize()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(body: Vec<u8>) -> StoredMessage {
        StoredMessage {
            msg_id: "7F0000010001".into(),
            topic: "order_paid".into(),
            queue_id: 2,
            queue_offset: 9,
            keys: vec!["ORDER_42".into()],
            properties: vec![("traceparent".into(), "00-ab-cd-01".into())],
            body,
            ..Default::default()
        }
    }

    #[test]
    fn a_record_reads_back_with_its_size() {
        let m = message(b"paid".to_vec());
        let bytes = encode(&m);
        let mut buf = bytes.clone();
        buf.extend_from_slice(b"next record");
        assert_eq!(
            decode(&buf),
            ReadOutcome::Value {
                message: m,
                size: bytes.len() as u64
            }
        );
    }

    #[test]
    fn zeroed_space_is_torn_not_corrupt() {
        assert_eq!(decode(&[0; 32]), ReadOutcome::Torn);
        assert_eq!(decode(&[1, 0]), ReadOutcome::Torn);
    }

    proptest! {
        /// Every strict prefix of a record is torn; every single flipped byte is detected.
        #[test]
        fn prefixes_are_torn_and_flips_are_corrupt(body in prop::collection::vec(any::<u8>(), 0..64), at in any::<prop::sample::Index>()) {
            let bytes = encode(&message(body));
            for cut in 0..bytes.len() {
                let outcome = decode(&bytes[..cut]);
                prop_assert_eq!(outcome, ReadOutcome::Torn, "cut at {}", cut);
            }
            let mut flipped = bytes.clone();
            let i = at.index(bytes.len());
            flipped[i] ^= 0x40;
            prop_assert!(!matches!(decode(&flipped), ReadOutcome::Value { .. }), "flip at {i} went unnoticed");
        }
    }
}
