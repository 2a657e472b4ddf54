//! The engine: every resource is first *observed* ([`Observed`]); the observations
//! make the [`Plan`]; `apply` walks the plan in order and stops at the first
//! failure, naming the resource; `destroy` walks it backwards and deletes only what
//! carries this stack's tag. What the engine needs of each kind of resource is the
//! [`Kind`] trait, implemented once per kind beside its service's code.

use std::future::Future;
use std::pin::Pin;

use anyhow::{Result, bail};
use serde::Serialize;
use tokio::time::Instant;

use super::context::{Cx, Unknown};
use super::report::Reporter;
use super::sdk::STACK_TAG;
use super::stack::Resource;
use failover_core::model::Role;

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

/// Where a resource is: its region (the primary's clients for global services) and
/// its name.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub role: Role,
    pub name: &'a str,
}

/// A step's future (boxed, so that [`Kind`] can be used as `dyn Kind`).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// One kind of resource, as the engine sees it. Each kind implements it in its
/// service's file; `Spec::kind` is the only place that dispatches on the kind.
pub trait Kind: Send + Sync {
    /// The kind's name in plans and progress lines (`iam-role`, `rest-api`, ...).
    fn name(&self) -> &'static str;
    /// What is there now; learns the facts later resources need.
    fn observe<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, Observed>;
    /// Creates the resource (`exists == false`) or brings it back to its description.
    fn converge<'a>(&'a self, cx: &'a Cx, at: At<'a>, exists: bool) -> Pending<'a, ()>;
    /// Deletes it (nothing to do when it is already gone).
    fn delete<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, ()>;
    /// What destroy reports once it is gone: some resources go with another one.
    fn deleted(&self) -> &'static str {
        "deleted"
    }
}

impl Resource {
    fn at(&self) -> At<'_> {
        At {
            role: self.region.unwrap_or(Role::Primary),
            name: &self.name,
        }
    }

    async fn observe(&self, cx: &Cx) -> Result<Observed> {
        use anyhow::Context;
        let kind = self.spec.kind();
        kind.observe(cx, self.at())
            .await
            .with_context(|| format!("reading {self}"))
    }
}

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
    fn of(seen: Observed, destroy: bool) -> Action {
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
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    #[serde(flatten)]
    pub resource: Resource,
    #[serde(flatten)]
    pub action: Action,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub steps: Vec<Step>,
}

impl Plan {
    pub fn changes(&self) -> usize {
        self.count(Action::changes)
    }
    pub fn unknown(&self) -> usize {
        self.count(|a| matches!(a, Action::Unknown(_)))
    }
    fn count(&self, f: impl Fn(&Action) -> bool) -> usize {
        self.steps.iter().filter(|s| f(&s.action)).count()
    }
    pub fn refusals(&self) -> Vec<(&Resource, &str)> {
        self.steps
            .iter()
            .filter_map(|s| match &s.action {
                Action::Refuse(why) => Some((&s.resource, why.as_str())),
                _ => None,
            })
            .collect()
    }
}

/// Observes every resource and decides what `apply` (or `destroy`) would do.
pub async fn plan(cx: &Cx, destroy: bool) -> Result<Plan> {
    let mut steps = Vec::new();
    for resource in cx.stack.resources() {
        let action = Action::of(resource.observe(cx).await?, destroy);
        steps.push(Step { resource, action });
    }
    Ok(Plan { steps })
}

/// The outcome of an apply or destroy.
#[derive(Debug, Default, Serialize)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

fn refuse_foreign(cx: &Cx, plan: &Plan) -> Result<()> {
    let refused = plan.refusals();
    if refused.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = refused
        .iter()
        .map(|(r, why)| format!("{r} ({why})"))
        .collect();
    bail!(
        "refusing to touch resources this stack did not create (tag {}={} missing): {}; \
         rename the project or remove them by hand",
        STACK_TAG,
        cx.stack.project,
        list.join(", ")
    )
}

/// A resource the plan could not decide on, looked at again now that the resources
/// before it are in place.
async fn decide(cx: &Cx, r: &Resource) -> Result<Action> {
    match Action::of(r.observe(cx).await?, false) {
        Action::Unknown(why) => {
            bail!("cannot tell whether {r} is up to date: {why} (it comes earlier in the stack)")
        }
        Action::Refuse(why) => bail!("{r} is no longer this stack's: {why}"),
        action => Ok(action),
    }
}

/// Converges every resource, in order; stops at the first failure, naming it.
pub async fn apply(cx: &Cx, rep: &Reporter) -> Result<Summary> {
    let plan = plan(cx, false).await?;
    refuse_foreign(cx, &plan)?;
    let mut sum = Summary::default();
    for step in &plan.steps {
        let r = &step.resource;
        let action = match &step.action {
            Action::Unknown(_) => decide(cx, r).await?,
            action => action.clone(),
        };
        let (verb, done, exists) = match action {
            Action::Create => ("create", "created", false),
            Action::Update(_) => ("update", "updated", true),
            _ => {
                // Up to date: its facts are known from the observation.
                sum.unchanged += 1;
                rep.line(r, "check", "up to date", None, 0);
                continue;
            }
        };
        let t = Instant::now();
        let result = r.spec.kind().converge(cx, r.at(), exists).await;
        let ms = t.elapsed().as_millis();
        if let Err(e) = result {
            rep.line(r, verb, "failed", Some(&format!("{e:#}")), ms);
            return Err(e.context(format!(
                "{verb} {r} failed; the resources before it are in place, re-run apply to continue"
            )));
        }
        let note = cx.facts().notes.get(&r.to_string()).cloned();
        rep.line(r, verb, done, note.as_deref(), ms);
        if exists {
            sum.updated += 1;
        } else {
            sum.created += 1;
        }
    }
    Ok(sum)
}

/// Deletes everything the stack created, last created first; leaves what is not ours.
pub async fn destroy(cx: &Cx, rep: &Reporter) -> Result<Summary> {
    let plan = plan(cx, true).await?;
    let mut sum = Summary::default();
    for step in plan.steps.iter().rev() {
        let r = &step.resource;
        match &step.action {
            Action::Delete => {
                let t = Instant::now();
                let kind = r.spec.kind();
                let result = kind.delete(cx, r.at()).await;
                let ms = t.elapsed().as_millis();
                if let Err(e) = result {
                    rep.line(r, "delete", "failed", Some(&format!("{e:#}")), ms);
                    return Err(e.context(format!("delete {r} failed; re-run destroy to continue")));
                }
                rep.line(r, "delete", kind.deleted(), None, ms);
                sum.deleted += 1;
            }
            Action::Refuse(why) => rep.line(r, "skip", "left alone", Some(why), 0),
            _ => sum.unchanged += 1,
        }
    }
    Ok(sum)
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
