//! The broker's client: [`Producer`] and [`consumer::run`].

mod connection;
pub mod consumer;
pub mod producer;
pub mod transaction;

pub use connection::{ClientError, Connection};
pub use consumer::{AckMode, ConsumerConfig, Handler, ProcessOutcome};
pub use producer::{Message, Producer, ProducerConfig, SendError};
pub use transaction::{
    CheckListener, CheckRequest, LocalTransactions, TransactionProducer, TxOutcome,
};
