use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A hop of a message's path (DESIGN section 3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Hop {
    #[serde(rename = "intent")]
    Intent,
    #[serde(rename = "send")]
    Send,
    #[serde(rename = "store")]
    Store,
    #[serde(rename = "flush")]
    Flush,
    #[serde(rename = "replicate")]
    Replicate,
    #[serde(rename = "receive")]
    Receive,
    #[serde(rename = "process")]
    Process,
    #[serde(rename = "settle")]
    Settle,
    #[serde(rename = "tx.prepare")]
    TxPrepare,
    #[serde(rename = "tx.end")]
    TxEnd,
    #[serde(rename = "tx.check")]
    TxCheck,
    #[serde(rename = "retry")]
    Retry,
    #[serde(rename = "dlq")]
    Dlq,
    #[serde(rename = "recover")]
    Recover,
    #[serde(rename = "failover")]
    Failover,
}

impl Hop {
    /// Every hop, in path order.
    pub const ALL: [Hop; 15] = [
        Hop::Intent,
        Hop::Send,
        Hop::Store,
        Hop::Flush,
        Hop::Replicate,
        Hop::Receive,
        Hop::Process,
        Hop::Settle,
        Hop::TxPrepare,
        Hop::TxEnd,
        Hop::TxCheck,
        Hop::Retry,
        Hop::Dlq,
        Hop::Recover,
        Hop::Failover,
    ];

    /// The name used in `lasthop.hop` and in every output.
    pub fn as_str(self) -> &'static str {
        match self {
            Hop::Intent => "intent",
            Hop::Send => "send",
            Hop::Store => "store",
            Hop::Flush => "flush",
            Hop::Replicate => "replicate",
            Hop::Receive => "receive",
            Hop::Process => "process",
            Hop::Settle => "settle",
            Hop::TxPrepare => "tx.prepare",
            Hop::TxEnd => "tx.end",
            Hop::TxCheck => "tx.check",
            Hop::Retry => "retry",
            Hop::Dlq => "dlq",
            Hop::Recover => "recover",
            Hop::Failover => "failover",
        }
    }

    /// Hops that cover a range of offsets rather than one message; they are
    /// matched to messages by broker, epoch, queue and offset, not by trace.
    pub fn is_range(self) -> bool {
        matches!(
            self,
            Hop::Flush | Hop::Replicate | Hop::Recover | Hop::Failover
        )
    }
}

impl fmt::Display for Hop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no hop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownHop(pub String);

impl fmt::Display for UnknownHop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown hop {:?}", self.0)
    }
}

impl std::error::Error for UnknownHop {}

impl FromStr for Hop {
    type Err = UnknownHop;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Hop::ALL
            .into_iter()
            .find(|hop| hop.as_str() == s)
            .ok_or_else(|| UnknownHop(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_str_and_serde() {
        for hop in Hop::ALL {
            assert_eq!(hop.as_str().parse::<Hop>(), Ok(hop));
            let json = serde_json::to_string(&hop).unwrap();
            assert_eq!(json, format!("\"{}\"", hop.as_str()));
            assert_eq!(serde_json::from_str::<Hop>(&json).unwrap(), hop);
        }
        assert!("sent".parse::<Hop>().is_err());
    }
}
