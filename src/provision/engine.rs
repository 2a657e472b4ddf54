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

use super::context::Cx;
use super::report::Reporter;
use super::sdk::STACK_TAG;
use super::stack::Resource;
use crate::model::Role;

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
}

impl Observed {
    pub fn ours() -> Self {
        Observed::Present { drift: Vec::new() }
    }
    pub fn drifted(drift: Vec<String>) -> Self {
        Observed::Present { drift }
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
            (Observed::Present { .. }, true) => Action::Delete,
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

/// Converges every resource, in order; stops at the first failure, naming it.
pub async fn apply(cx: &Cx, rep: &Reporter) -> Result<Summary> {
    let plan = plan(cx, false).await?;
    refuse_foreign(cx, &plan)?;
    let mut sum = Summary::default();
    for step in &plan.steps {
        let r = &step.resource;
        let (verb, done, exists) = match &step.action {
            Action::Create => ("create", "created", false),
            Action::Update(_) => ("update", "updated", true),
            _ => {
                // Up to date: its facts are known from the plan's observation.
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
