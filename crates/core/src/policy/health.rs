//! Per-probe hysteresis: a probe is only called down after `fall` consecutive failures
//! and up again after `rise` consecutive successes.

use serde::Serialize;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// Not enough results yet to say (neither `rise` successes nor `fall` failures).
    Unknown,
    Up,
    Down,
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
    pub fn observe(&mut self, ok: bool, now: Instant) -> Option<Health> {
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
        results.chars().map(|c| h.observe(c == '+', now)).collect()
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

    #[tokio::test(start_paused = true)]
    async fn since_records_when_the_health_changed() {
        let mut h = ProbeHealth::new(2, 1);
        let t0 = Instant::now();
        h.observe(true, t0);
        assert_eq!(h.since(), Some(t0));
        tokio::time::advance(std::time::Duration::from_secs(5)).await;
        let t1 = Instant::now();
        h.observe(false, t1);
        assert_eq!(h.since(), Some(t0), "one failure is not a flip");
        h.observe(false, t1);
        assert_eq!(h.since(), Some(t1));
    }
}
