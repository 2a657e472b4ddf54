//! The generic resource interface: [`Kind`] is what the engine needs of each kind
//! of resource, implemented once per kind outside this crate; [`Resource`] is one
//! resource of a stack, a kind placed in a region under a name.

use std::fmt;
use std::future::Future;
use std::pin::Pin;

use anyhow::{Context as _, Result};
use serde::Serialize;
use serde_json::{Map, Value};

use crate::observed::Observed;
use failover_core::model::Role;

/// A step's future (boxed, so that [`Kind`] can be used as `dyn Kind`).
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T>> + Send + 'a>>;

/// Where a resource is: its region (the primary's clients for global services) and
/// its name.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub role: Role,
    pub name: &'a str,
}

/// What a resource must look like, as data: the `spec` of the plan's JSON lines.
/// Every kind that derives `Serialize` has it.
pub trait Describe {
    fn describe(&self) -> Value;
}

impl<T: Serialize> Describe for T {
    fn describe(&self) -> Value {
        serde_json::to_value(self).unwrap_or(Value::Null)
    }
}

/// One kind of resource, as the engine sees it; `C` is the context the steps share
/// (clients, [`crate::Facts`]). Each kind implements it in its own file.
pub trait Kind<C>: Describe + Send + Sync {
    /// The kind's name in plans and progress lines (`iam-role`, `rest-api`, ...).
    fn name(&self) -> &'static str;
    /// What is there now; learns the facts later resources need.
    fn observe<'a>(&'a self, context: &'a C, at: At<'a>) -> Pending<'a, Observed>;
    /// Creates the resource (`exists == false`) or brings it back to its description.
    fn converge<'a>(&'a self, context: &'a C, at: At<'a>, exists: bool) -> Pending<'a, ()>;
    /// Deletes it (nothing to do when it is already gone).
    fn delete<'a>(&'a self, context: &'a C, at: At<'a>) -> Pending<'a, ()>;
    /// What destroy reports once it is gone: some resources go with another one.
    fn deleted(&self) -> &'static str {
        "deleted"
    }
}

/// One resource of a stack: where it lives (`None` for global services), its name
/// and its kind, which says what it must look like.
pub struct Resource<C> {
    pub region: Option<Role>,
    pub name: String,
    pub kind: Box<dyn Kind<C>>,
}

/// How plans, progress lines and messages name a resource:
/// `rest-api photos-config-primary (primary)`, `iam-role photos-web (global)`.
pub fn label(kind: &str, name: &str, region: Option<Role>) -> String {
    match region {
        Some(r) => format!("{kind} {name} ({r})"),
        None => format!("{kind} {name} (global)"),
    }
}

impl<C> Resource<C> {
    /// A resource in one region.
    pub fn at(role: Role, name: impl Into<String>, kind: impl Kind<C> + 'static) -> Self {
        Resource {
            region: Some(role),
            name: name.into(),
            kind: Box::new(kind),
        }
    }

    /// A resource of a global service.
    pub fn global(name: impl Into<String>, kind: impl Kind<C> + 'static) -> Self {
        Resource {
            region: None,
            name: name.into(),
            kind: Box::new(kind),
        }
    }

    pub(crate) fn place(&self) -> At<'_> {
        At {
            role: self.region.unwrap_or(Role::Primary),
            name: &self.name,
        }
    }

    pub(crate) async fn observe(&self, context: &C) -> Result<Observed> {
        self.kind
            .observe(context, self.place())
            .await
            .with_context(|| format!("reading {self}"))
    }

    /// Its description tagged with its kind, `{"kind": "s3-bucket", "cors": true,
    /// ...}`, unless the description carries a `kind` of its own; a description
    /// that is one word is tagged the way serde tags a unit variant,
    /// `{"kind": "rest-api", "config": null}`.
    pub fn spec(&self) -> Value {
        let mut spec = Map::new();
        spec.insert("kind".into(), self.kind.name().into());
        match self.kind.describe() {
            Value::Object(fields) => spec.extend(fields),
            Value::String(word) => {
                spec.insert(word, Value::Null);
            }
            _ => {}
        }
        Value::Object(spec)
    }
}

impl<C> fmt::Display for Resource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&label(self.kind.name(), &self.name, self.region))
    }
}

impl<C> fmt::Debug for Resource<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}: {}", self.spec())
    }
}
