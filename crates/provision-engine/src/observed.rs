//! What the engine learns when it looks at a resource: [`Observed`], and [`Drift`],
//! how a present resource differs from its description, gathered check by check.

use anyhow::Result;

use crate::facts::Unknown;

/// What is there now, as far as this stack is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    Absent,
    /// There, but not created by this stack: never adopted, changed or deleted.
    Foreign(String),
    /// There and ours; `drift` lists how it differs from the description.
    Present {
        drift: Vec<String>,
    },
    /// There and ours, with no difference found, but part of its description
    /// depends on a fact no step has learned yet (`unknown until ... exists`): apply
    /// looks again once the steps before it have run.
    Undecided(String),
}

impl Observed {
    pub fn ours() -> Self {
        Observed::Present { drift: Vec::new() }
    }
    pub fn drifted(drift: Vec<String>) -> Self {
        Observed::Present { drift }
    }
}

/// How a present resource differs from its description, gathered check by check.
/// A check whose wanted value depends on an [`Unknown`] fact is skipped and
/// remembered: a missing fact never reads as a difference.
#[derive(Debug, Default)]
pub struct Drift {
    differs: Vec<String>,
    unknown: Option<String>,
}

impl Drift {
    pub fn add(&mut self, difference: impl Into<String>) {
        self.differs.push(difference.into());
    }

    pub fn is_empty(&self) -> bool {
        self.differs.is_empty()
    }

    /// The wanted value, or `None` when it needs a fact that is not known yet
    /// (remembered); any other error is passed on.
    pub fn want<T>(&mut self, wanted: Result<T>) -> Result<Option<T>> {
        match wanted {
            Ok(v) => Ok(Some(v)),
            Err(e) => match e.downcast_ref::<Unknown>() {
                Some(u) => {
                    self.unknown.get_or_insert_with(|| u.to_string());
                    Ok(None)
                }
                None => Err(e),
            },
        }
    }

    /// Differences found decide; failing those, a skipped check leaves it undecided.
    pub fn finish(self) -> Observed {
        match (self.differs.is_empty(), self.unknown) {
            (false, _) => Observed::drifted(self.differs),
            (true, Some(why)) => Observed::Undecided(why),
            (true, None) => Observed::ours(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_fact_is_never_a_difference() {
        let mut d = Drift::default();
        let wanted: Result<String> = Err(Unknown("iam-role photos-config-api".into()).into());
        assert_eq!(d.want(wanted).unwrap(), None);
        assert_eq!(
            d.finish(),
            Observed::Undecided("unknown until iam-role photos-config-api exists".into())
        );

        // A real difference wins over a check that could not be made.
        let mut d = Drift::default();
        let wanted: Result<u8> = Err(Unknown("x".into()).into());
        assert_eq!(d.want(wanted).unwrap(), None);
        d.add("stream not enabled");
        assert_eq!(
            d.finish(),
            Observed::drifted(vec!["stream not enabled".into()])
        );

        // Other errors are errors, not unknowns.
        let mut d = Drift::default();
        let failed: Result<u8> = Err(anyhow::anyhow!("iam:GetRole failed"));
        assert!(d.want(failed).is_err());
        assert_eq!(d.finish(), Observed::ours());
    }
}
