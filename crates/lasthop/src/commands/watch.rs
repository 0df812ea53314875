//! `lasthop watch`: a running collector's losses as its live judge finds
//! them, one line each (or one JSON document per line); with
//! `--fail-on-loss`, exit 3 at the first (for CI pipelines and canaries).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::flags::OutputFormat;

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The collector's API address.
    #[arg(long, default_value = "http://127.0.0.1:16686", value_name = "URL")]
    pub server: String,
    /// Also print the losses the collector found before this started (the
    /// newest 10,000 it keeps).
    #[arg(long)]
    pub all: bool,
    /// Exit with status 3 at the first loss.
    #[arg(long)]
    pub fail_on_loss: bool,
    /// Stop after this many seconds (status 0 when no loss made it stop).
    #[arg(long, value_name = "SECONDS")]
    pub timeout: Option<u64>,
    /// One line of text per loss, or its JSON document per line.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    pub format: OutputFormat,
}

/// How long one request waits for news.
const POLL: Duration = Duration::from_secs(10);

pub fn run(args: WatchArgs) -> anyhow::Result<ExitCode> {
    let base = args.server.trim_end_matches('/').to_owned();
    let endpoint = format!("{base}/api/live/losses");
    let client = reqwest::blocking::Client::builder()
        .timeout(POLL + Duration::from_secs(5))
        .build()
        .context("cannot start the HTTP client")?;
    let ask = |after: u64, wait: Duration| -> anyhow::Result<Value> {
        let response = client
            .get(&endpoint)
            .query(&[("after", after), ("wait_ms", wait.as_millis() as u64)])
            .send()
            .with_context(|| format!("cannot reach {endpoint}"))?;
        let status = response.status();
        if status == reqwest::StatusCode::NOT_FOUND {
            bail!(
                "{base} does not judge live (started with --no-live, or not a lasthop collector)"
            );
        }
        if !status.is_success() {
            bail!("{endpoint} answered {status}");
        }
        response
            .json()
            .with_context(|| format!("{endpoint} did not answer JSON"))
    };
    let first = ask(0, Duration::ZERO)?;
    let mut after = if args.all {
        0
    } else {
        first["newest"].as_u64().unwrap_or(0)
    };
    let deadline = args
        .timeout
        .map(|s| Instant::now() + Duration::from_secs(s));
    eprintln!("watching {base} for losses (Ctrl-C to stop)");
    let mut failures = 0u32;
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        if left == Some(Duration::ZERO) {
            return Ok(ExitCode::SUCCESS);
        }
        let wait = left.map_or(POLL, |l| l.min(POLL));
        let answer = match ask(after, wait) {
            Ok(answer) => {
                failures = 0;
                answer
            }
            Err(e) if failures < 5 => {
                failures += 1;
                eprintln!("warning: {e:#}; trying again");
                std::thread::sleep(Duration::from_secs(1 << failures.min(4)));
                continue;
            }
            Err(e) => return Err(e),
        };
        let events = answer["events"].as_array().cloned().unwrap_or_default();
        for event in &events {
            after = after.max(event["seq"].as_u64().unwrap_or(after));
            match args.format {
                OutputFormat::Json => println!("{event}"),
                OutputFormat::Text => println!("{}", line(event)),
            }
            if args.fail_on_loss && event["event"] == "lost" {
                return Ok(ExitCode::from(3));
            }
        }
    }
}

/// `TIME LOST verdict hop=H topic=T group=G msg=ID keys=K: explanation`.
fn line(e: &Value) -> String {
    let text = |k: &str| e[k].as_str().unwrap_or("-").to_owned();
    let keys: Vec<&str> = (e["keys"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    let head = match e["event"].as_str() {
        Some("recovered") => format!(
            "RECOVERED {} (was {})",
            text("verdict"),
            text("previous_verdict")
        ),
        _ => format!("LOST {}", text("verdict")),
    };
    format!(
        "{} {head} hop={} topic={} group={} msg={} keys={}: {}",
        text("judged_at"),
        text("hop"),
        text("topic"),
        text("group"),
        text("message_id"),
        if keys.is_empty() {
            "-".into()
        } else {
            keys.join(",")
        },
        text("explanation"),
    )
}
