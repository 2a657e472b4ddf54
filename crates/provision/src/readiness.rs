//! The secondary's half of the stack against what `provision plan` wants: the part
//! of the daemon's readiness check that comes from the provisioning wing (the
//! daemon never provisions; the binary wraps this in its readiness seam).
//!
//! The plan is made of the resources in the secondary and the global ones (IAM
//! roles, the CDN, health checks) in creation order, one resource at a time, so
//! that one that cannot be read is named and the others are still compared. The
//! primary's resources are left out: the check must answer while the primary is
//! down. A REST API's stage is part of its plan (`stage prod missing`, or serving
//! an older deployment), so an API not deployed to the stage the probes and the
//! page use is drift.

use failover_config::Settings;
use failover_core::model::Role;
use failover_provision_engine::{self as engine, Action};

use crate::context::StackContext;
use crate::resources;
use crate::stack::Stack;

/// What the plan found wrong with one resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// `apply` would create it: it is missing.
    Missing(String),
    /// `apply` would update it: what differs.
    Drift(String, Vec<String>),
    /// Something with its name exists without the stack's mark: not provisioned by
    /// this tool, so its drift is not compared.
    NotOurs(String, String),
    /// It could not be read (why).
    Unreadable(String, String),
}

/// The stack's secondary half, as `provision` describes it from the settings.
pub struct SecondaryStack {
    stack: Stack,
}

impl SecondaryStack {
    /// The stack of `settings`, or why there is none to compare with (no
    /// `[stack]` section: the stack is not provisioned by failover-monitor).
    pub fn from_settings(settings: &Settings) -> Result<Self, String> {
        Stack::from_settings(settings)
            .map(|stack| Self { stack })
            .map_err(|e| {
                format!(
                    "the stack is not provisioned by failover-monitor here ({e}): its drift \
                     and the REST APIs' stage are not compared"
                )
            })
    }

    /// Plans the secondary's and the global resources and reports what is not as
    /// the plan wants it (nothing: all as wanted).
    pub async fn check(&self) -> Vec<Found> {
        let context = StackContext::connect(self.stack.clone()).await;
        let mut found = Vec::new();
        for resource in resources::list(&self.stack)
            .into_iter()
            .filter(|r| r.region != Some(Role::Primary))
        {
            let label = resource.to_string();
            let plan = match engine::plan(&context, vec![resource], false).await {
                Ok(plan) => plan,
                Err(e) => {
                    found.push(Found::Unreadable(label, format!("{e:#}")));
                    continue;
                }
            };
            for step in plan.steps {
                match step.action {
                    Action::Create => found.push(Found::Missing(label.clone())),
                    Action::Update(drift) => found.push(Found::Drift(label.clone(), drift)),
                    Action::Refuse(why) => found.push(Found::NotOurs(label.clone(), why)),
                    // Unknown until a resource before it exists: that one is named.
                    Action::Keep | Action::Unknown(_) | Action::Delete | Action::Absent => {}
                }
            }
        }
        found
    }
}
