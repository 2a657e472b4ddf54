//! The provisioning engine, Terraform's way: it observes, plans, applies and
//! destroys a list of resources through one generic interface, and knows no kind of
//! resource and no cloud. The provisioning crate implements [`Kind`] once per kind
//! of resource and hands the engine the stack's list; this crate cannot name
//! either, because it does not depend on it.
//!
//! - [`resource`]: [`Kind`], what the engine needs of each kind of resource
//!   (observe, converge, delete), and [`Resource`], one resource of a stack: its
//!   kind, its region and its name.
//! - [`observed`]: what is there now ([`Observed`]), and [`Drift`], how a present
//!   resource differs from its description.
//! - [`facts`]: what earlier steps learned (ARNs, generated ids), kept by [`Fact`];
//!   a fact nobody learned is [`Unknown`], never an empty string.
//! - [`plan`](mod@plan): the verdict on each resource ([`Action`]) and the [`Plan`].
//! - [`run`]: [`apply`] and [`destroy`], reporting each step through [`Progress`],
//!   on a [`Context`] that holds the facts.

pub mod facts;
pub mod observed;
pub mod plan;
pub mod resource;
pub mod run;

pub use facts::{Fact, Facts, Unknown};
pub use observed::{Drift, Observed};
pub use plan::{Action, Plan, Step, plan};
pub use resource::{At, Describe, Kind, Pending, Resource, label};
pub use run::{Context, Progress, Summary, apply, destroy};

#[cfg(test)]
mod tests;
