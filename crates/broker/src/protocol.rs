//! The broker's wire protocol.
//!
//! A frame is `[u32 LE length of the rest][u8 version][u8 kind][u64 LE request id][body]`,
//! kind 0 a request, 1 a response; the body is a postcard-encoded
//! [`Request`] or [`Response`]. A response carries its request's id, so a
//! connection can have many requests in flight.

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The protocol version this build speaks.
pub const VERSION: u8 = 1;
const HEAD: usize = 1 + 1 + 8;
pub const KIND_REQUEST: u8 = 0;
pub const KIND_RESPONSE: u8 = 1;

/// Where the broker keeps messages consumers do not pull directly: delayed
/// retries, one queue per delay level (RocketMQ's name).
pub const SCHEDULE_TOPIC: &str = "SCHEDULE_TOPIC_XXXX";
/// Half messages of transactions, invisible to consumers until committed.
pub const HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// One op record per ended transaction, naming its half message.
pub const OP_TOPIC: &str = "RMQ_SYS_TRANS_OP_HALF_TOPIC";
/// Message property: the topic a retried message was first sent to.
pub const PROP_ORIGIN_TOPIC: &str = "ORIGIN_TOPIC";
/// Message property: the topic a delayed or half message goes to when due.
pub const PROP_REAL_TOPIC: &str = "REAL_TOPIC";

/// The topic a consumer group's failed messages come back on.
pub fn retry_topic(group: &str) -> String {
    format!("%RETRY%{group}")
}

/// The topic a consumer group's messages go to after their last retry.
pub fn dlq_topic(group: &str) -> String {
    format!("%DLQ%{group}")
}

/// Topics consumers may not pull.
pub fn is_internal(topic: &str) -> bool {
    topic == SCHEDULE_TOPIC || topic.starts_with("RMQ_SYS_")
}

/// Topics producers may not send to: the internal ones, and each group's
/// retry and dead-letter topics.
pub fn is_system(topic: &str) -> bool {
    is_internal(topic) || topic.starts_with('%')
}

/// A message as the client sends it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendRequest {
    pub msg_id: String,
    pub topic: String,
    /// The queue to store into; the broker picks one when `None`.
    pub queue_id: Option<u32>,
    pub keys: Vec<String>,
    pub tags: Option<String>,
    pub properties: Vec<(String, String)>,
    pub born_ms: u64,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

/// A broker request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    Send(SendRequest),
    /// Messages of a queue from `offset` on, waiting up to `wait_ms` for some to arrive.
    Pull {
        group: String,
        topic: String,
        queue_id: u32,
        offset: u64,
        max: u32,
        wait_ms: u64,
    },
    /// The group's next offset to consume.
    CommitOffset {
        group: String,
        topic: String,
        queue_id: u32,
        next_offset: u64,
        /// Committed on receipt, before processing (so the broker can witness it).
        on_receive: bool,
    },
    QueryOffset {
        group: String,
        topic: String,
        queue_id: u32,
    },
    /// The broker's name, epoch and a topic's queues.
    Route {
        topic: String,
    },
    /// Messages by id or business key.
    FindMessages {
        msg_id: Option<String>,
        key: Option<String>,
    },
    /// Per queue: broker offset, the group's committed offset.
    GroupProgress {
        group: String,
        topic: String,
    },
    /// A slave's pull of the master's commit log; `from` is the slave's
    /// durable end, and so its acknowledgement of everything below.
    ReplicaPull {
        replica: String,
        from: u64,
        max_bytes: u32,
        wait_ms: u64,
    },
    /// Turns a slave into the master, e.g. after the master's disk is lost.
    Promote {
        cause: String,
    },
    /// The master's put offset and each replica's acknowledged offset.
    ReplicationStatus,
    /// A consumer gives a message back for a later retry (RocketMQ's send-back):
    /// into the group's retry topic after a growing delay, or into its
    /// dead-letter queue once `max_reconsume_times` deliveries failed.
    SendBack {
        group: String,
        commitlog_offset: u64,
        max_reconsume_times: Option<u32>,
    },
    /// Messages in a group's dead-letter queue.
    ListDeadLetters {
        group: String,
    },
    /// Puts a dead-lettered message back into the group's retry topic, with a fresh retry count.
    ResendDeadLetter {
        group: String,
        msg_id: String,
    },
    /// Marks this connection as one of `group`'s producers: check-backs for
    /// the group's transactions are sent on it.
    RegisterProducer {
        group: String,
    },
    /// A transactional half message: stored, invisible to consumers, until ended.
    SendHalf {
        group: String,
        tx_id: String,
        send: SendRequest,
    },
    /// Commits or rolls back a half message (`Unknown` leaves it to the check-back).
    EndTransaction {
        group: String,
        tx_id: String,
        msg_id: String,
        half_offset: u64,
        state: TxState,
        from_check: bool,
    },
    /// Broker to producer: what became of this transaction? Answered with `EndTransaction`.
    CheckTransaction {
        tx_id: String,
        msg_id: String,
        half_offset: u64,
        topic: String,
        keys: Vec<String>,
        /// The half message's properties: its `traceparent` lets the answer join the trace.
        properties: Vec<(String, String)>,
    },
}

/// A local transaction's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxState {
    Commit,
    Rollback,
    Unknown,
}

impl TxState {
    pub fn as_str(self) -> &'static str {
        match self {
            TxState::Commit => "commit",
            TxState::Rollback => "rollback",
            TxState::Unknown => "unknown",
        }
    }
}

/// One replica as the master sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicaStatus {
    pub name: String,
    pub acked_offset: u64,
    /// Milliseconds since its last pull.
    pub last_seen_ms: u64,
}

/// RocketMQ's send statuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SendStatus {
    SendOk,
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

impl SendStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            SendStatus::SendOk => "SEND_OK",
            SendStatus::FlushDiskTimeout => "FLUSH_DISK_TIMEOUT",
            SendStatus::FlushSlaveTimeout => "FLUSH_SLAVE_TIMEOUT",
            SendStatus::SlaveNotAvailable => "SLAVE_NOT_AVAILABLE",
        }
    }
}

/// Where a sent message was stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    pub status: SendStatus,
    pub msg_id: String,
    pub broker: String,
    pub epoch: u64,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
}

/// A message as a consumer receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub msg_id: String,
    pub topic: String,
    pub queue_id: u32,
    pub queue_offset: u64,
    pub commitlog_offset: u64,
    pub keys: Vec<String>,
    pub tags: Option<String>,
    pub properties: Vec<(String, String)>,
    pub born_ms: u64,
    pub store_ms: u64,
    pub reconsume_times: u32,
    #[serde(with = "serde_bytes")]
    pub body: Vec<u8>,
}

impl WireMessage {
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// One queue's progress for a consumer group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueueProgress {
    pub queue_id: u32,
    /// The offset the next stored message gets.
    pub broker_offset: u64,
    pub consumer_offset: Option<u64>,
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request could not be decoded, or names nothing this broker knows.
    BadRequest,
    /// The message body exceeds `maxMessageSize`.
    MessageTooLarge,
    /// The store failed to write or read.
    StoreError,
    /// This broker is a slave and does not take writes.
    NotMaster,
    /// The request does not fit the broker's role (e.g. promoting a master).
    WrongRole,
}

/// A broker response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    Sent(SendResult),
    Pulled {
        messages: Vec<WireMessage>,
        next_offset: u64,
        max_offset: u64,
    },
    Offset(Option<u64>),
    Committed,
    Route {
        broker: String,
        epoch: u64,
        queues: u32,
    },
    Messages(Vec<WireMessage>),
    Progress(Vec<QueueProgress>),
    ReplicaData {
        master_epoch: u64,
        master_end: u64,
        #[serde(with = "serde_bytes")]
        bytes: Vec<u8>,
    },
    Promoted {
        epoch: u64,
        end: u64,
    },
    Replication {
        role: String,
        epoch: u64,
        put_offset: u64,
        replicas: Vec<ReplicaStatus>,
    },
    /// The transaction ended (or was already ended: ending twice is harmless).
    TxEnded {
        state: TxState,
        already: bool,
    },
    /// Where a sent-back message went: `%RETRY%group` (with its delivery delay) or `%DLQ%group`.
    SentBack {
        topic: String,
        reconsume_times: u32,
        delay_ms: u64,
    },
    Error {
        code: ErrorCode,
        message: String,
    },
}

/// A decoded frame head and its undecoded body.
#[derive(Debug)]
pub struct Frame {
    pub version: u8,
    pub kind: u8,
    pub request_id: u64,
    pub body: Vec<u8>,
}

impl Frame {
    /// The frame's bytes as they travel.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = ((HEAD + self.body.len()) as u32).to_le_bytes().to_vec();
        out.push(self.version);
        out.push(self.kind);
        out.extend_from_slice(&self.request_id.to_le_bytes());
        out.extend_from_slice(&self.body);
        out
    }
}

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The peer closed the connection between frames.
    #[error("connection closed")]
    Closed,
    /// The peer closed the connection inside a frame.
    #[error("connection closed inside a frame")]
    Truncated,
    /// The announced length is below the head size or above the limit.
    #[error("frame length {0} is out of bounds")]
    BadLength(u64),
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads one frame, refusing any longer than `max_len`.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max_len: usize,
) -> Result<Frame, FrameError> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Err(FrameError::Closed),
        Err(e) => return Err(e.into()),
    }
    let len = u32::from_le_bytes(len) as usize;
    if len < HEAD || len > max_len {
        return Err(FrameError::BadLength(len as u64));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::UnexpectedEof => FrameError::Truncated,
        _ => FrameError::Io(e),
    })?;
    let request_id = u64::from_le_bytes(buf[2..10].try_into().expect("8 bytes"));
    Ok(Frame {
        version: buf[0],
        kind: buf[1],
        request_id,
        body: buf.split_off(HEAD),
    })
}

/// Encodes a frame.
pub fn encode_frame<T: Serialize>(kind: u8, request_id: u64, body: &T) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    out.push(VERSION);
    out.push(kind);
    out.extend_from_slice(&request_id.to_le_bytes());
    let mut out = postcard::to_extend(body, out).expect("a Vec grows to fit");
    let len = (out.len() - 4) as u32;
    out[0..4].copy_from_slice(&len.to_le_bytes());
    out
}

pub async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, frame: &[u8]) -> std::io::Result<()> {
    w.write_all(frame).await?;
    w.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_and_bad_lengths_are_refused() {
        let req = Request::QueryOffset {
            group: "g".into(),
            topic: "t".into(),
            queue_id: 3,
        };
        let bytes = encode_frame(KIND_REQUEST, 42, &req);
        let frame = read_frame(&mut bytes.as_slice(), 1 << 20).await.unwrap();
        assert_eq!(
            (frame.version, frame.kind, frame.request_id),
            (VERSION, KIND_REQUEST, 42)
        );
        assert_eq!(postcard::from_bytes::<Request>(&frame.body).unwrap(), req);
        assert!(matches!(
            read_frame(&mut bytes.as_slice(), 8).await,
            Err(FrameError::BadLength(_))
        ));
        assert!(matches!(
            read_frame(&mut &bytes[..bytes.len() - 1], 1 << 20).await,
            Err(FrameError::Truncated)
        ));
        assert!(matches!(
            read_frame(&mut &bytes[..0], 1 << 20).await,
            Err(FrameError::Closed)
        ));
    }
}
