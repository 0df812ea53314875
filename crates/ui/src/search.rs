//! `GET /api/ui/search`: messages by business key, message id or trace id,
//! or the messages of a window, narrowed by topic, consumer group and
//! verdict; each with its verdict per group.
//!
//! How the messages are found:
//! - **a lookup** (`key`, `msg_id`, `trace_id`): every message it finds,
//!   judged with its context, kept when it matches the other filters;
//! - **a loss verdict** without a lookup: the window's report (the judging
//!   of `lasthop report`), so the list is every loss the report counts;
//! - **otherwise**: the newest messages of the window (spans matching topic
//!   and group, newest first), at most `limit`, judged with their context;
//!   `truncated` says when the window held more.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Query, State};
use axum::response::Json;
use lasthop_analyzer::path::{Lookup, MessagePath, paths, paths_of};
use lasthop_analyzer::report::{parse_rfc3339_ns, rfc3339_ms};
use lasthop_analyzer::{JudgeOptions, JudgedAt, Verdict, judge_window};
use lasthop_collector::SpanQuery;
use lasthop_vocab::{SpanRecord, attr};
use serde::Serialize;

use crate::error::{UiError, blocking, millis};
use crate::paths::{UiState, lookup};

/// Most spans read to find a window's newest messages.
const SCAN_SPANS: usize = 20_000;

/// One group's verdict of a message.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GroupCell {
    pub group: Option<String>,
    pub verdict: Verdict,
    pub hop: Option<String>,
}

/// One message of the results.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Found {
    pub message_id: String,
    pub keys: Vec<String>,
    pub topic: Option<String>,
    /// When its first span started (RFC 3339), and in ns.
    pub time: Option<String>,
    pub start_ns: Option<u64>,
    pub verdicts: Vec<GroupCell>,
}

/// The answer.
#[derive(Debug, Serialize)]
pub struct Results {
    pub messages: Vec<Found>,
    /// `lookup`, `report` or `recent`: how they were found (see the module doc).
    pub source: &'static str,
    /// More messages matched than are listed.
    pub truncated: bool,
    pub judged_at: String,
}

struct Filters {
    topic: Option<String>,
    group: Option<String>,
    verdict: Option<Verdict>,
    since: Option<u64>,
    until: Option<u64>,
    limit: usize,
}

impl Filters {
    fn parse(params: &HashMap<String, String>) -> Result<Filters, UiError> {
        let get = |name: &str| {
            params
                .get(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let verdict = match get("verdict") {
            Some(name) => Some(
                Verdict::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == name)
                    .ok_or_else(|| {
                        UiError::bad_request(format!("no verdict is called {name:?}"))
                    })?,
            ),
            None => None,
        };
        let limit = match get("limit") {
            Some(v) => v
                .parse::<usize>()
                .map_err(|_| UiError::bad_request("limit must be a number"))?,
            None => 50,
        }
        .clamp(1, 500);
        Ok(Filters {
            topic: get("topic"),
            group: get("group"),
            verdict,
            since: millis("since", params.get("since"))?,
            until: millis("until", params.get("until"))?,
            limit,
        })
    }

    fn in_window(&self, t: Option<u64>) -> bool {
        t.is_none_or(|t| self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u))
    }

    fn keeps(&self, f: &Found) -> bool {
        let cell = |c: &GroupCell| {
            self.group
                .as_ref()
                .is_none_or(|g| c.group.as_ref() == Some(g))
                && self.verdict.is_none_or(|v| c.verdict == v)
        };
        self.topic
            .as_ref()
            .is_none_or(|t| f.topic.as_ref() == Some(t))
            && self.in_window(f.start_ns)
            && (self.group.is_none() && self.verdict.is_none() || f.verdicts.iter().any(cell))
    }
}

/// A path's row of the results (none for spans that name no message).
fn row_of(p: &MessagePath) -> Option<Found> {
    let start = p.hops.iter().map(|h| h.span.start_ns).min();
    Some(Found {
        message_id: p.message_id.clone()?,
        keys: p.keys.clone(),
        topic: p.topic.clone(),
        time: start.map(rfc3339_ms),
        start_ns: start,
        verdicts: p
            .verdicts
            .iter()
            .flat_map(|v| &v.verdicts)
            .map(|g| GroupCell {
                group: g.group.clone(),
                verdict: g.verdict,
                hop: g.hop.clone(),
            })
            .collect(),
    })
}

pub(crate) async fn handler(
    State(state): State<UiState>,
    Query(params): Query<HashMap<String, String>>,
) -> Result<Json<Results>, UiError> {
    let lookup = lookup(&params)?;
    let filters = Filters::parse(&params)?;
    blocking(move || search(&state, lookup, &filters).map(Json)).await
}

fn search(state: &UiState, lookup: Option<Lookup>, f: &Filters) -> Result<Results, UiError> {
    let store = state.store.pinned();
    let newest = store.newest_start_ns().map_err(UiError::internal)?;
    let at = JudgedAt::resolve(None, newest, f.until);
    let rules = state.rules(at);
    let (mut messages, source, mut truncated) = match lookup {
        Some(lookup) => {
            let all = lookup.find(&store).map_err(UiError::internal)?;
            let found: Vec<Found> = paths(&all, &lookup, &rules)
                .iter()
                .filter_map(row_of)
                .collect();
            (found, "lookup", false)
        }
        None if f.verdict.is_some_and(Verdict::is_lost) => {
            let options = JudgeOptions {
                rules,
                ..JudgeOptions::default()
            };
            let window = (f.since.unwrap_or(0), f.until.unwrap_or(u64::MAX));
            let report = judge_window(&store, window, &options, &|_| {})
                .map_err(UiError::internal)?
                .finish(Default::default());
            let mut by_id: BTreeMap<String, Found> = BTreeMap::new();
            for l in report.lost_messages {
                let start = l.sent_at.as_deref().and_then(parse_rfc3339_ns);
                let entry = by_id.entry(l.message_id.clone()).or_insert_with(|| Found {
                    message_id: l.message_id.clone(),
                    keys: l.keys.clone(),
                    topic: l.topic.clone(),
                    time: l.sent_at.clone(),
                    start_ns: start,
                    verdicts: Vec::new(),
                });
                entry.verdicts.push(GroupCell {
                    group: l.group,
                    verdict: l.verdict,
                    hop: l.hop,
                });
            }
            (by_id.into_values().collect(), "report", false)
        }
        None => {
            let (records, more) = newest_messages(&store, f)?;
            let ids: Vec<String> = records
                .iter()
                .filter_map(|r| r.message_id.clone())
                .collect();
            let mut own = Vec::new();
            for id in &ids {
                own.extend(store.by_message_id(id).map_err(UiError::internal)?);
            }
            let all = store.with_context(own).map_err(UiError::internal)?;
            let ids: std::collections::HashSet<&str> = ids.iter().map(String::as_str).collect();
            let wanted =
                |r: &SpanRecord| r.message_id.as_deref().is_some_and(|id| ids.contains(id));
            let found = paths_of(&all, wanted, &rules)
                .iter()
                .filter_map(row_of)
                .collect();
            (found, "recent", more)
        }
    };
    messages.retain(|m| f.keeps(m));
    messages.sort_by(|a, b| {
        b.start_ns
            .cmp(&a.start_ns)
            .then(a.message_id.cmp(&b.message_id))
    });
    if messages.len() > f.limit {
        messages.truncate(f.limit);
        truncated = true;
    }
    Ok(Results {
        messages,
        source,
        truncated,
        judged_at: rfc3339_ms(at.ns),
    })
}

/// One span of each of the window's newest `limit` messages (matching topic
/// and group), and whether the window held more.
fn newest_messages(
    store: &lasthop_collector::SpanStore,
    f: &Filters,
) -> Result<(Vec<SpanRecord>, bool), UiError> {
    let mut tags = Vec::new();
    if let Some(t) = &f.topic {
        tags.push((attr::MESSAGING_DESTINATION_NAME.to_owned(), t.clone()));
    }
    if let Some(g) = &f.group {
        tags.push((attr::MESSAGING_CONSUMER_GROUP_NAME.to_owned(), g.clone()));
    }
    let query = SpanQuery {
        tags,
        start_ns: f.since,
        end_ns: f.until,
        limit: SCAN_SPANS,
        ..SpanQuery::default()
    };
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    let mut more = false;
    for r in store.find(&query).map_err(UiError::internal)? {
        let Some(id) = r.message_id.clone() else {
            continue;
        };
        if seen.insert(id) {
            if out.len() == f.limit {
                more = true;
                break;
            }
            out.push(r);
        }
    }
    Ok((out, more))
}
