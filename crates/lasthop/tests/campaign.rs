//! `lasthop campaign`: a short seeded campaign against real brokers agrees
//! with the ledgers, and a run replays from its seed.

mod support;

use support::lasthop;

fn campaign(data: &std::path::Path, args: &[&str]) -> (std::process::Output, serde_json::Value) {
    let out = lasthop()
        .arg("campaign")
        .args(args)
        .args(["--format", "json", "--data"])
        .arg(data)
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

#[test]
fn a_short_campaign_finds_every_loss_at_its_hop_and_calls_nothing_lost_that_arrived() {
    let dir = tempfile::tempdir().unwrap();
    let (out, json) = campaign(dir.path(), &["--runs", "12", "--seed", "3"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{json:#}\n{stderr}");
    assert_eq!(json["runs"], 12, "{json:#}");
    assert_eq!(json["false_lost"], 0, "{json:#}");
    assert_eq!(json["missed"], 0, "{json:#}");
    assert_eq!(json["misattributed"], 0, "{json:#}");
    assert_eq!(json["attributed"], json["lost"], "{json:#}");
    assert!(json["lost"].as_u64().unwrap() > 0, "{json:#}");
    assert_eq!(json["failures"].as_array().unwrap().len(), 0);
    let faults = json["by_fault"].as_object().unwrap();
    assert!(faults.len() >= 4, "{json:#}");
    let runs: u64 = faults.values().map(|t| t["runs"].as_u64().unwrap()).sum();
    assert_eq!(runs, 12);
    // One progress line per run, each naming its seed.
    for seed in 3..15 {
        assert!(stderr.contains(&format!(" seed {seed}: ")), "{stderr}");
    }
}

#[test]
fn a_run_replays_alone_from_its_seed() {
    let dir = tempfile::tempdir().unwrap();
    let (many, _) = campaign(&dir.path().join("a"), &["--runs", "3", "--seed", "40"]);
    let (one, json) = campaign(&dir.path().join("b"), &["--runs", "1", "--seed", "42"]);
    let plan = |out: &std::process::Output| {
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .find_map(|l| {
                l.split_once(" seed 42: ")
                    .map(|(_, rest)| rest.split(": lost").next().unwrap().to_owned())
            })
            .unwrap()
    };
    assert_eq!(plan(&many), plan(&one));
    assert_eq!(json["runs"], 1);
    assert_eq!(json["seed"], 42);
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let out = lasthop()
        .args(["campaign", "--runs", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--runs"));
    let out = lasthop()
        .args(["campaign", "--messages", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--messages"));
}
