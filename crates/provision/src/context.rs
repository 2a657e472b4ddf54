//! What every step shares ([`StackContext`]): the stack's description, the clients
//! of both regions and of the global services, and the [`Facts`] earlier steps
//! learned (ARNs, generated ids), kept by key. A fact nobody has learned yet is
//! [`failover_provision_engine::Unknown`], never an empty string: what depends on it
//! is undecided, not different.

use anyhow::Result;
use tokio::sync::OnceCell;

use crate::names::Names;
use crate::ownership::Lookup;
use crate::sdk::{self, Global, Region, STACK_TAG};
use crate::stack::Stack;
use failover_core::model::Role;
use failover_provision_engine::{Context, Fact, Facts};

/// The stack, the clients and the facts the steps share.
pub struct StackContext {
    pub stack: Stack,
    regions: [Region; 2],
    pub global: Global,
    facts: Facts,
    account: OnceCell<String>,
}

impl StackContext {
    pub async fn connect(stack: Stack) -> StackContext {
        let (primary, sdk) = Region::load(&stack.settings.regions.primary).await;
        let (secondary, _) = Region::load(&stack.settings.regions.secondary).await;
        StackContext {
            global: Global::new(&sdk),
            stack,
            regions: [primary, secondary],
            facts: Facts::default(),
            account: OnceCell::new(),
        }
    }

    pub fn region(&self, role: Role) -> &Region {
        match role {
            Role::Primary => &self.regions[0],
            Role::Secondary => &self.regions[1],
        }
    }

    pub fn names(&self) -> &Names {
        &self.stack.names
    }

    pub fn facts(&self) -> &Facts {
        &self.facts
    }

    /// A fact, or [`failover_provision_engine::Unknown`] naming the resource it comes
    /// from.
    pub fn know(&self, fact: &Fact) -> Result<String> {
        self.facts.get(fact)
    }

    pub fn learn(&self, fact: Fact, value: impl Into<String>) {
        self.facts.learn(fact, value);
    }

    /// A search for this stack's `what` called `name`.
    pub fn lookup<'a>(&'a self, what: &'static str, name: &'a str) -> Lookup<'a> {
        Lookup {
            what,
            name,
            project: self.names().project(),
        }
    }

    /// The account id, asked once (needed in ARNs of policies).
    pub async fn account(&self) -> Result<String> {
        let account = self
            .account
            .get_or_try_init(|| async {
                let out = self
                    .global
                    .sts
                    .get_caller_identity()
                    .send()
                    .await
                    .map_err(|e| sdk::fail("sts:GetCallerIdentity", &e))?;
                anyhow::Ok(out.account().unwrap_or_default().to_string())
            })
            .await?;
        Ok(account.clone())
    }
}

impl Context for StackContext {
    fn facts(&self) -> &Facts {
        &self.facts
    }

    fn mark(&self) -> String {
        format!("tag {STACK_TAG}={}", self.names().project())
    }
}
