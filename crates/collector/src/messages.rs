//! Spans grouped per message id: what `query` and `/api/messages` show until
//! the analyzer adds paths and verdicts on top.

use std::collections::BTreeSet;

use lasthop_vocab::SpanRecord;
use serde::Serialize;

/// The spans that name one message id (or, with `message_id` null, spans
/// found by the same lookup that name none, such as business `intent`s).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MessageSpans {
    pub message_id: Option<String>,
    pub keys: Vec<String>,
    pub topic: Option<String>,
    pub trace_ids: Vec<String>,
    pub spans: Vec<SpanRecord>,
}

/// Groups records by message id, in order of each message's first span.
pub fn group_by_message(records: &[SpanRecord]) -> Vec<MessageSpans> {
    let mut sorted: Vec<&SpanRecord> = records.iter().collect();
    sorted.sort_by(|a, b| (a.start_ns, &a.span_id).cmp(&(b.start_ns, &b.span_id)));
    let mut out: Vec<MessageSpans> = Vec::new();
    for r in sorted {
        let group = match out.iter_mut().position(|m| m.message_id == r.message_id) {
            Some(i) => &mut out[i],
            None => {
                out.push(MessageSpans {
                    message_id: r.message_id.clone(),
                    keys: Vec::new(),
                    topic: None,
                    trace_ids: Vec::new(),
                    spans: Vec::new(),
                });
                out.last_mut().expect("pushed")
            }
        };
        group.spans.push(r.clone());
        if group.topic.is_none() {
            group.topic = r.topic.clone();
        }
    }
    for m in &mut out {
        let keys: BTreeSet<&String> = m.spans.iter().flat_map(|s| &s.keys).collect();
        m.keys = keys.into_iter().cloned().collect();
        let traces: BTreeSet<&String> = m
            .spans
            .iter()
            .map(|s| &s.trace_id)
            .filter(|t| !t.is_empty())
            .collect();
        m.trace_ids = traces.into_iter().cloned().collect();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(msg: Option<&str>, trace: &str, t: u64, keys: &[&str]) -> SpanRecord {
        SpanRecord {
            message_id: msg.map(str::to_owned),
            trace_id: trace.into(),
            span_id: format!("{t:016x}"),
            start_ns: t,
            keys: keys.iter().map(|k| k.to_string()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn groups_by_message_in_time_order_and_merges_keys_and_traces() {
        let records = vec![
            span(Some("M2"), "t2", 30, &["ORDER_2"]),
            span(Some("M1"), "t1", 10, &["ORDER_1"]),
            span(Some("M1"), "t9", 20, &["ORDER_1", "USER_1"]),
            span(None, "", 5, &["ORDER_1"]),
        ];
        let groups = group_by_message(&records);
        let ids: Vec<_> = groups.iter().map(|g| g.message_id.as_deref()).collect();
        assert_eq!(ids, vec![None, Some("M1"), Some("M2")]);
        assert_eq!(groups[1].keys, vec!["ORDER_1", "USER_1"]);
        assert_eq!(groups[1].trace_ids, vec!["t1", "t9"]);
        assert!(groups[0].trace_ids.is_empty());
    }
}
