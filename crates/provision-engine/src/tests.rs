//! The engine on an in-memory world: a kind of resource whose state is a number,
//! whose description may need another resource's fact, and that can be made to
//! fail. No cloud, no clock.

use std::collections::BTreeMap;
use std::sync::Mutex;

use anyhow::{Result, bail};
use serde::Serialize;

use crate::{Action, Summary, apply, destroy, plan};
use crate::{At, Context, Drift, Fact, Facts, Kind, Observed, Pending, Progress, Resource};
use failover_core::model::Role;

/// What is in the world under a name: ours at some version, or someone else's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Thing {
    Ours(u32),
    Foreign,
}

#[derive(Default)]
struct World {
    things: Mutex<BTreeMap<String, Thing>>,
    facts: Facts,
    /// Names whose converge fails.
    broken: Vec<&'static str>,
}

impl World {
    fn with(things: &[(&str, Thing)]) -> Self {
        let world = World::default();
        for (name, thing) in things {
            world.put(name, *thing);
        }
        world
    }
    fn get(&self, name: &str) -> Option<Thing> {
        self.things.lock().unwrap().get(name).copied()
    }
    fn put(&self, name: &str, thing: Thing) {
        self.things.lock().unwrap().insert(name.into(), thing);
    }
    fn all(&self) -> BTreeMap<String, Thing> {
        self.things.lock().unwrap().clone()
    }
}

impl Context for World {
    fn facts(&self) -> &Facts {
        &self.facts
    }
    fn mark(&self) -> String {
        "tag stack=test".into()
    }
}

/// Wants version `version`; with `needs`, the version it wants is the one the
/// resource called `needs` has (learned as a fact).
#[derive(Debug, Serialize)]
struct Counter {
    version: u32,
    needs: Option<&'static str>,
}

fn fact(name: &str) -> Fact {
    Fact::new(format!("counter {name}"), "version")
}

impl Counter {
    fn wanted(&self, world: &World) -> Result<u32> {
        match self.needs {
            Some(other) => Ok(world.facts.get(&fact(other))?.parse()?),
            None => Ok(self.version),
        }
    }
    fn learn(&self, world: &World, at: At<'_>, version: u32) {
        world.facts.learn(fact(at.name), version.to_string());
    }
}

impl Kind<World> for Counter {
    fn name(&self) -> &'static str {
        "counter"
    }
    fn observe<'a>(&'a self, world: &'a World, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(async move {
            let have = match world.get(at.name) {
                None => return Ok(Observed::Absent),
                Some(Thing::Foreign) => return Ok(Observed::Foreign("not ours".into())),
                Some(Thing::Ours(v)) => v,
            };
            self.learn(world, at, have);
            let mut drift = Drift::default();
            if let Some(want) = drift.want(self.wanted(world))?
                && want != have
            {
                drift.add(format!("version {have}, not {want}"));
            }
            Ok(drift.finish())
        })
    }
    fn converge<'a>(&'a self, world: &'a World, at: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(async move {
            if world.broken.contains(&at.name) {
                bail!("the endpoint said no");
            }
            let want = self.wanted(world)?;
            world.put(at.name, Thing::Ours(want));
            self.learn(world, at, want);
            Ok(())
        })
    }
    fn delete<'a>(&'a self, world: &'a World, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(async move {
            world.things.lock().unwrap().remove(at.name);
            Ok(())
        })
    }
}

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl Progress<World> for Lines {
    fn step(&self, r: &Resource<World>, verb: &str, outcome: &str, detail: Option<&str>, _: u128) {
        let d = detail.map(|d| format!(": {d}")).unwrap_or_default();
        self.0
            .lock()
            .unwrap()
            .push(format!("{verb} {r} {outcome}{d}"));
    }
}

impl Lines {
    fn take(&self) -> Vec<String> {
        std::mem::take(&mut self.0.lock().unwrap())
    }
}

/// `a` (version 1, primary), `b` (version 2, global), `c` (wants `a`'s version).
fn stack() -> Vec<Resource<World>> {
    let counter = |version, needs| Counter { version, needs };
    vec![
        Resource::at(Role::Primary, "a", counter(1, None)),
        Resource::global("b", counter(2, None)),
        Resource::at(Role::Secondary, "c", counter(0, Some("a"))),
    ]
}

#[tokio::test]
async fn apply_creates_in_order_and_a_second_apply_changes_nothing() {
    let world = World::default();
    let lines = Lines::default();
    let done = apply(&world, stack(), &lines).await.unwrap();
    assert_eq!(done.created, 3);
    assert_eq!(
        lines.take(),
        [
            "create counter a (primary) created",
            "create counter b (global) created",
            "create counter c (secondary) created",
        ]
    );
    assert_eq!(world.get("c"), Some(Thing::Ours(1)), "c took a's fact");

    let again = apply(&World::with(&[]), Vec::new(), &lines).await.unwrap();
    assert_eq!(again, Summary::default());
    let done = apply(&world, stack(), &lines).await.unwrap();
    assert_eq!((done.created, done.updated, done.unchanged), (0, 0, 3));
}

#[tokio::test]
async fn a_foreign_resource_stops_apply_before_anything_is_written() {
    let world = World::with(&[("b", Thing::Foreign)]);
    let err = apply(&world, stack(), &Lines::default()).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "refusing to touch resources this stack did not create (tag stack=test missing): \
         counter b (global) (not ours); rename the project or remove them by hand"
    );
    assert_eq!(world.all().len(), 1, "nothing was created");
}

#[tokio::test]
async fn apply_stops_at_the_first_failure_and_names_it() {
    let world = World {
        broken: vec!["b"],
        ..World::default()
    };
    let lines = Lines::default();
    let err = apply(&world, stack(), &lines).await.unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        "create counter b (global) failed; the resources before it are in place, re-run apply \
         to continue: the endpoint said no"
    );
    assert_eq!(
        lines.take()[1],
        "create counter b (global) failed: the endpoint said no"
    );
    assert_eq!(world.get("a"), Some(Thing::Ours(1)));
    assert_eq!(world.get("c"), None, "nothing after the failure");
}

#[tokio::test]
async fn an_undecided_resource_is_decided_once_the_facts_it_needs_exist() {
    // `c` is there, but `a`, whose version it needs, is not: undecided, not drift.
    let world = World::with(&[("c", Thing::Ours(7))]);
    let planned = plan(&world, stack(), false).await.unwrap();
    let actions: Vec<_> = planned.steps.iter().map(|s| s.action.clone()).collect();
    assert_eq!(
        actions,
        [
            Action::Create,
            Action::Create,
            Action::Unknown("unknown until counter a exists".into())
        ]
    );
    assert_eq!((planned.changes(), planned.unknown()), (2, 1));

    let lines = Lines::default();
    let done = apply(&world, stack(), &lines).await.unwrap();
    assert_eq!((done.created, done.updated), (2, 1));
    assert_eq!(lines.take()[2], "update counter c (secondary) updated");
    assert_eq!(world.get("c"), Some(Thing::Ours(1)));
}

#[tokio::test]
async fn destroy_deletes_last_first_and_leaves_what_is_not_ours() {
    let world = World::with(&[
        ("a", Thing::Ours(1)),
        ("b", Thing::Foreign),
        ("c", Thing::Ours(1)),
    ]);
    let lines = Lines::default();
    let done = destroy(&world, stack(), &lines).await.unwrap();
    assert_eq!((done.deleted, done.unchanged), (2, 0));
    assert_eq!(
        lines.take(),
        [
            "delete counter c (secondary) deleted",
            "skip counter b (global) left alone: not ours",
            "delete counter a (primary) deleted",
        ]
    );
    assert_eq!(
        world.all().into_iter().collect::<Vec<_>>(),
        [("b".to_string(), Thing::Foreign)]
    );
}

#[test]
fn a_plan_line_carries_the_kind_and_the_description() {
    let r = &stack()[2];
    assert_eq!(r.to_string(), "counter c (secondary)");
    assert_eq!(
        r.spec(),
        serde_json::json!({"kind": "counter", "version": 0, "needs": "a"})
    );
}
