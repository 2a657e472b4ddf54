//! The context every step shares ([`Cx`]): the stack, the clients of both regions and
//! of the global services, and the [`Facts`] earlier steps learned (ARNs, generated
//! ids). A fact nobody has learned yet is [`Unknown`], never an empty string: what
//! depends on it is undecided, not different.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};

use anyhow::Result;
use serde::Serialize;

use super::resources::api::ApiKind;
use super::sdk::{self, Global, Region};
use super::stack::Stack;
use failover_core::model::Role;

/// What earlier steps learned that later ones need: ARNs and generated ids.
#[derive(Debug, Default, Clone, Serialize)]
pub struct Facts {
    pub account: Option<String>,
    pub role_arns: BTreeMap<String, String>,
    /// `(region, api kind)` -> REST API id.
    pub apis: BTreeMap<String, String>,
    pub user_pool_id: Option<String>,
    pub client_id: Option<String>,
    pub identity_pool_id: Option<String>,
    pub distribution_id: Option<String>,
    pub distribution_arn: Option<String>,
    pub distribution_domain: Option<String>,
    pub health_checks: BTreeMap<String, String>,
    /// What the endpoint accepted without doing (emulator gaps), by resource.
    pub notes: BTreeMap<String, String>,
}

/// A fact that no step has learned yet, because the resource it comes from does not
/// exist (yet): `unknown until iam-role photos-config-api exists`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown until {0} exists")]
pub struct Unknown(pub String);

/// The key of a REST API in [`Facts::apis`].
pub fn api_key(kind: ApiKind, role: Role) -> String {
    format!("{role}/{}", kind.as_str())
}

/// The clients and the facts the steps share.
pub struct Cx {
    pub stack: Stack,
    regions: [Region; 2],
    pub global: Global,
    facts: Mutex<Facts>,
}

impl Cx {
    pub async fn connect(stack: Stack) -> Cx {
        let (primary, sdk) = Region::load(&stack.settings.regions.primary).await;
        let (secondary, _) = Region::load(&stack.settings.regions.secondary).await;
        Cx {
            global: Global::new(&sdk),
            stack,
            regions: [primary, secondary],
            facts: Mutex::new(Facts::default()),
        }
    }

    pub fn region(&self, role: Role) -> &Region {
        match role {
            Role::Primary => &self.regions[0],
            Role::Secondary => &self.regions[1],
        }
    }

    fn lock(&self) -> MutexGuard<'_, Facts> {
        // A panic while holding the lock cannot leave the facts half-written (each
        // update is one insert), so a poisoned lock is still good to read.
        self.facts.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn facts(&self) -> Facts {
        self.lock().clone()
    }

    pub fn learn(&self, f: impl FnOnce(&mut Facts)) {
        f(&mut self.lock());
    }

    /// A fact, or [`Unknown`] naming the resource (`kind name`) it comes from.
    fn known<T>(&self, get: impl FnOnce(&Facts) -> Option<T>, from: String) -> Result<T> {
        get(&self.lock()).ok_or_else(|| Unknown(from).into())
    }

    pub fn role_arn(&self, name: &str) -> Result<String> {
        self.known(
            |f| f.role_arns.get(name).cloned(),
            format!("iam-role {name}"),
        )
    }

    pub fn api_id(&self, kind: ApiKind, role: Role) -> Result<String> {
        self.known(
            |f| f.apis.get(&api_key(kind, role)).cloned(),
            format!("rest-api {} ({role})", self.stack.api_name(kind, role)),
        )
    }

    pub fn user_pool_id(&self) -> Result<String> {
        self.known(
            |f| f.user_pool_id.clone(),
            format!("user-pool {}", self.stack.project),
        )
    }

    pub fn client_id(&self) -> Result<String> {
        self.known(
            |f| f.client_id.clone(),
            format!("user-pool-client {}", self.stack.user_pool_client_name()),
        )
    }

    pub fn identity_pool_id(&self) -> Result<String> {
        self.known(
            |f| f.identity_pool_id.clone(),
            format!("identity-pool {}", self.stack.identity_pool_name()),
        )
    }

    pub fn distribution_arn(&self) -> Result<String> {
        self.known(
            |f| f.distribution_arn.clone(),
            format!("cloudfront-distribution {}", self.stack.distribution_name()),
        )
    }

    pub fn health_check_id(&self, role: Role) -> Result<String> {
        self.known(
            |f| f.health_checks.get(role.as_str()).cloned(),
            format!(
                "route53-health-check {}",
                self.stack.health_check_name(role)
            ),
        )
    }

    /// The account id, asked once (needed in ARNs of policies).
    pub async fn account(&self) -> Result<String> {
        if let Some(a) = self.facts().account {
            return Ok(a);
        }
        let out = self
            .global
            .sts
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| sdk::fail("sts:GetCallerIdentity", &e))?;
        let account = out.account().unwrap_or_default().to_string();
        self.learn(|f| f.account = Some(account.clone()));
        Ok(account)
    }
}
