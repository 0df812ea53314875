//! The loss report as one self-contained HTML file: no external assets,
//! charts drawn as inline SVG (losses over time by hop; the funnel from send
//! to process), a table of lost messages that sorts by any column. Every
//! string that came from spans is escaped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use crate::report::Report;

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const COLORS: [&str; 8] = [
    "#d1495b", "#edae49", "#00798c", "#30638e", "#66a182", "#8d96a3", "#b07aa1", "#003d5b",
];

fn timeline_svg(report: &Report) -> String {
    if report.timeline.is_empty() {
        return "<p>No losses in this window.</p>".into();
    }
    let hops: BTreeSet<&str> = report
        .timeline
        .iter()
        .flat_map(|b| b.lost.keys().map(String::as_str))
        .collect();
    let color: BTreeMap<&str, &str> = hops
        .iter()
        .zip(COLORS.iter().cycle())
        .map(|(h, c)| (*h, *c))
        .collect();
    let max = report
        .timeline
        .iter()
        .map(|b| b.lost.values().sum::<u64>())
        .max()
        .unwrap_or(1)
        .max(1);
    let (w, h, left, bottom) = (720.0, 220.0, 40.0, 30.0);
    // At most 48 px a bucket, so one bucket does not fill the chart.
    let bar = ((w - left) / report.timeline.len() as f64).min(48.0);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {h}" width="100%" role="img" aria-label="losses over time by hop">"#
    );
    let _ = write!(
        svg,
        r#"<text x="4" y="14" font-size="11">{max}</text><text x="4" y="{}" font-size="11">0</text>"#,
        h - bottom
    );
    for (i, b) in report.timeline.iter().enumerate() {
        let x = left + i as f64 * bar;
        let mut y = h - bottom;
        for (hop, n) in &b.lost {
            let bh = (*n as f64 / max as f64) * (h - bottom - 10.0);
            y -= bh;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{bh:.1}" fill="{}"><title>{} {}: {n}</title></rect>"#,
                (bar - 2.0).max(1.0),
                color[hop.as_str()],
                escape(&b.start),
                escape(hop)
            );
        }
        if i == 0 || i + 1 == report.timeline.len() {
            let _ = write!(
                svg,
                r#"<text x="{x:.1}" y="{}" font-size="10">{}</text>"#,
                h - 8.0,
                escape(&b.start)
            );
        }
    }
    svg.push_str("</svg><p>");
    for (hop, c) in &color {
        let _ = write!(
            svg,
            r#"<span class="key" style="background:{c}"></span>{} "#,
            escape(hop)
        );
    }
    svg.push_str("</p>");
    svg
}

fn funnel_svg(report: &Report) -> String {
    let max = report
        .funnel
        .iter()
        .map(|(_, n)| *n)
        .max()
        .unwrap_or(0)
        .max(1);
    let (w, row) = (720.0, 28.0);
    let mut svg = format!(
        r#"<svg viewBox="0 0 {w} {}" width="100%" role="img" aria-label="messages reaching each hop">"#,
        row * report.funnel.len() as f64
    );
    for (i, (stage, n)) in report.funnel.iter().enumerate() {
        let y = i as f64 * row;
        let bw = (*n as f64 / max as f64) * (w - 200.0);
        let _ = write!(
            svg,
            r##"<text x="0" y="{:.1}" font-size="13">{}</text><rect x="90" y="{:.1}" width="{bw:.1}" height="{:.1}" fill="#30638e"></rect><text x="{:.1}" y="{:.1}" font-size="12">{n}</text>"##,
            y + 18.0,
            escape(stage),
            y + 4.0,
            row - 8.0,
            96.0 + bw,
            y + 18.0
        );
    }
    svg.push_str("</svg>");
    svg
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:1100px;color:#222}\
h1{margin-bottom:.2rem}.summary{font-size:1.2rem}.lost{color:#d1495b;font-weight:600}\
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border-bottom:1px solid #ddd;padding:.35rem;text-align:left;vertical-align:top;overflow-wrap:anywhere}\
table.lost-table{table-layout:fixed}\
th{cursor:pointer;background:#f4f4f4;user-select:none}th:hover{background:#e8e8e8}\
.key{display:inline-block;width:.8rem;height:.8rem;margin:0 .3rem 0 .8rem}.grid{display:grid;grid-template-columns:repeat(4,1fr);gap:1rem}\
.small td{font-size:.85rem}";

const SORT: &str = "document.querySelectorAll('table.sortable th').forEach(function(th,i){th.addEventListener('click',function(){\
var t=th.closest('table'),b=t.tBodies[0],rows=Array.from(b.rows),asc=th.dataset.asc!=='1';\
rows.sort(function(a,c){var x=a.cells[i].textContent,y=c.cells[i].textContent,n=parseFloat(x)-parseFloat(y);\
return (isNaN(n)?x.localeCompare(y):n)*(asc?1:-1)});th.dataset.asc=asc?'1':'0';rows.forEach(function(r){b.appendChild(r)})})});";

fn small_table(title: &str, rows: &BTreeMap<String, u64>) -> String {
    let mut out = format!(
        "<div><h3>{}</h3><table class=\"small\"><tbody>",
        escape(title)
    );
    if rows.is_empty() {
        out.push_str("<tr><td>none</td></tr>");
    }
    for (k, n) in rows {
        let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(k));
    }
    out.push_str("</tbody></table></div>");
    out
}

impl Report {
    /// The report as one self-contained HTML page.
    pub fn to_html(&self) -> String {
        let mut out = String::new();
        let mut window = format!(
            "{} .. {}",
            self.window.since.as_deref().unwrap_or("the beginning"),
            self.window.until.as_deref().unwrap_or("now")
        );
        if let Some(judged) = self.window.judged() {
            window.push_str(", ");
            window.push_str(&judged);
        }
        let _ = write!(
            out,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>lasthop loss report</title><style>{STYLE}</style></head><body>"
        );
        let _ = write!(
            out,
            "<h1>lasthop loss report</h1><p>{}</p><p class=\"summary\">{} messages, <span class=\"lost\">{} lost</span></p>",
            escape(&window),
            self.totals.messages,
            self.lost()
        );
        out.push_str("<h2>Losses over time, by hop</h2>");
        out.push_str(&timeline_svg(self));
        out.push_str("<h2>How far messages got</h2>");
        out.push_str(&funnel_svg(self));
        out.push_str("<h2>Verdicts</h2><table class=\"sortable\"><thead><tr><th>verdict</th><th>count</th></tr></thead><tbody>");
        for (v, n) in &self.totals.by_verdict {
            let _ = write!(out, "<tr><td>{}</td><td>{n}</td></tr>", escape(v));
        }
        out.push_str("</tbody></table><div class=\"grid\">");
        for (title, rows) in [
            ("Lost by hop", &self.by_hop),
            ("Lost by topic", &self.by_topic),
            ("Lost by group", &self.by_group),
            ("Lost by broker", &self.by_broker),
        ] {
            out.push_str(&small_table(title, rows));
        }
        out.push_str("</div><h2>Lost messages</h2><table class=\"sortable lost-table\">");
        // Widths favour the story over the ids.
        out.push_str("<colgroup><col style=\"width:12%\"><col style=\"width:9%\"><col style=\"width:11%\"><col style=\"width:7%\"><col style=\"width:9%\"><col style=\"width:6%\"><col style=\"width:30%\"><col style=\"width:16%\"></colgroup><thead><tr>");
        for h in [
            "message",
            "keys",
            "topic",
            "group",
            "verdict",
            "hop",
            "explanation",
            "fix",
        ] {
            let _ = write!(out, "<th>{h}</th>");
        }
        out.push_str("</tr></thead><tbody>");
        for m in &self.lost_messages {
            let cells = [
                m.message_id.as_str(),
                &m.keys.join(" "),
                m.topic.as_deref().unwrap_or(""),
                m.group.as_deref().unwrap_or(""),
                m.verdict.as_str(),
                m.hop.as_deref().unwrap_or(""),
                &m.explanation,
                m.fix.as_deref().unwrap_or(""),
            ];
            out.push_str("<tr>");
            for c in cells {
                let _ = write!(out, "<td>{}</td>", escape(c));
            }
            out.push_str("</tr>");
        }
        let _ = writeln!(out, "</tbody></table><script>{SORT}</script></body></html>");
        out
    }
}

#[cfg(test)]
mod tests {

    use crate::model::{GroupVerdict, MessageVerdicts, Verdict};
    use crate::report::{Window, build};

    #[test]
    fn the_page_is_self_contained_and_escapes_span_text() {
        let m = MessageVerdicts {
            message_id: "M<1>".into(),
            broker: Some("broker-a".into()),
            sent_ns: Some(1_763_700_000_000_000_000),
            keys: vec!["ORDER_\"<script>alert(1)</script>".into()],
            topic: Some("order_paid".into()),
            trace_ids: vec![],
            process_count: 0,
            send_indeterminate: false,
            reached: vec!["send", "store"],
            verdicts: vec![GroupVerdict {
                group: Some("red&packet".into()),
                verdict: Verdict::LostAtFlush,
                hop: Some("flush".into()),
                cause: None,
                explanation: "<b>bold</b>".into(),
                fix: None,
                evidence: vec![],
            }],
        };
        let html = build(&[m], Window::default()).unwrap().to_html();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(!html.contains("<script>alert"), "span text is escaped");
        assert!(html.contains("ORDER_&quot;&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("red&amp;packet") && html.contains("&lt;b&gt;bold&lt;/b&gt;"));
        assert!(
            !html.contains("src=") && !html.contains("href="),
            "no external assets"
        );
        assert!(html.contains("<svg") && html.contains("losses over time by hop"));
        assert_eq!(html.matches("<script>").count(), 1, "only the table sorter");
    }
}
