//! Per-probe hysteresis: a probe is only called down after `fall` consecutive failures
//! and up again after `rise` consecutive successes. A result that says something
//! about the monitor rather than the region (access denied, expired credentials, a
//! name that does not exist) is inconclusive: it breaks a streak and counts towards
//! neither; `fall` of them in a row make the probe inconclusive, neither up nor down.

use serde::Serialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not enough results yet to say (neither `rise` successes nor `fall` failures).
    Unknown,
    Up,
    Down,
    /// Its last `fall` results said something about the monitor (its permissions,
    /// credentials or configuration), nothing about the region.
    Inconclusive,
}

/// One result as the hysteresis takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The region answered as a healthy one does.
    Pass,
    /// Evidence about the region: it did not answer, or answered that it failed.
    Fail,
    /// Evidence about the monitor only.
    Inconclusive,
}

impl Check {
    /// The result of an observation.
    pub fn of(ok: bool, monitor_side: bool) -> Self {
        match (ok, monitor_side) {
            (true, _) => Check::Pass,
            (false, false) => Check::Fail,
            (false, true) => Check::Inconclusive,
        }
    }
}

/// The consecutive-result state machine of one probe.
///
/// Deliberately tiny and synchronous: `observe` is the only transition, and it says
/// whether the health flipped, so it is tested exhaustively without any runtime.
#[derive(Debug, Clone)]
pub struct ProbeHealth {
    fall: u32,
    rise: u32,
    health: Health,
    /// Consecutive results that disagree with `health` (or, while unknown, the current
    /// run of equal results), signed: > 0 successes, < 0 failures.
    streak: i64,
    /// Consecutive inconclusive results.
    inconclusive: u32,
    since: Option<Instant>,
}

impl ProbeHealth {
    pub fn new(fall: u32, rise: u32) -> Self {
        assert!(
            fall >= 1 && rise >= 1,
            "fall and rise are validated to be >= 1"
        );
        Self {
            fall,
            rise,
            health: Health::Unknown,
            streak: 0,
            inconclusive: 0,
            since: None,
        }
    }

    pub fn thresholds(&self) -> (u32, u32) {
        (self.fall, self.rise)
    }

    pub fn health(&self) -> Health {
        self.health
    }

    /// When the current health began (None while unknown).
    pub fn since(&self) -> Option<Instant> {
        self.since
    }

    /// Feeds one probe result; returns the new health when it changed.
    pub fn observe(&mut self, check: Check, now: Instant) -> Option<Health> {
        if check == Check::Inconclusive {
            self.streak = 0;
            self.inconclusive = self.inconclusive.saturating_add(1);
            if self.inconclusive < self.fall || self.health == Health::Inconclusive {
                return None;
            }
            self.health = Health::Inconclusive;
            self.since = Some(now);
            return Some(Health::Inconclusive);
        }
        self.inconclusive = 0;
        let ok = check == Check::Pass;
        self.streak = match (ok, self.streak) {
            (true, s) if s > 0 => s + 1,
            (true, _) => 1,
            (false, s) if s < 0 => s - 1,
            (false, _) => -1,
        };
        let next = if self.streak >= i64::from(self.rise) {
            Health::Up
        } else if -self.streak >= i64::from(self.fall) {
            Health::Down
        } else {
            return None;
        };
        if next == self.health {
            return None;
        }
        self.health = next;
        self.since = Some(now);
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(h: &mut ProbeHealth, results: &str) -> Vec<Option<Health>> {
        let now = Instant::now();
        results
            .chars()
            .map(|c| {
                let check = match c {
                    '+' => Check::Pass,
                    '-' => Check::Fail,
                    _ => Check::Inconclusive,
                };
                h.observe(check, now)
            })
            .collect()
    }

    #[test]
    fn starts_unknown_and_settles_after_rise_or_fall() {
        let mut h = ProbeHealth::new(3, 2);
        assert_eq!(feed(&mut h, "+"), [None]);
        assert_eq!(h.health(), Health::Unknown);
        assert_eq!(feed(&mut h, "+"), [Some(Health::Up)]);

        let mut h = ProbeHealth::new(3, 2);
        assert_eq!(feed(&mut h, "---"), [None, None, Some(Health::Down)]);
    }

    #[test]
    fn isolated_failures_never_flip_an_up_probe() {
        let mut h = ProbeHealth::new(3, 2);
        feed(&mut h, "++");
        // one failure in three, for a long time
        let flips: Vec<_> = feed(&mut h, &"+-+--+".repeat(100))
            .into_iter()
            .flatten()
            .collect();
        assert!(flips.is_empty(), "{flips:?}");
        assert_eq!(h.health(), Health::Up);
    }

    #[test]
    fn fall_consecutive_failures_flip_down_and_rise_successes_flip_back() {
        let mut h = ProbeHealth::new(3, 2);
        feed(&mut h, "++");
        assert_eq!(
            feed(&mut h, "--+---"),
            [None, None, None, None, None, Some(Health::Down)]
        );
        // a lone success while down does not bring it up
        assert_eq!(feed(&mut h, "+-+"), [None, None, None]);
        assert_eq!(feed(&mut h, "+"), [Some(Health::Up)]);
        // staying up reports nothing more
        assert_eq!(feed(&mut h, "+++"), [None, None, None]);
    }

    #[test]
    fn fall_one_and_rise_one_follow_every_result() {
        let mut h = ProbeHealth::new(1, 1);
        assert_eq!(
            feed(&mut h, "+-+-"),
            [
                Some(Health::Up),
                Some(Health::Down),
                Some(Health::Up),
                Some(Health::Down)
            ]
        );
    }

    #[test]
    fn results_about_the_monitor_count_towards_neither_rise_nor_fall() {
        let mut h = ProbeHealth::new(3, 2);
        feed(&mut h, "++");
        // failures broken up by inconclusive results never make a fall
        assert_eq!(feed(&mut h, "--?--?--"), [None; 8]);
        assert_eq!(h.health(), Health::Up);
        // `fall` inconclusive results in a row: neither up nor down
        assert_eq!(feed(&mut h, "??"), [None, None]);
        assert_eq!(feed(&mut h, "?"), [Some(Health::Inconclusive)]);
        assert_eq!(feed(&mut h, "???"), [None, None, None]);
        // from there, real evidence decides as from unknown
        assert_eq!(feed(&mut h, "---"), [None, None, Some(Health::Down)]);
        assert_eq!(
            feed(&mut h, "??"),
            [None, None],
            "down holds until fall of them"
        );
        assert_eq!(feed(&mut h, "?"), [Some(Health::Inconclusive)]);
        assert_eq!(feed(&mut h, "++"), [None, Some(Health::Up)]);
    }

    #[tokio::test(start_paused = true)]
    async fn since_records_when_the_health_changed() {
        let mut h = ProbeHealth::new(2, 1);
        let t0 = Instant::now();
        h.observe(Check::Pass, t0);
        assert_eq!(h.since(), Some(t0));
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        let t1 = Instant::now();
        h.observe(Check::Fail, t1);
        assert_eq!(h.since(), Some(t0), "one failure is not a flip");
        h.observe(Check::Fail, t1);
        assert_eq!(h.since(), Some(t1));
    }
}
