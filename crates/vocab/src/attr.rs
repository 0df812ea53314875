//! Attribute keys (DESIGN section 4): OpenTelemetry messaging semantic
//! conventions first, lasthop's own keys under `lasthop.`, and the older
//! messaging names that SDKs and agents still emit.

/// `messaging.system`, e.g. `rocketmq`.
pub const MESSAGING_SYSTEM: &str = "messaging.system";
/// `send`, `receive`, `process`, `settle` (also `publish`, `create`, `deliver` from older SDKs).
pub const MESSAGING_OPERATION_TYPE: &str = "messaging.operation.type";
/// The system-specific operation name, e.g. `send`, `pull`, `ack`.
pub const MESSAGING_OPERATION_NAME: &str = "messaging.operation.name";
/// Topic.
pub const MESSAGING_DESTINATION_NAME: &str = "messaging.destination.name";
/// Queue id (a string in the conventions; numeric for RocketMQ).
pub const MESSAGING_DESTINATION_PARTITION_ID: &str = "messaging.destination.partition.id";
/// Message id assigned by the producer client.
pub const MESSAGING_MESSAGE_ID: &str = "messaging.message.id";
/// Business keys (string array), e.g. the order id.
pub const MESSAGING_ROCKETMQ_MESSAGE_KEYS: &str = "messaging.rocketmq.message.keys";
/// Consumer group.
pub const MESSAGING_CONSUMER_GROUP_NAME: &str = "messaging.consumer.group.name";
/// Client id.
pub const MESSAGING_CLIENT_ID: &str = "messaging.client.id";
/// Kafka offset in the current conventions.
pub const MESSAGING_KAFKA_OFFSET: &str = "messaging.kafka.offset";
/// Kafka message key in the current conventions.
pub const MESSAGING_KAFKA_MESSAGE_KEY: &str = "messaging.kafka.message.key";
/// RabbitMQ routing key (current conventions).
pub const MESSAGING_RABBITMQ_ROUTING_KEY: &str = "messaging.rabbitmq.destination.routing_key";
/// Celery's task state on a `run/...` span (`SUCCESS`, `FAILURE`, `RETRY`).
pub const CELERY_STATE: &str = "celery.state";
/// Why Celery retried a task.
pub const CELERY_RETRY_REASON: &str = "celery.retry.reason";
/// Error class of a failed operation.
pub const ERROR_TYPE: &str = "error.type";
/// Broker address as seen by a client.
pub const SERVER_ADDRESS: &str = "server.address";
/// Resource attribute naming the service.
pub const SERVICE_NAME: &str = "service.name";
/// Exception event attribute: its class.
pub const EXCEPTION_TYPE: &str = "exception.type";

/// Older names still sent by SDKs and agents.
pub mod legacy {
    /// Pre-1.26 name of `messaging.operation.type`.
    pub const MESSAGING_OPERATION: &str = "messaging.operation";
    /// Pre-1.17 name of `messaging.destination.name`.
    pub const MESSAGING_DESTINATION: &str = "messaging.destination";
    /// Pre-1.17 name of `messaging.message.id`.
    pub const MESSAGING_MESSAGE_ID: &str = "messaging.message_id";
    /// Pre-1.26 Kafka offset.
    pub const MESSAGING_KAFKA_MESSAGE_OFFSET: &str = "messaging.kafka.message.offset";
    /// Pre-1.26 RocketMQ consumer group.
    pub const MESSAGING_ROCKETMQ_CLIENT_GROUP: &str = "messaging.rocketmq.client_group";
    /// Pre-1.26 Kafka consumer group.
    pub const MESSAGING_KAFKA_CONSUMER_GROUP: &str = "messaging.kafka.consumer.group";
    /// Pre-1.21 Kafka partition.
    pub const MESSAGING_KAFKA_PARTITION: &str = "messaging.kafka.destination.partition";
    /// Pre-1.17 Kafka partition (opentelemetry-instrumentation-kafka-python, -confluent-kafka).
    pub const MESSAGING_KAFKA_PARTITION_OLD: &str = "messaging.kafka.partition";
    /// Pre-1.21 RabbitMQ routing key.
    pub const MESSAGING_RABBITMQ_ROUTING_KEY: &str = "messaging.rabbitmq.routing_key";
    /// The OpenTelemetry Java agent's RocketMQ queue id.
    pub const MESSAGING_ROCKETMQ_QUEUE_ID: &str = "messaging.rocketmq.queue_id";
    /// The OpenTelemetry Java agent's RocketMQ queue offset.
    pub const MESSAGING_ROCKETMQ_QUEUE_OFFSET: &str = "messaging.rocketmq.queue_offset";
    /// The OpenTelemetry Java agent's RocketMQ send status (`SEND_OK`, ...).
    pub const MESSAGING_ROCKETMQ_SEND_RESULT: &str = "messaging.rocketmq.send_result";
}

/// The id a library gave a message when lasthop identifies it otherwise
/// (by its producer span's context), e.g. confluent-kafka's `topic.partition.offset`.
pub const LIBRARY_MESSAGE_ID: &str = "lasthop.library.message_id";
/// Where a record came from when it is not a span: `log` (an application
/// log line), `rocketmq-trace` (a RocketMQ message-trace record).
pub const SOURCE: &str = "lasthop.source";
/// The hop this span records (see [`crate::Hop`]).
pub const HOP: &str = "lasthop.hop";
/// Broker name.
pub const BROKER: &str = "lasthop.broker";
/// Broker epoch: grows at every broker start.
pub const BROKER_EPOCH: &str = "lasthop.broker.epoch";
/// Commit-log offset of the message.
pub const COMMITLOG_OFFSET: &str = "lasthop.commitlog.offset";
/// Size of the message's commit-log record.
pub const COMMITLOG_SIZE: &str = "lasthop.commitlog.size";
/// Offset in the consume queue.
pub const QUEUE_OFFSET: &str = "lasthop.queue.offset";
/// Start of a covered range (flush, replicate, receive, settle).
pub const RANGE_START: &str = "lasthop.range.start";
/// End (exclusive) of a covered range.
pub const RANGE_END: &str = "lasthop.range.end";
/// Broker send status, e.g. `SEND_OK`, `FLUSH_DISK_TIMEOUT`.
pub const SEND_STATUS: &str = "lasthop.send.status";
/// Send attempt number, 1 for the first.
pub const SEND_ATTEMPT: &str = "lasthop.send.attempt";
/// Transaction id.
pub const TX_ID: &str = "lasthop.tx.id";
/// Transaction state: `commit`, `rollback`, `unknown`.
pub const TX_STATE: &str = "lasthop.tx.state";
/// Whether a transaction decision came from a check-back.
pub const TX_FROM_CHECK: &str = "lasthop.tx.from_check";
/// Reconsume count of a retried message.
pub const RECONSUME_COUNT: &str = "lasthop.reconsume.count";
/// Why a broker restarted or failed over: `clean`, `crash`, `power_loss`, `disk_lost`.
pub const RECOVER_CAUSE: &str = "lasthop.recover.cause";
/// Replica (slave) name.
pub const REPLICA: &str = "lasthop.replica";
/// On a consumer's `settle`: the offset was committed on receipt, before processing.
pub const SETTLE_ON_RECEIVE: &str = "lasthop.settle.on_receive";
