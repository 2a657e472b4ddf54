//! The randomized suites' runner: how many trials and which seed come from the
//! environment (`TRIALS`/`TRIAL_SEED`, `CHAOS_TRIALS`/`CHAOS_SEED`: tests/run.sh and
//! CI set them), every trial prints a line, and the run ends with
//! `<label> (seed S): N passed, M failed` and fails on any failure.

use std::str::FromStr;

/// One randomized suite.
pub struct Suite {
    /// The closing line's label (`trials`, `chaos`).
    pub label: &'static str,
    /// The word before each trial's number (`trial`, `chaos`).
    pub item: &'static str,
    /// The variable holding the number of trials, and the default.
    pub count: (&'static str, usize),
    /// The variable holding the seed, and the default.
    pub seed: (&'static str, u64),
}

impl Suite {
    /// Runs `trial(rng, i)` for i = 1..=count, all drawing from one generator seeded
    /// as configured: `Ok` describes a pass, `Err` a failure. A failed trial does not
    /// stop the run; the run fails at the end when any did.
    pub async fn run(
        self,
        mut trial: impl AsyncFnMut(&mut fastrand::Rng, usize) -> Result<String, String>,
    ) {
        let n: usize = env_number(self.count.0, self.count.1);
        let seed: u64 = env_number(self.seed.0, self.seed.1);
        let mut rng = fastrand::Rng::with_seed(seed);
        let (mut passed, mut failed) = (0, 0);
        for i in 1..=n {
            match trial(&mut rng, i).await {
                Ok(what) => {
                    passed += 1;
                    println!("{} {i}: ok: {what}", self.item);
                }
                Err(why) => {
                    failed += 1;
                    println!("{} {i}: FAILED: {why}", self.item);
                }
            }
        }
        let label = self.label;
        println!("{label} (seed {seed}): {passed} passed, {failed} failed");
        assert_eq!(failed, 0, "{failed} of {n} {label} failed");
    }
}

/// A number from the environment, or `default` when unset; a value that does not
/// parse is an error, not the default in disguise.
fn env_number<T: FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Err(_) => default,
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name} = {v:?}: not a number")),
    }
}

#[cfg(test)]
mod tests {
    use super::env_number;

    #[test]
    fn unset_numbers_take_the_default() {
        assert_eq!(
            env_number::<u64>("FM_SUPPORT_TEST_SURELY_UNSET_VARIABLE", 7),
            7
        );
    }
}
