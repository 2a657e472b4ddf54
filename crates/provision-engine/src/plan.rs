//! The plan: every resource is first observed ([`Observed`]), and the observation
//! gives the verdict on it ([`Action`]): what `apply` (or `destroy`) would do.

use anyhow::Result;
use serde::Serialize;

use crate::observed::Observed;
use crate::resource::Resource;

/// The plan's verdict for one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", content = "detail", rename_all = "lowercase")]
pub enum Action {
    Create,
    Update(Vec<String>),
    Keep,
    Delete,
    /// Nothing to delete.
    Absent,
    Refuse(String),
    /// Ours, but whether it needs an update is known only once the resources before
    /// it exist (`unknown until ... exists`).
    Unknown(String),
}

impl Action {
    /// What apply (or destroy, with `destroy`) does with what was observed.
    pub fn of(seen: Observed, destroy: bool) -> Action {
        match (seen, destroy) {
            (Observed::Foreign(why), _) => Action::Refuse(why),
            (Observed::Absent, false) => Action::Create,
            (Observed::Absent, true) => Action::Absent,
            (Observed::Present { drift }, false) if drift.is_empty() => Action::Keep,
            (Observed::Present { drift }, false) => Action::Update(drift),
            (Observed::Undecided(why), false) => Action::Unknown(why),
            (Observed::Present { .. } | Observed::Undecided(_), true) => Action::Delete,
        }
    }

    pub fn changes(&self) -> bool {
        matches!(self, Action::Create | Action::Update(_) | Action::Delete)
    }
}

/// One line of a plan.
#[derive(Debug)]
pub struct Step<C> {
    pub resource: Resource<C>,
    pub action: Action,
}

#[derive(Debug)]
pub struct Plan<C> {
    pub steps: Vec<Step<C>>,
}

impl<C> Plan<C> {
    pub fn changes(&self) -> usize {
        self.count(Action::changes)
    }
    pub fn unknown(&self) -> usize {
        self.count(|a| matches!(a, Action::Unknown(_)))
    }
    fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.steps.iter().filter(|s| f(&s.action)).count()
    }
    pub fn refusals(&self) -> Vec<(&Resource<C>, &str)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Refuse(why) => Some((&s.resource, why.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// Observes every resource, in order, and decides what `apply` (or `destroy`)
/// would do with it.
pub async fn plan<C>(context: &C, resources: Vec<Resource<C>>, destroy: bool) -> Result<Plan<C>> {
    let mut steps = Vec::new();
    for resource in resources {
        let action = Action::of(resource.observe(context).await?, destroy);
        steps.push(Step { resource, action });
    }
    Ok(Plan { steps })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecided_resources_are_planned_as_unknown_and_destroyed_as_ours() {
        let why = "unknown until iam-role r exists".to_string();
        assert_eq!(
            Action::of(Observed::Undecided(why.clone()), false),
            Action::Unknown(why.clone())
        );
        assert!(!Action::Unknown(why.clone()).changes());
        assert_eq!(Action::of(Observed::Undecided(why), true), Action::Delete);
        assert_eq!(
            Action::of(Observed::Foreign("f".into()), true),
            Action::Refuse("f".into())
        );
    }
}
