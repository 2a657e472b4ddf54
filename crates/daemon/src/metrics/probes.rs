//! The per-probe series: `probe_success`, `probe_up`, `probe_inconclusive` and the
//! `probe_duration_seconds` histogram. One row of atomics per probe, its labels
//! encoded once; `/metrics` writes the rows straight into the text format, so the
//! cost of a scrape is a copy per line, not a registry walk.
//!
//! The decision loop writes (one writer); the admin server reads.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use failover_core::model::Role;
use failover_core::policy::Health;

/// Bounds of the probe duration histogram (seconds). What reads it is the
/// dashboard's p50 and p99 per probe (`deploy/grafana`); no alert does. Below 10 ms
/// every kind is healthy and near; 50 to 500 ms is where calls to another region's
/// API Gateway, S3 and DynamoDB land and where a degradation shows first; 1 and
/// 2.5 s catch runs at the default timeout (1 s) and the longer ones. Slower runs
/// are timeouts of long-timeout probes, which `probe_success` already shows.
pub const DURATION_BUCKETS: &[f64] = &[0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];
const BUCKETS: usize = 7;
const LE: [&str; BUCKETS] = ["0.01", "0.05", "0.1", "0.25", "0.5", "1", "2.5"];

/// A gauge not exported (yet, or any more).
const ABSENT: u8 = 2;

struct Row {
    /// `probe="…",region="…"`
    labels: Box<str>,
    kind: &'static str,
    success: AtomicU8,
    up: AtomicU8,
    inconclusive: AtomicU8,
    /// Runs per bucket (not cumulative), the last one above every bound.
    buckets: [AtomicU64; BUCKETS + 1],
    sum_nanos: AtomicU64,
}

/// The series of the configured probes, in their order.
#[derive(Default)]
pub struct ProbeRows {
    rows: Box<[Row]>,
}

impl ProbeRows {
    /// Rows for `(name, region, kind)` in the order observations index them:
    /// `probe_success` 0 and an empty histogram each, health not exported yet.
    pub fn new<'a>(probes: impl IntoIterator<Item = (&'a str, Role, &'static str)>) -> Self {
        let rows = probes
            .into_iter()
            .map(|(name, region, kind)| {
                let mut labels = String::from("probe=\"");
                escape_into(&mut labels, name);
                labels.push_str("\",region=\"");
                labels.push_str(region.as_str());
                labels.push('"');
                Row {
                    labels: labels.into_boxed_str(),
                    kind,
                    success: AtomicU8::new(0),
                    up: AtomicU8::new(ABSENT),
                    inconclusive: AtomicU8::new(ABSENT),
                    buckets: Default::default(),
                    sum_nanos: AtomicU64::new(0),
                }
            })
            .collect();
        Self { rows }
    }

    /// One run's result.
    pub fn observe(&self, probe: usize, ok: bool, latency: Duration) {
        let Some(row) = self.rows.get(probe) else {
            return;
        };
        row.success.store(u8::from(ok), Relaxed);
        let secs = latency.as_secs_f64();
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|b| secs <= *b)
            .unwrap_or(BUCKETS);
        row.buckets[bucket].fetch_add(1, Relaxed);
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        row.sum_nanos.fetch_add(nanos, Relaxed);
    }

    /// `probe_up` exists only while the probe is up or down (never 0 for "unknown"
    /// or "inconclusive"); `probe_inconclusive` says which probes judge nothing now.
    pub fn set_health(&self, probe: usize, health: Health) {
        let Some(row) = self.rows.get(probe) else {
            return;
        };
        match health {
            Health::Up | Health::Down => row.up.store(u8::from(health == Health::Up), Relaxed),
            Health::Inconclusive => row.up.store(ABSENT, Relaxed),
            Health::Unknown => {}
        }
        row.inconclusive
            .store(u8::from(health == Health::Inconclusive), Relaxed);
    }

    /// A rough size of the text, to allocate it once.
    pub fn text_len(&self) -> usize {
        self.rows
            .iter()
            .map(|r| 13 * (r.labels.len() + 70))
            .sum::<usize>()
            + 1024
    }

    /// Appends the four families in the text exposition format.
    pub fn render(&self, out: &mut String) {
        self.gauge(out, "probe_success", SUCCESS_HELP, |r| &r.success, true);
        self.gauge(out, "probe_up", UP_HELP, |r| &r.up, false);
        self.gauge(
            out,
            "probe_inconclusive",
            INCONCLUSIVE_HELP,
            |r| &r.inconclusive,
            false,
        );
        self.histogram(out);
    }

    fn gauge(
        &self,
        out: &mut String,
        name: &str,
        help: &str,
        value: impl Fn(&Row) -> &AtomicU8,
        with_kind: bool,
    ) {
        let mut header = false;
        for row in &self.rows {
            let v = value(row).load(Relaxed);
            if v == ABSENT {
                continue;
            }
            if !header {
                family_header(out, name, help, "gauge");
                header = true;
            }
            out.push_str(PREFIX);
            out.push_str(name);
            out.push('{');
            out.push_str(&row.labels);
            if with_kind {
                push_kind(out, row.kind);
            }
            out.push_str(if v == 1 { "} 1\n" } else { "} 0\n" });
        }
    }

    fn histogram(&self, out: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        let name = "probe_duration_seconds";
        family_header(out, name, DURATION_HELP, "histogram");
        let mut digits = itoa::Buffer::new();
        for row in &self.rows {
            let mut total = 0u64;
            for (i, le) in LE.iter().chain(["+Inf"].iter()).enumerate() {
                total += row.buckets[i].load(Relaxed);
                series(out, "_bucket", row);
                out.push_str(",le=\"");
                out.push_str(le);
                out.push_str("\"} ");
                out.push_str(digits.format(total));
                out.push('\n');
            }
            series(out, "_sum", row);
            out.push_str("} ");
            push_seconds(out, row.sum_nanos.load(Relaxed));
            out.push('\n');
            series(out, "_count", row);
            out.push_str("} ");
            out.push_str(digits.format(total));
            out.push('\n');
        }
    }
}

const PREFIX: &str = "failover_monitor_";
const SUCCESS_HELP: &str = "Whether the last run of the probe succeeded (1) or failed (0).";
const UP_HELP: &str = "The probe's health after fall/rise hysteresis: 1 up, 0 down.";
const INCONCLUSIVE_HELP: &str = "1 while the probe's last fall results were errors about the monitor (access denied, bad or expired credentials, throttled, a name that does not exist): it says nothing about the region, which it no longer judges.";
const DURATION_HELP: &str = "How long each probe run took.";

fn family_header(out: &mut String, name: &str, help: &str, kind: &str) {
    let _ = write!(
        out,
        "# HELP {PREFIX}{name} {help}\n# TYPE {PREFIX}{name} {kind}\n"
    );
}

/// `failover_monitor_probe_duration_seconds<suffix>{probe=…,region=…,kind=…`
fn series(out: &mut String, suffix: &str, row: &Row) {
    out.push_str("failover_monitor_probe_duration_seconds");
    out.push_str(suffix);
    out.push('{');
    out.push_str(&row.labels);
    push_kind(out, row.kind);
}

fn push_kind(out: &mut String, kind: &str) {
    out.push_str(",kind=\"");
    out.push_str(kind);
    out.push('"');
}

/// Nanoseconds as seconds with nine decimals, without going through floats.
fn push_seconds(out: &mut String, nanos: u64) {
    let mut digits = itoa::Buffer::new();
    out.push_str(digits.format(nanos / 1_000_000_000));
    let frac = nanos % 1_000_000_000;
    if frac == 0 {
        return;
    }
    out.push('.');
    let text = digits.format(frac);
    for _ in text.len()..9 {
        out.push('0');
    }
    out.push_str(text.trim_end_matches('0'));
}

/// A label value in the text format: backslash, double quote and newline escaped.
fn escape_into(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_written_exactly() {
        for (nanos, text) in [
            (0, "0"),
            (1, "0.000000001"),
            (12_500_000, "0.0125"),
            (3_000_000_000, "3"),
            (3_250_000_001, "3.250000001"),
        ] {
            let mut s = String::new();
            push_seconds(&mut s, nanos);
            assert_eq!(s, text);
        }
    }

    #[test]
    fn a_histogram_is_cumulative_and_its_count_is_its_last_bucket() {
        let rows = ProbeRows::new([("a\"b", Role::Primary, "http")]);
        rows.observe(0, true, Duration::from_millis(3));
        rows.observe(0, true, Duration::from_millis(70));
        rows.observe(0, false, Duration::from_secs(9));
        let mut text = String::new();
        rows.render(&mut text);
        let l = "probe=\"a\\\"b\",region=\"primary\",kind=\"http\"";
        for want in [
            format!("failover_monitor_probe_success{{{l}}} 0\n"),
            format!("failover_monitor_probe_duration_seconds_bucket{{{l},le=\"0.01\"}} 1\n"),
            format!("failover_monitor_probe_duration_seconds_bucket{{{l},le=\"0.05\"}} 1\n"),
            format!("failover_monitor_probe_duration_seconds_bucket{{{l},le=\"0.1\"}} 2\n"),
            format!("failover_monitor_probe_duration_seconds_bucket{{{l},le=\"2.5\"}} 2\n"),
            format!("failover_monitor_probe_duration_seconds_bucket{{{l},le=\"+Inf\"}} 3\n"),
            format!("failover_monitor_probe_duration_seconds_sum{{{l}}} 9.073\n"),
            format!("failover_monitor_probe_duration_seconds_count{{{l}}} 3\n"),
        ] {
            assert!(text.contains(&want), "{want} missing from\n{text}");
        }
        assert!(!text.contains("probe_up"), "no health yet:\n{text}");
    }

    #[test]
    fn up_is_absent_while_unknown_or_inconclusive() {
        let rows = ProbeRows::new([("p", Role::Secondary, "s3")]);
        let render = || {
            let mut t = String::new();
            rows.render(&mut t);
            t
        };
        rows.set_health(0, Health::Down);
        assert!(render().contains("probe_up{probe=\"p\",region=\"secondary\"} 0\n"));
        assert!(render().contains("probe_inconclusive{probe=\"p\",region=\"secondary\"} 0\n"));
        rows.set_health(0, Health::Inconclusive);
        assert!(!render().contains("probe_up{"));
        assert!(render().contains("probe_inconclusive{probe=\"p\",region=\"secondary\"} 1\n"));
        rows.set_health(0, Health::Up);
        assert!(render().contains("probe_up{probe=\"p\",region=\"secondary\"} 1\n"));
    }
}
