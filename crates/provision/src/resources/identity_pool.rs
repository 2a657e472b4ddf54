//! Cognito identity pools (`cognito-identity`): the pool whose signed-in identities
//! assume the `<project>-web` role, linked to the user pool's web client, and its
//! `authenticated` role. In the primary region.

use anyhow::Result;
use aws_sdk_cognitoidentity::types::CognitoIdentityProvider;
use serde::Serialize;

use crate::context::Cx;
use crate::engine::{At, Drift, Kind, Observed, Pending};
use crate::ours::Ours;
use crate::sdk::{self, STACK_TAG, SdkResult};
use failover_core::model::Role;

/// The identity pool whose signed-in identities assume the web role.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityPool;

/// The identity pool's `authenticated` role; it goes with the pool.
#[derive(Debug, Clone, Serialize)]
pub struct IdentityPoolRoles;

impl Kind for IdentityPool {
    fn name(&self) -> &'static str {
        "identity-pool"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_identity_pool(cx, at.name))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, at: At<'a>, exists: bool) -> Pending<'a, ()> {
        Box::pin(converge_identity_pool(cx, at.name, exists))
    }
    fn delete<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_identity_pool(cx, at.name))
    }
}

impl Kind for IdentityPoolRoles {
    fn name(&self) -> &'static str {
        "identity-pool-roles"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_roles(cx))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, _: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge_roles(cx))
    }
    fn delete<'a>(&'a self, _: &'a Cx, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    fn deleted(&self) -> &'static str {
        "deleted with the identity pool"
    }
}

fn identity(cx: &Cx) -> &aws_sdk_cognitoidentity::Client {
    &cx.region(Role::Primary).identity
}

/// The stack's identity pool among those of its name: its id.
async fn find_identity_pool(cx: &Cx, wanted: &str) -> Result<Ours<String>> {
    let identity = identity(cx);
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
    cx.lookup("identity pool", wanted).find(page, tag).await
}

fn provider_name(cx: &Cx, pool: &str) -> String {
    format!(
        "cognito-idp.{}.amazonaws.com/{pool}",
        cx.stack.region_name(Role::Primary)
    )
}

async fn observe_identity_pool(cx: &Cx, name: &str) -> Result<Observed> {
    let id = match find_identity_pool(cx, name).await?.or_observed() {
        Ok(id) => id,
        Err(seen) => return Ok(seen),
    };
    cx.learn(|f| f.identity_pool_id = Some(id.clone()));
    let d = identity(cx)
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
    if let Some(want) = drift.want(provider(cx))?
        && !linked(&want)
    {
        drift.add("not linked to the user pool's client");
    }
    if d.allow_unauthenticated_identities() {
        drift.add("allows unauthenticated identities");
    }
    Ok(drift.finish())
}

fn provider(cx: &Cx) -> Result<CognitoIdentityProvider> {
    Ok(CognitoIdentityProvider::builder()
        .provider_name(provider_name(cx, &cx.user_pool_id()?))
        .client_id(cx.client_id()?)
        .server_side_token_check(false)
        .build())
}

async fn converge_identity_pool(cx: &Cx, name: &str, exists: bool) -> Result<()> {
    let provider = provider(cx)?;
    // Create and update take the same description (their builders are two types).
    macro_rules! described {
        ($request:expr) => {
            $request
                .identity_pool_name(name)
                .allow_unauthenticated_identities(false)
                .cognito_identity_providers(provider)
                .identity_pool_tags(STACK_TAG, &cx.stack.project)
        };
    }
    if exists {
        let update = identity(cx)
            .update_identity_pool()
            .identity_pool_id(cx.identity_pool_id()?);
        described!(update)
            .send()
            .await
            .sdk("cognito-identity:UpdateIdentityPool")?;
        return Ok(());
    }
    let out = described!(identity(cx).create_identity_pool())
        .send()
        .await
        .sdk("cognito-identity:CreateIdentityPool")?;
    cx.learn(|f| f.identity_pool_id = Some(out.identity_pool_id().to_string()));
    Ok(())
}

async fn delete_identity_pool(cx: &Cx, name: &str) -> Result<()> {
    if let Ours::Mine(id) = find_identity_pool(cx, name).await? {
        identity(cx)
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

fn web_role_arn(cx: &Cx) -> Result<String> {
    cx.role_arn(&cx.stack.role_name("web"))
}

/// The identity pool's `authenticated` role. The emulator does not implement
/// Get/SetIdentityPoolRoles; there the step is reported as accepted, not done.
async fn observe_roles(cx: &Cx) -> Result<Observed> {
    let Some(id) = cx.facts().identity_pool_id else {
        return Ok(Observed::Absent);
    };
    let out = identity(cx)
        .get_identity_pool_roles()
        .identity_pool_id(id)
        .customize()
        .config_override(once_on_emulator(cx))
        .send()
        .await;
    match out {
        Ok(o) => {
            let Some(have) = o.roles().and_then(|r| r.get("authenticated")).cloned() else {
                return Ok(Observed::Absent);
            };
            let mut drift = Drift::default();
            if drift.want(web_role_arn(cx))?.is_some_and(|w| w != have) {
                drift.add("authenticated role differs");
            }
            Ok(drift.finish())
        }
        Err(e) if unimplemented_here(cx, &e) => {
            note_unimplemented(cx);
            Ok(Observed::ours())
        }
        Err(e) => Err(sdk::fail("cognito-identity:GetIdentityPoolRoles", &e)),
    }
}

fn note_unimplemented(cx: &Cx) {
    let key = format!(
        "identity-pool-roles {} (primary)",
        cx.stack.identity_pool_name()
    );
    cx.learn(|f| {
        f.notes.insert(
            key,
            "the emulator does not implement Get/SetIdentityPoolRoles; not set".into(),
        );
    });
}

/// The emulator answers these calls with a 500 every time: no point retrying there.
fn once_on_emulator(cx: &Cx) -> aws_sdk_cognitoidentity::config::Builder {
    let b = aws_sdk_cognitoidentity::config::Builder::default();
    if cx.region(Role::Primary).emulated() {
        b.retry_config(aws_config::retry::RetryConfig::disabled())
    } else {
        b
    }
}

fn unimplemented_here<E, R: sdk::HasStatus>(
    cx: &Cx,
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    cx.region(Role::Primary).emulated() && sdk::status(e).is_some_and(|s| s >= 500)
}

async fn converge_roles(cx: &Cx) -> Result<()> {
    let out = identity(cx)
        .set_identity_pool_roles()
        .identity_pool_id(cx.identity_pool_id()?)
        .roles("authenticated", web_role_arn(cx)?)
        .customize()
        .config_override(once_on_emulator(cx))
        .send()
        .await;
    match out {
        Ok(_) => Ok(()),
        Err(e) if unimplemented_here(cx, &e) => {
            note_unimplemented(cx);
            Ok(())
        }
        Err(e) => Err(sdk::fail("cognito-identity:SetIdentityPoolRoles", &e)),
    }
}
