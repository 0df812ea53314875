//! Reads OTLP JSON files: `ExportTraceServiceRequest`s one per line (what
//! OpenTelemetry file exporters write) or one per file (pretty-printed too).
//! A bad line is reported with its number and reading goes on.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use lasthop_vocab::SpanRecord;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

use super::{BadRecord, Reader, Sniff};
use crate::normalize::normalize_request;

/// The `otlp-json` input format.
#[derive(Debug)]
pub struct OtlpJson;

impl Reader for OtlpJson {
    fn name(&self) -> &'static str {
        "otlp-json"
    }

    fn about(&self) -> &'static str {
        "ExportTraceServiceRequest in JSON, one per line or one per file"
    }

    fn sniff(&self, head: &[u8]) -> Sniff {
        let text = String::from_utf8_lossy(head);
        if text.contains("resourceSpans") || text.contains("resource_spans") {
            Sniff::Likely
        } else {
            Sniff::No
        }
    }

    fn read(
        &self,
        path: &Path,
        _options: &super::ReadOptions,
        sink: &mut dyn FnMut(Vec<SpanRecord>),
    ) -> io::Result<Vec<BadRecord>> {
        read_file(path, sink).map(|summary| summary.bad)
    }
}

/// What reading one file found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub requests: u64,
    pub spans: u64,
    /// Spans refused by normalization (bad ids).
    pub rejected_spans: u64,
    /// Lines (or, for a one-request file, the file) that could not be read.
    pub bad: Vec<BadRecord>,
}

/// Reads `path`, handing each request's normalized spans to `sink`.
pub fn read_file(path: &Path, mut sink: impl FnMut(Vec<SpanRecord>)) -> io::Result<FileSummary> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut summary = FileSummary::default();
    let mut first = String::new();
    let mut first_line_no = 0u64;
    // The first non-empty line tells the layout: a whole object means one request per line.
    while first.trim().is_empty() {
        first.clear();
        if reader.read_line(&mut first)? == 0 {
            return Ok(summary);
        }
        first_line_no += 1;
    }
    let mut take = |request: ExportTraceServiceRequest, summary: &mut FileSummary| {
        let normalized = normalize_request(request);
        summary.requests += 1;
        summary.spans += normalized.records.len() as u64;
        summary.rejected_spans += normalized.rejected;
        if !normalized.records.is_empty() {
            sink(normalized.records);
        }
    };
    match serde_json::from_str::<ExportTraceServiceRequest>(first.trim()) {
        Ok(request) => {
            take(request, &mut summary);
            let mut line_no = first_line_no;
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line)? == 0 {
                    break;
                }
                line_no += 1;
                if line.trim().is_empty() {
                    continue;
                }
                match serde_json::from_str::<ExportTraceServiceRequest>(line.trim()) {
                    Ok(request) => take(request, &mut summary),
                    Err(e) => summary.bad.push(BadRecord {
                        line: line_no,
                        reason: e.to_string(),
                    }),
                }
            }
        }
        Err(_) => {
            let mut whole = first;
            reader.read_to_string(&mut whole)?;
            match serde_json::from_str::<ExportTraceServiceRequest>(&whole) {
                Ok(request) => take(request, &mut summary),
                Err(e) => {
                    let line = e.line() as u64 + first_line_no - 1;
                    let reason = format!("not an OTLP JSON request: {e}");
                    summary.bad.push(BadRecord { line, reason });
                }
            }
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const REQUEST: &str = r#"{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"order-service"}}]},"scopeSpans":[{"spans":[{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"order_paid send","kind":4,"startTimeUnixNano":"1544712660000000000","endTimeUnixNano":"1544712661000000000","attributes":[{"key":"messaging.message.id","value":{"stringValue":"M1"}},{"key":"lasthop.commitlog.offset","value":{"intValue":"81234"}}]}]}]}]}"#;

    fn read(text: &str) -> (FileSummary, Vec<SpanRecord>) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        let mut records = Vec::new();
        let summary = read_file(file.path(), |r| records.extend(r)).unwrap();
        (summary, records)
    }

    #[test]
    fn one_request_per_line_with_a_bad_line_in_the_middle() {
        let text = format!("{REQUEST}\n{{\"resourceSpans\": [oops\n\n{REQUEST}\n");
        let (summary, records) = read(&text);
        assert_eq!(summary.requests, 2);
        assert_eq!(records.len(), 2);
        assert_eq!(summary.bad.len(), 1);
        assert_eq!(summary.bad[0].line, 2);
        let r = &records[0];
        assert_eq!(r.trace_id, "5b8efff798038103d269b633813fc60c");
        assert_eq!(r.service, "order-service");
        assert_eq!(r.commitlog_offset, Some(81234));
        assert_eq!(r.start_ns, 1_544_712_660_000_000_000);
    }

    #[test]
    fn one_pretty_printed_request_per_file() {
        let value: serde_json::Value = serde_json::from_str(REQUEST).unwrap();
        let (summary, records) = read(&serde_json::to_string_pretty(&value).unwrap());
        assert_eq!(
            (summary.requests, records.len(), summary.bad.len()),
            (1, 1, 0)
        );
    }

    #[test]
    fn a_broken_file_is_one_error_with_its_line() {
        let (summary, records) = read("{\n  \"resourceSpans\": [\n    {]\n}\n");
        assert!(records.is_empty());
        assert_eq!(summary.bad.len(), 1);
        assert_eq!(summary.bad[0].line, 3, "{:?}", summary.bad);
    }

    #[test]
    fn empty_file_reads_nothing() {
        let (summary, _) = read("\n\n");
        assert_eq!(summary, FileSummary::default());
    }
}
