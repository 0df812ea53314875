//! Files of different formats, read by the collector's ingest readers,
//! judged together: a RocketMQ trace record of the send and an application
//! log line of the processing tell one message's story.

use std::io::Write;

use lasthop_analyzer::{Evidence, Options, Verdict, analyze};
use lasthop_collector::ingest::read_file;

fn record(fields: &[&str]) -> Vec<u8> {
    let mut r = fields.join("\u{1}").into_bytes();
    r.push(0x02);
    r
}

#[test]
fn a_trace_record_and_a_log_line_of_one_message_judge_it_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace.bin");
    let pub_record = [
        "Pub",
        "1763700000120",
        "R",
        "p",
        "t",
        "MSG1",
        "",
        "K1",
        "h",
        "1",
        "1",
    ];
    std::fs::write(&trace, record(&pub_record)).unwrap();
    let log = dir.path().join("app.jsonl");
    let mut f = std::fs::File::create(&log).unwrap();
    writeln!(
        f,
        r#"{{"time":1763700000300,"hop":"process","message_id":"MSG1","group":"g"}}"#
    )
    .unwrap();
    let mut all = Vec::new();
    read_file(&trace, None, &Default::default(), |r| all.extend(r)).unwrap();
    read_file(&log, None, &Default::default(), |r| all.extend(r)).unwrap();
    let verdicts = analyze(&Evidence::new(&all), &Options::default());
    assert_eq!(verdicts[0].verdicts[0].verdict, Verdict::Delivered);
}
