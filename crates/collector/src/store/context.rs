//! The spans an analysis of some messages needs besides their own: range
//! spans of the brokers that stored them (flush, replicate, recover,
//! failover), the topic's sends, deliveries, offset commits and processing
//! (which groups consume it, and whether they went on with messages sent
//! after it), and business intents.

use std::collections::{BTreeSet, HashSet};

use lasthop_vocab::{Hop, SpanRecord, attr};

use super::{SpanQuery, SpanStore, StoreError};

/// Most context spans read per (hop, broker or topic).
const CONTEXT_LIMIT: usize = 20_000;

impl SpanStore {
    /// `records` plus the context spans their analysis needs, without duplicates.
    pub fn with_context(&self, records: Vec<SpanRecord>) -> Result<Vec<SpanRecord>, StoreError> {
        let brokers: BTreeSet<String> = records.iter().filter_map(|r| r.broker.clone()).collect();
        let topics: BTreeSet<String> = records
            .iter()
            .filter_map(|r| r.topic.clone())
            .filter(|t| !t.starts_with('%'))
            .collect();
        let keys: BTreeSet<String> = records
            .iter()
            .flat_map(|r| r.keys.iter().cloned())
            .collect();
        let mut seen: HashSet<(String, String)> = records
            .iter()
            .map(|r| (r.trace_id.clone(), r.span_id.clone()))
            .collect();
        let mut out = records;
        let mut add = |query: SpanQuery| -> Result<(), StoreError> {
            for r in self.find(&query)? {
                if seen.insert((r.trace_id.clone(), r.span_id.clone())) {
                    out.push(r);
                }
            }
            Ok(())
        };
        let tagged = |pairs: &[(&str, &str)]| SpanQuery {
            tags: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            limit: CONTEXT_LIMIT,
            ..SpanQuery::default()
        };
        for broker in &brokers {
            for hop in [Hop::Flush, Hop::Replicate, Hop::Recover, Hop::Failover] {
                add(tagged(&[(attr::HOP, hop.as_str()), (attr::BROKER, broker)]))?;
            }
        }
        for topic in &topics {
            // Sends too: whether a group went on with messages sent after
            // this one needs when those were sent.
            for hop in [Hop::Send, Hop::Settle, Hop::Receive, Hop::Process] {
                add(tagged(&[
                    (attr::HOP, hop.as_str()),
                    (attr::MESSAGING_DESTINATION_NAME, topic),
                ]))?;
            }
        }
        for key in &keys {
            add(tagged(&[
                (attr::HOP, Hop::Intent.as_str()),
                (attr::MESSAGING_ROCKETMQ_MESSAGE_KEYS, key),
            ]))?;
        }
        Ok(out)
    }
}
