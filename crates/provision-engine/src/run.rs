//! Apply and destroy. `apply` plans, refuses to go on when any resource is
//! foreign, then converges in order, looks again at what was undecided once the
//! resources before it are in place, and stops at the first failure, naming the
//! resource; `destroy` deletes in reverse order only what is the stack's own. Each
//! step is reported through [`Progress`].

use anyhow::{Result, bail};
use tokio::time::Instant;

use crate::facts::{Fact, Facts};
use crate::plan::{Action, Plan, plan};
use crate::resource::Resource;

/// What the engine needs of the context the steps share.
pub trait Context: Sync {
    /// What earlier steps learned.
    fn facts(&self) -> &Facts;
    /// What marks a resource as this stack's, as a refusal names it
    /// (`tag failover-monitor:stack=photos`).
    fn mark(&self) -> String;
}

/// Where apply and destroy report each step, as it ends.
pub trait Progress<C> {
    /// A step: `verb` (create, update, check, delete, skip), how it ended
    /// (`outcome`, `detail`) and how long it took.
    fn step(
        &self,
        resource: &Resource<C>,
        verb: &str,
        outcome: &str,
        detail: Option<&str>,
        ms: u128,
    );
}

/// The outcome of an apply or destroy.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub created: usize,
    pub updated: usize,
    pub deleted: usize,
    pub unchanged: usize,
}

fn refuse_foreign<C: Context>(context: &C, plan: &Plan<C>) -> Result<()> {
    let refused = plan.refusals();
    if refused.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = refused
        .iter()
        .map(|(r, why)| format!("{r} ({why})"))
        .collect();
    bail!(
        "refusing to touch resources this stack did not create ({} missing): {}; \
         rename the project or remove them by hand",
        context.mark(),
        list.join(", ")
    )
}

/// A resource the plan could not decide on, looked at again now that the resources
/// before it are in place.
async fn decide<C>(context: &C, r: &Resource<C>) -> Result<Action> {
    match Action::of(r.observe(context).await?, false) {
        Action::Unknown(why) => {
            bail!("cannot tell whether {r} is up to date: {why} (it comes earlier in the stack)")
        }
        Action::Refuse(why) => bail!("{r} is no longer this stack's: {why}"),
        action => Ok(action),
    }
}

/// Converges every resource, in order; stops at the first failure, naming it.
pub async fn apply<C: Context>(
    context: &C,
    resources: Vec<Resource<C>>,
    progress: &impl Progress<C>,
) -> Result<Summary> {
    let plan = plan(context, resources, false).await?;
    refuse_foreign(context, &plan)?;
    let mut summary = Summary::default();
    for step in &plan.steps {
        let r = &step.resource;
        let action = match &step.action {
            Action::Unknown(_) => decide(context, r).await?,
            action => action.clone(),
        };
        let (verb, done, exists) = match action {
            Action::Create => ("create", "created", false),
            Action::Update(_) => ("update", "updated", true),
            _ => {
                // Up to date: its facts are known from the observation.
                summary.unchanged += 1;
                progress.step(r, "check", "up to date", None, 0);
                continue;
            }
        };
        let t = Instant::now();
        let result = r.kind.converge(context, r.place(), exists).await;
        let ms = t.elapsed().as_millis();
        if let Err(e) = result {
            progress.step(r, verb, "failed", Some(&format!("{e:#}")), ms);
            return Err(e.context(format!(
                "{verb} {r} failed; the resources before it are in place, re-run apply to continue"
            )));
        }
        let note = context.facts().find(&Fact::note(r.to_string()));
        progress.step(r, verb, done, note.as_deref(), ms);
        if exists {
            summary.updated += 1;
        } else {
            summary.created += 1;
        }
    }
    Ok(summary)
}

/// Deletes everything the stack created, last created first; leaves what is not ours.
pub async fn destroy<C: Context>(
    context: &C,
    resources: Vec<Resource<C>>,
    progress: &impl Progress<C>,
) -> Result<Summary> {
    let plan = plan(context, resources, true).await?;
    let mut summary = Summary::default();
    for step in plan.steps.iter().rev() {
        let r = &step.resource;
        match &step.action {
            Action::Delete => {
                let t = Instant::now();
                let result = r.kind.delete(context, r.place()).await;
                let ms = t.elapsed().as_millis();
                if let Err(e) = result {
                    progress.step(r, "delete", "failed", Some(&format!("{e:#}")), ms);
                    return Err(e.context(format!("delete {r} failed; re-run destroy to continue")));
                }
                progress.step(r, "delete", r.kind.deleted(), None, ms);
                summary.deleted += 1;
            }
            Action::Refuse(why) => progress.step(r, "skip", "left alone", Some(why), 0),
            _ => summary.unchanged += 1,
        }
    }
    Ok(summary)
}
