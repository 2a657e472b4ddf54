//! Two watchers for the recovery report, each a task that reports back as messages:
//!
//! - [`watch_clients`]: after a transition, reads both regions' state APIs as a
//!   client does until each answers the new state, and tries the client-path write
//!   in the region that serves now, until it reads back or `observe_for` ends;
//! - [`rpo_canary`]: the acting instance writes the RPO canary (its wall-clock time
//!   of writing) in the primary every `canary_every`, and every instance reads it in
//!   both regions: the newest written against the newest the secondary has is the
//!   replication lag the report states at a decision.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::action::CanaryPair;
use crate::client_path::ClientPath;
use crate::clock::WallClock;
use crate::gate::Gate;
use failover_core::model::{AppState, Role};
use failover_core::report::EventKind;

/// What to watch after the commit of `version` (to `to`).
#[derive(Debug, Clone)]
pub struct Watch {
    pub version: u64,
    pub to: AppState,
    /// The region that serves clients now.
    pub serving: Role,
    /// The client-path write's comment id (one per instance: it is overwritten).
    pub comment_id: String,
    pub every: Duration,
    pub until: Instant,
}

/// What the watcher saw.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    Event {
        version: u64,
        kind: EventKind,
        region: Role,
        at: SystemTime,
        detail: String,
    },
    /// The watch is over; what could not be seen, in words.
    Over { version: u64, notes: Vec<String> },
}

/// Watches the client path after the commit of `w.version`; see the module docs.
pub async fn watch_clients(
    path: Arc<dyn ClientPath>,
    clock: Arc<dyn WallClock>,
    w: Watch,
    tx: mpsc::Sender<Seen>,
) {
    let mut answered = [false; 2];
    let mut last = [String::new(), String::new()];
    let mut wrote = !path.writes(w.serving);
    let mut write_error = String::new();
    let nonce = format!("{}-{}", w.comment_id, w.version);
    loop {
        for r in Role::BOTH.into_iter().filter(|r| path.reads(*r)) {
            if answered[r as usize] {
                continue;
            }
            match path.state(r).await {
                Ok(s) if s.state == w.to && s.version.is_none_or(|v| v >= w.version) => {
                    answered[r as usize] = true;
                    let detail = match s.version {
                        Some(v) => format!("{} (version {v})", s.state),
                        None => s.state.to_string(),
                    };
                    send(&tx, &w, EventKind::StateApiAnswered, r, clock.now(), detail).await;
                }
                Ok(s) => last[r as usize] = format!("it still answered {}", s.state),
                Err(e) => last[r as usize] = e,
            }
        }
        let readable = Role::BOTH.into_iter().filter(|r| path.reads(*r));
        let served = answered.iter().any(|a| *a) || readable.clone().next().is_none();
        if !wrote && served {
            match path.write(w.serving, &w.comment_id, &nonce).await {
                Ok(()) => {
                    wrote = true;
                    let detail = format!("comment {} read back", w.comment_id);
                    send(
                        &tx,
                        &w,
                        EventKind::ClientWrite,
                        w.serving,
                        clock.now(),
                        detail,
                    )
                    .await;
                }
                Err(e) => write_error = e,
            }
        }
        let all_read = readable.clone().all(|r| answered[r as usize]);
        if (all_read && wrote) || Instant::now() >= w.until {
            break;
        }
        tokio::time::sleep(w.every).await;
    }
    let notes = notes(path.as_ref(), &w, answered, &last, wrote, &write_error);
    let _ = tx
        .send(Seen::Over {
            version: w.version,
            notes,
        })
        .await;
}

async fn send(
    tx: &mpsc::Sender<Seen>,
    w: &Watch,
    kind: EventKind,
    region: Role,
    at: SystemTime,
    detail: String,
) {
    let _ = tx
        .send(Seen::Event {
            version: w.version,
            kind,
            region,
            at,
            detail,
        })
        .await;
}

/// What the watch could not see, in words.
fn notes(
    path: &dyn ClientPath,
    w: &Watch,
    answered: [bool; 2],
    last: &[String; 2],
    wrote: bool,
    write_error: &str,
) -> Vec<String> {
    let mut notes = Vec::new();
    for r in Role::BOTH {
        if !path.reads(r) {
            notes.push(format!("no {r} state API is configured: not watched"));
        } else if !answered[r as usize] {
            notes.push(format!(
                "the {r} state API did not answer {} while watched: {}",
                w.to, last[r as usize]
            ));
        }
    }
    if !path.writes(w.serving) {
        notes.push(format!(
            "no {} store API is configured: no client-path write measured",
            w.serving
        ));
    } else if !wrote {
        notes.push(format!(
            "the client-path write in the {} never read back while watched: {write_error}",
            w.serving
        ));
    }
    notes
}

/// One reading of the RPO canary: when the newest canary the primary holds was
/// written, and the same for the secondary's copy (None: none, or unreadable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RpoSample {
    pub written: Option<SystemTime>,
    pub seen: Option<SystemTime>,
}

impl RpoSample {
    /// Keeps the newest of both (a region that cannot be read keeps what it had).
    pub fn merge(&mut self, other: RpoSample) {
        self.written = self.written.max(other.written);
        self.seen = self.seen.max(other.seen);
    }
}

/// The canary's value: the wall-clock time of its writing, in ms since the epoch.
pub fn canary_value(at: SystemTime) -> String {
    let ms = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    format!("{ms}")
}

/// When a canary value was written.
pub fn canary_time(value: &str) -> Option<SystemTime> {
    let digits: String = value.chars().take_while(char::is_ascii_digit).collect();
    let ms: u64 = digits.parse().ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_millis(ms))
}

/// Writes (while `acts`) and reads the RPO canary every `every`, until `tx` closes.
pub async fn rpo_canary(
    pair: CanaryPair,
    clock: Arc<dyn WallClock>,
    every: Duration,
    acts: watch::Receiver<bool>,
    tx: mpsc::Sender<RpoSample>,
    gate: Gate,
) {
    loop {
        gate.pass().await;
        if *acts.borrow() {
            let _ = pair.primary.put(&canary_value(clock.now())).await;
        }
        let (p, s) = tokio::join!(pair.primary.read(), pair.secondary.read());
        let time = |r: Result<Option<String>, _>| r.ok().flatten().as_deref().and_then(canary_time);
        let sample = RpoSample {
            written: time(p),
            seen: time(s),
        };
        gate.pass().await;
        if tx.send(sample).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canary_carries_the_time_it_was_written() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        assert_eq!(canary_value(at), "1800000000123");
        assert_eq!(canary_time(&canary_value(at)), Some(at));
        assert_eq!(canary_time("nonce-from-elsewhere"), None);
        let mut s = RpoSample::default();
        s.merge(RpoSample {
            written: Some(at),
            seen: None,
        });
        s.merge(RpoSample {
            written: None,
            seen: Some(at),
        });
        assert_eq!(
            s,
            RpoSample {
                written: Some(at),
                seen: Some(at)
            }
        );
    }
}
