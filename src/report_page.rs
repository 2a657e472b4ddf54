//! A recovery report as text and as one self-contained HTML page: a summary, the
//! timeline as an inline SVG picture (no script, no style sheet or font from
//! elsewhere), and the events as a table. Pure: a report in, a string out.

use std::fmt::Write as _;
use std::time::SystemTime;

use failover_core::report::{EventKind, Report};

/// Escapes text for HTML and SVG.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
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

fn label(kind: EventKind) -> &'static str {
    match kind {
        EventKind::FirstFailedProbe => "first failed probe",
        EventKind::QuorumReached => "quorum reached",
        EventKind::DrillStarted => "drill started",
        EventKind::Decision => "decision",
        EventKind::FenceStarted => "fence started",
        EventKind::FenceEnded => "fence ended",
        EventKind::Committed => "committed",
        EventKind::PrimaryCopyUpdated => "primary copy updated",
        EventKind::StateApiAnswered => "state API answered",
        EventKind::DnsChanged => "DNS changed",
        EventKind::ClientWrite => "client write",
    }
}

fn colour(kind: EventKind) -> &'static str {
    match kind {
        EventKind::FirstFailedProbe | EventKind::QuorumReached => "#c0392b",
        EventKind::DrillStarted | EventKind::Decision => "#8e44ad",
        EventKind::FenceStarted | EventKind::FenceEnded => "#d68910",
        EventKind::Committed | EventKind::PrimaryCopyUpdated | EventKind::DnsChanged => "#1f618d",
        EventKind::StateApiAnswered | EventKind::ClientWrite => "#1e8449",
    }
}

/// Seconds from `start` to `t`.
fn offset(start: SystemTime, t: SystemTime) -> f64 {
    t.duration_since(start).map_or(0.0, |d| d.as_secs_f64())
}

fn seconds(ms: u64) -> String {
    format!("{:.1} s", ms as f64 / 1000.0)
}

/// The report for a terminal: one line per event, then RTO, RPO and notes.
pub fn text(r: &Report) -> String {
    let mut out = format!(
        "version {}: {} -> {} ({}{}) by {}: {}\n",
        r.version,
        r.from,
        r.to,
        r.trigger.as_str(),
        r.drill
            .as_deref()
            .map(|d| format!(", drill {d}"))
            .unwrap_or_default(),
        r.by,
        r.reason
    );
    let start = r.events.first().and_then(|e| e.time());
    for e in &r.events {
        let plus = start.zip(e.time()).map_or(0.0, |(s, t)| offset(s, t));
        let region = e.region.map(|r| format!(" [{r}]")).unwrap_or_default();
        let _ = writeln!(
            out,
            "  {}  +{plus:>7.3}s  {}{region}  {}",
            e.at,
            label(e.kind),
            e.detail
        );
    }
    match &r.rto {
        Some(rto) => {
            let _ = writeln!(out, "RTO {}: {}", seconds(rto.ms), rto.what);
        }
        None => out.push_str("RTO: none (clients did not move, or were not seen served)\n"),
    }
    if let Some(rpo) = &r.rpo {
        let _ = writeln!(out, "RPO: {}", rpo.what);
    }
    for n in &r.notes {
        let _ = writeln!(out, "note: {n}");
    }
    if !r.complete {
        out.push_str("(still being observed)\n");
    }
    out
}

/// The timeline as an SVG picture: one row per event, a marker at its time, the
/// recovery time as a bar.
fn timeline(r: &Report) -> String {
    let (w, left, right, row) = (960.0_f64, 240.0_f64, 40.0_f64, 26.0_f64);
    let times: Vec<SystemTime> = r.events.iter().filter_map(|e| e.time()).collect();
    let (Some(start), Some(end)) = (times.iter().min().copied(), times.iter().max().copied())
    else {
        return "<p>No events.</p>".into();
    };
    let span = offset(start, end).max(0.001);
    let x = |t: SystemTime| left + (w - left - right) * offset(start, t) / span;
    let height = 50.0 + row * r.events.len() as f64;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" role=\"img\" aria-label=\"timeline\" \
         viewBox=\"0 0 {w} {height}\" width=\"100%\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let axis_y = height - 20.0;
    let _ = write!(
        svg,
        "<line x1=\"{left}\" y1=\"{axis_y}\" x2=\"{}\" y2=\"{axis_y}\" stroke=\"#555\"/>\
         <text x=\"{left}\" y=\"{}\" text-anchor=\"middle\">0 s</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{span:.1} s</text>",
        w - right,
        axis_y + 15.0,
        w - right,
        axis_y + 15.0
    );
    if let Some(rto) = &r.rto {
        let from = r.first(rto.from, None).and_then(|e| e.time());
        let until = r
            .events
            .iter()
            .find(|e| e.kind == rto.until)
            .and_then(|e| e.time());
        if let (Some(a), Some(b)) = (from, until) {
            let _ = write!(
                svg,
                "<rect x=\"{:.1}\" y=\"8\" width=\"{:.1}\" height=\"{}\" fill=\"#f9e79f\" \
                 opacity=\"0.5\"><title>RTO {}</title></rect>\
                 <text x=\"{:.1}\" y=\"20\" font-weight=\"bold\">RTO {}</text>",
                x(a),
                (x(b) - x(a)).max(1.0),
                axis_y - 8.0,
                seconds(rto.ms),
                x(a) + 4.0,
                seconds(rto.ms)
            );
        }
    }
    for (i, e) in r.events.iter().enumerate() {
        let Some(t) = e.time() else { continue };
        let y = 36.0 + row * i as f64;
        let region = e.region.map(|r| format!(" ({r})")).unwrap_or_default();
        let _ = write!(
            svg,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}{}</text>\
             <line x1=\"{left}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"#ddd\"/>\
             <circle cx=\"{:.1}\" cy=\"{y}\" r=\"6\" fill=\"{}\"><title>{} {}</title></circle>\
             <text x=\"{:.1}\" y=\"{}\" text-anchor=\"{}\">+{:.2} s</text>",
            left - 8.0,
            y + 4.0,
            esc(label(e.kind)),
            esc(&region),
            w - right,
            x(t),
            colour(e.kind),
            esc(&e.at),
            esc(&e.detail),
            // Near the right end the offset goes left of its marker.
            if x(t) > w - right - 70.0 {
                x(t) - 9.0
            } else {
                x(t) + 9.0
            },
            y + 4.0,
            if x(t) > w - right - 70.0 {
                "end"
            } else {
                "start"
            },
            offset(start, t)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// The report as one self-contained HTML page.
pub fn html(r: &Report) -> String {
    let title = format!(
        "Recovery report, version {}: {} → {}",
        r.version, r.from, r.to
    );
    let mut rows = String::new();
    for e in &r.events {
        let region = e.region.map(|r| r.as_str()).unwrap_or("");
        let _ = write!(
            rows,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&e.at),
            esc(label(e.kind)),
            esc(region),
            esc(&e.detail)
        );
    }
    let rto = r.rto.as_ref().map_or_else(
        || "none: clients did not move, or were not seen served".to_string(),
        |rto| format!("<b>{}</b>, {}", seconds(rto.ms), esc(&rto.what)),
    );
    let rpo = r.rpo.as_ref().map_or_else(
        || "not measured for this move".to_string(),
        |p| esc(&p.what),
    );
    let notes: String = r
        .notes
        .iter()
        .map(|n| format!("<li>{}</li>", esc(n)))
        .collect();
    let drill = r
        .drill
        .as_deref()
        .map(|d| format!("<tr><th>drill</th><td>{}</td></tr>", esc(d)))
        .unwrap_or_default();
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title><style>body{{font-family:sans-serif;margin:2em;color:#222}}\
         table{{border-collapse:collapse}}td,th{{padding:2px 10px;text-align:left;\
         border-bottom:1px solid #eee;vertical-align:top}}</style></head><body>\
         <h1>{t}</h1><table>\
         <tr><th>trigger</th><td>{trigger}</td></tr><tr><th>by</th><td>{by}</td></tr>\
         <tr><th>reason</th><td>{reason}</td></tr>{drill}\
         <tr><th>RTO</th><td>{rto}</td></tr><tr><th>RPO</th><td>{rpo}</td></tr>\
         <tr><th>complete</th><td>{complete}</td></tr></table>\
         <h2>Timeline</h2>{svg}<h2>Events</h2><table><tr><th>at</th><th>what</th>\
         <th>region</th><th>detail</th></tr>{rows}</table>\
         <h2>Notes</h2><ul>{notes}</ul></body></html>\n",
        t = esc(&title),
        trigger = esc(r.trigger.as_str()),
        by = esc(&r.by),
        reason = esc(&r.reason),
        complete = if r.complete {
            "yes"
        } else {
            "no: still being observed"
        },
        svg = timeline(r),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use failover_core::model::{AppState, Role, Trigger};
    use failover_core::overrides::parse;

    fn report() -> Report {
        let mut r = Report::new(
            3,
            AppState::Active,
            AppState::Failover,
            Trigger::Auto,
            "m-a",
        );
        r.reason = "primary down <script>alert(1)</script>".into();
        let t = |s: &str| parse(s).unwrap();
        r.add(
            EventKind::FirstFailedProbe,
            t("2026-01-01T00:00:00Z"),
            Some(Role::Primary),
            "api & co",
        );
        r.add(
            EventKind::Committed,
            t("2026-01-01T00:00:04Z"),
            Some(Role::Secondary),
            "",
        );
        r.add(
            EventKind::StateApiAnswered,
            t("2026-01-01T00:00:05Z"),
            Some(Role::Secondary),
            "failover",
        );
        r.add(
            EventKind::ClientWrite,
            t("2026-01-01T00:00:06Z"),
            Some(Role::Secondary),
            "",
        );
        r.note("no [route53] record");
        r.complete = true;
        r
    }

    #[test]
    fn the_page_is_self_contained_and_escapes_every_text() {
        let page = html(&report());
        assert!(page.starts_with("<!doctype html>"));
        assert!(page.contains("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert!(page.contains("RTO 6.0 s"), "the recovery bar is drawn");
        assert!(page.contains("&lt;script&gt;") && !page.contains("<script"));
        assert!(page.contains("api &amp; co"));
        for external in ["src=", "href=", "@import", "url("] {
            assert!(!page.contains(external), "{external} in the page");
        }
        assert_eq!(page.matches("<circle").count(), 4);
    }

    #[test]
    fn the_text_lists_the_timeline_with_offsets() {
        let t = text(&report());
        assert!(
            t.starts_with("version 3: active -> failover (auto) by m-a"),
            "{t}"
        );
        assert!(t.contains("+  6.000s  client write [secondary]"), "{t}");
        assert!(t.contains("RTO 6.0 s: from first_failed_probe"), "{t}");
        assert!(t.contains("note: no [route53] record"), "{t}");
    }
}
