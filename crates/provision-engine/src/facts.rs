//! What earlier steps learned that later ones need (ARNs, generated ids), kept by
//! key: the resource a fact comes from and what the fact is. A fact no step has
//! learned is [`Unknown`], never an empty string: what depends on it is undecided,
//! not different (see [`crate::Drift`]).

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

/// A fact that no step has learned yet, because the resource it comes from does not
/// exist (yet): `unknown until iam-role photos-config-api exists`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown until {0} exists")]
pub struct Unknown(pub String);

/// The key of one fact: the resource it comes from, as [`Unknown`] names it
/// (`iam-role photos-web`), and what it is (`arn`, `id`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Fact {
    pub from: String,
    pub what: &'static str,
}

/// What a [`Fact::note`] is: something the endpoint accepted without doing.
pub const NOTE: &str = "note";

impl Fact {
    pub fn new(from: impl Into<String>, what: &'static str) -> Self {
        Fact {
            from: from.into(),
            what,
        }
    }

    /// What the endpoint accepted without doing for the resource whose
    /// [`label`](crate::label) is `label`; apply prints it beside the step.
    pub fn note(label: impl Into<String>) -> Self {
        Fact::new(label, NOTE)
    }
}

/// The facts learned so far. Shared by the steps of one run; each update is one
/// insert.
#[derive(Debug, Default)]
pub struct Facts {
    known: Mutex<BTreeMap<Fact, String>>,
}

impl Facts {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<Fact, String>> {
        // A panic while holding the lock cannot leave the facts half-written (each
        // update is one insert), so a poisoned lock is still good to read.
        self.known.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn learn(&self, fact: Fact, value: impl Into<String>) {
        self.lock().insert(fact, value.into());
    }

    /// The fact, or [`Unknown`] naming the resource it comes from.
    pub fn get(&self, fact: &Fact) -> anyhow::Result<String> {
        self.find(fact)
            .ok_or_else(|| Unknown(fact.from.clone()).into())
    }

    /// The fact, when some step learned it.
    pub fn find(&self, fact: &Fact) -> Option<String> {
        self.lock().get(fact).cloned()
    }

    /// Every learned fact called `what`, by the resource it comes from.
    pub fn all(&self, what: &str) -> BTreeMap<String, String> {
        self.lock()
            .iter()
            .filter(|(k, _)| k.what == what)
            .map(|(k, v)| (k.from.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fact_nobody_learned_is_unknown_and_names_its_resource() {
        let facts = Facts::default();
        let arn = Fact::new("iam-role photos-web", "arn");
        let err = facts.get(&arn).unwrap_err();
        assert_eq!(err.to_string(), "unknown until iam-role photos-web exists");
        assert!(err.downcast_ref::<Unknown>().is_some());

        facts.learn(arn.clone(), "arn:aws:iam::1:role/photos-web");
        facts.learn(Fact::new("iam-role photos-web", "id"), "AROA1");
        facts.learn(Fact::new("iam-role photos-replica", "arn"), "arn:r");
        assert_eq!(facts.get(&arn).unwrap(), "arn:aws:iam::1:role/photos-web");
        assert_eq!(
            facts.all("arn").into_iter().collect::<Vec<_>>(),
            vec![
                ("iam-role photos-replica".to_string(), "arn:r".to_string()),
                (
                    "iam-role photos-web".to_string(),
                    "arn:aws:iam::1:role/photos-web".to_string()
                ),
            ]
        );
    }
}
