//! Cognito identity pools (`cognito-identity`): the pool whose signed-in identities
//! assume the `<project>-web` role, linked to the user pool's web client, and its
//! `authenticated` role. In the primary region.

use anyhow::Result;
use aws_sdk_cognitoidentity::types::CognitoIdentityProvider;
use serde::Serialize;

use super::{iam, user_pool};
use crate::context::StackContext;
use crate::names::Names;
use crate::ownership::Found;
use crate::sdk::{self, STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Drift, Fact, Kind, Observed, Pending, label};

/// The identity pool whose signed-in identities assume the web role.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityPool;

/// The identity pool's `authenticated` role; it goes with the pool.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityPoolRoles;

const POOL: &str = "identity-pool";
const ROLES: &str = "identity-pool-roles";

/// The fact the identity pool publishes: its id.
pub fn pool_id(names: &Names) -> Fact {
    Fact::new(format!("{POOL} {}", names.identity_pool()), "id")
}

impl Kind<StackContext> for IdentityPool {
    fn name(&self) -> &'static str {
        POOL
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_identity_pool(context, at.name))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        at: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge_identity_pool(context, at.name, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_identity_pool(context, at.name))
    }
}

impl Kind<StackContext> for IdentityPoolRoles {
    fn name(&self) -> &'static str {
        ROLES
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_roles(context, at))
    }
    fn converge<'a>(&'a self, context: &'a StackContext, at: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge_roles(context, at))
    }
    fn delete<'a>(&'a self, _: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn deleted(&self) -> &'static str {
        "deleted with the identity pool"
    }
}

fn identity(context: &StackContext) -> &aws_sdk_cognitoidentity::Client {
    &context.region(Role::Primary).identity
}

/// The stack's identity pool among those of its name: its id.
async fn find_identity_pool(context: &StackContext, wanted: &str) -> Result<Found<String>> {
    let identity = identity(context);
    let page = move |token: Option<String>| async move {
        let out = identity
            .list_identity_pools()
            .max_results(60)
            .set_next_token(token)
            .send()
            .await
            .sdk("cognito-identity:ListIdentityPools")?;
        let same = out.identity_pools().iter();
        let ids = same
            .filter(|p| p.identity_pool_name() == Some(wanted))
            .filter_map(|p| p.identity_pool_id().map(String::from))
            .collect();
        anyhow::Ok((ids, out.next_token().map(String::from)))
    };
    let tag = move |id: &String| {
        let id = id.clone();
        async move {
            let d = identity
                .describe_identity_pool()
                .identity_pool_id(id)
                .send()
                .await
                .sdk("cognito-identity:DescribeIdentityPool")?;
            anyhow::Ok(
                d.identity_pool_tags()
                    .and_then(|t| t.get(STACK_TAG))
                    .cloned(),
            )
        }
    };
    context
        .lookup("identity pool", wanted)
        .find(page, tag)
        .await
}

fn provider_name(context: &StackContext, pool: &str) -> String {
    format!(
        "cognito-idp.{}.amazonaws.com/{pool}",
        context.stack.region_name(Role::Primary)
    )
}

async fn observe_identity_pool(context: &StackContext, name: &str) -> Result<Observed> {
    let id = match find_identity_pool(context, name).await?.or_observed() {
        Ok(id) => id,
        Err(seen) => return Ok(seen),
    };
    context.learn(pool_id(context.names()), id.clone());
    let d = identity(context)
        .describe_identity_pool()
        .identity_pool_id(&id)
        .send()
        .await
        .sdk("cognito-identity:DescribeIdentityPool")?;
    // The link names the user pool and its client: unknown until both exist.
    let mut drift = Drift::default();
    let linked = |want: &CognitoIdentityProvider| {
        d.cognito_identity_providers()
            .iter()
            .any(|p| p.provider_name() == want.provider_name() && p.client_id() == want.client_id())
    };
    if let Some(want) = drift.want(provider(context))?
        && !linked(&want)
    {
        drift.add("not linked to the user pool's client");
    }
    if d.allow_unauthenticated_identities() {
        drift.add("allows unauthenticated identities");
    }
    Ok(drift.finish())
}

fn provider(context: &StackContext) -> Result<CognitoIdentityProvider> {
    let names = context.names();
    Ok(CognitoIdentityProvider::builder()
        .provider_name(provider_name(
            context,
            &context.know(&user_pool::pool_id(names))?,
        ))
        .client_id(context.know(&user_pool::client_id(names))?)
        .server_side_token_check(false)
        .build())
}

async fn converge_identity_pool(context: &StackContext, name: &str, exists: bool) -> Result<()> {
    let provider = provider(context)?;
    // Create and update take the same description (their builders are two types).
    macro_rules! described {
        ($request:expr) => {
            $request
                .identity_pool_name(name)
                .allow_unauthenticated_identities(false)
                .cognito_identity_providers(provider)
                .identity_pool_tags(STACK_TAG, context.stack.project())
        };
    }
    if exists {
        let update = identity(context)
            .update_identity_pool()
            .identity_pool_id(context.know(&pool_id(context.names()))?);
        described!(update)
            .send()
            .await
            .sdk("cognito-identity:UpdateIdentityPool")?;
        return Ok(());
    }
    let out = described!(identity(context).create_identity_pool())
        .send()
        .await
        .sdk("cognito-identity:CreateIdentityPool")?;
    context.learn(pool_id(context.names()), out.identity_pool_id());
    Ok(())
}

async fn delete_identity_pool(context: &StackContext, name: &str) -> Result<()> {
    if let Found::Ours(id) = find_identity_pool(context, name).await? {
        identity(context)
            .delete_identity_pool()
            .identity_pool_id(id)
            .send()
            .await
            .absent(
                "cognito-identity:DeleteIdentityPool",
                &["ResourceNotFoundException"],
            )?;
    }
    Ok(())
}

fn web_role_arn(context: &StackContext) -> Result<String> {
    context.know(&iam::role_arn(&context.names().role("web")))
}

/// The identity pool's `authenticated` role. The emulator does not implement
/// Get/SetIdentityPoolRoles; there the step is reported as accepted, not done.
async fn observe_roles(context: &StackContext, at: At<'_>) -> Result<Observed> {
    let Some(id) = context.facts().find(&pool_id(context.names())) else {
        return Ok(Observed::Absent);
    };
    let out = identity(context)
        .get_identity_pool_roles()
        .identity_pool_id(id)
        .customize()
        .config_override(once_on_emulator(context))
        .send()
        .await;
    match out {
        Ok(o) => {
            let Some(have) = o.roles().and_then(|r| r.get("authenticated")).cloned() else {
                return Ok(Observed::Absent);
            };
            let mut drift = Drift::default();
            if drift
                .want(web_role_arn(context))?
                .is_some_and(|w| w != have)
            {
                drift.add("authenticated role differs");
            }
            Ok(drift.finish())
        }
        Err(e) if unimplemented_here(context, &e) => {
            note_unimplemented(context, at);
            Ok(Observed::ours())
        }
        Err(e) => Err(sdk::fail("cognito-identity:GetIdentityPoolRoles", &e)),
    }
}

/// Notes, beside the roles' step and in the outputs, that nothing was set.
fn note_unimplemented(context: &StackContext, at: At<'_>) {
    context.learn(
        Fact::note(label(ROLES, at.name, Some(at.role))),
        "the emulator does not implement Get/SetIdentityPoolRoles; not set",
    );
}

/// The emulator answers these calls with a 500 every time: no point retrying there.
fn once_on_emulator(context: &StackContext) -> aws_sdk_cognitoidentity::config::Builder {
    let b = aws_sdk_cognitoidentity::config::Builder::default();
    if context.region(Role::Primary).emulated() {
        b.retry_config(aws_config::retry::RetryConfig::disabled())
    } else {
        b
    }
}

fn unimplemented_here<E, R: sdk::HasStatus>(
    context: &StackContext,
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    context.region(Role::Primary).emulated() && sdk::status(e).is_some_and(|s| s >= 500)
}

async fn converge_roles(context: &StackContext, at: At<'_>) -> Result<()> {
    let out = identity(context)
        .set_identity_pool_roles()
        .identity_pool_id(context.know(&pool_id(context.names()))?)
        .roles("authenticated", web_role_arn(context)?)
        .customize()
        .config_override(once_on_emulator(context))
        .send()
        .await;
    match out {
        Ok(_) => Ok(()),
        Err(e) if unimplemented_here(context, &e) => {
            note_unimplemented(context, at);
            Ok(())
        }
        Err(e) => Err(sdk::fail("cognito-identity:SetIdentityPoolRoles", &e)),
    }
}
