//! Cognito: the user pool (admin-created users only, e-mail verified), its web
//! client, the one operator user, and the identity pool whose signed-in identities
//! assume the `<project>-web` role. All in the primary region (the page's
//! `uiRegion`).

use anyhow::{Context, Result};
use aws_sdk_cognitoidentity::types::CognitoIdentityProvider;
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, AttributeType, DeliveryMediumType, VerifiedAttributeType,
};

use super::sdk::{STACK_TAG, SdkResult};
use super::{Cx, Observed, Stack};
use crate::model::Role;

/// Identity pool names allow word characters and spaces only.
pub fn identity_pool_name(stack: &Stack) -> String {
    stack.project.replace('-', "_")
}

fn idp(cx: &Cx) -> &aws_sdk_cognitoidentityprovider::Client {
    &cx.region(Role::Primary).idp
}

fn identity(cx: &Cx) -> &aws_sdk_cognitoidentity::Client {
    &cx.region(Role::Primary).identity
}

/// The pools named like the project: (id, ours).
async fn find_pool(cx: &Cx) -> Result<Option<Result<String, String>>> {
    let mut token = None;
    let mut same = Vec::new();
    loop {
        let out = idp(cx)
            .list_user_pools()
            .max_results(60)
            .set_next_token(token)
            .send()
            .await
            .sdk("cognito-idp:ListUserPools")?;
        for p in out.user_pools() {
            if p.name() == Some(cx.stack.project.as_str())
                && let Some(id) = p.id()
            {
                same.push(id.to_string());
            }
        }
        token = out.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    let mut ours = Vec::new();
    for id in &same {
        let d = idp(cx)
            .describe_user_pool()
            .user_pool_id(id)
            .send()
            .await
            .sdk("cognito-idp:DescribeUserPool")?;
        let tagged = d
            .user_pool()
            .and_then(|p| p.user_pool_tags())
            .and_then(|t| t.get(STACK_TAG))
            .is_some_and(|v| *v == cx.stack.project);
        if tagged {
            ours.push(id.clone());
        }
    }
    super::pick_ours("user pool", &cx.stack.project, same.len(), ours)
}

pub async fn observe_pool(cx: &Cx) -> Result<Observed> {
    let id = match find_pool(cx).await? {
        None => return Ok(Observed::Absent),
        Some(Err(why)) => return Ok(Observed::Foreign(why)),
        Some(Ok(id)) => id,
    };
    cx.learn(|f| f.user_pool_id = Some(id.clone()));
    let d = idp(cx)
        .describe_user_pool()
        .user_pool_id(&id)
        .send()
        .await
        .sdk("cognito-idp:DescribeUserPool")?;
    let admin_only = d
        .user_pool()
        .and_then(|p| p.admin_create_user_config())
        .is_some_and(|c| c.allow_admin_create_user_only());
    Ok(if admin_only {
        Observed::ours()
    } else {
        Observed::drifted(vec!["self sign-up is allowed".into()])
    })
}

fn admin_only() -> AdminCreateUserConfigType {
    AdminCreateUserConfigType::builder()
        .allow_admin_create_user_only(true)
        .build()
}

pub async fn converge_pool(cx: &Cx, exists: bool) -> Result<()> {
    if exists {
        let id = pool_id(cx)?;
        idp(cx)
            .update_user_pool()
            .user_pool_id(id)
            .admin_create_user_config(admin_only())
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .user_pool_tags(STACK_TAG, &cx.stack.project)
            .send()
            .await
            .sdk("cognito-idp:UpdateUserPool")?;
        return Ok(());
    }
    let out = idp(cx)
        .create_user_pool()
        .pool_name(&cx.stack.project)
        .admin_create_user_config(admin_only())
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .user_pool_tags(STACK_TAG, &cx.stack.project)
        .send()
        .await
        .sdk("cognito-idp:CreateUserPool")?;
    let id = out
        .user_pool()
        .and_then(|p| p.id())
        .context("CreateUserPool answered without an id")?
        .to_string();
    cx.learn(|f| f.user_pool_id = Some(id));
    Ok(())
}

fn pool_id(cx: &Cx) -> Result<String> {
    cx.facts()
        .user_pool_id
        .context("the user pool's id is not known (is the pool there?)")
}

pub async fn delete_pool(cx: &Cx) -> Result<()> {
    if let Some(Ok(id)) = find_pool(cx).await? {
        idp(cx)
            .delete_user_pool()
            .user_pool_id(id)
            .send()
            .await
            .absent("cognito-idp:DeleteUserPool", &["ResourceNotFoundException"])?;
    }
    Ok(())
}

async fn find_client(cx: &Cx, name: &str) -> Result<Option<String>> {
    let Ok(pool) = pool_id(cx) else {
        return Ok(None);
    };
    let out = idp(cx)
        .list_user_pool_clients()
        .user_pool_id(pool)
        .max_results(60)
        .send()
        .await
        .absent(
            "cognito-idp:ListUserPoolClients",
            &["ResourceNotFoundException"],
        )?;
    Ok(out.and_then(|o| {
        o.user_pool_clients()
            .iter()
            .find(|c| c.client_name() == Some(name))
            .and_then(|c| c.client_id().map(String::from))
    }))
}

/// The client lives inside the pool: ours when the pool is.
pub async fn observe_client(cx: &Cx, name: &str) -> Result<Observed> {
    match find_client(cx, name).await? {
        Some(id) => {
            cx.learn(|f| f.client_id = Some(id));
            Ok(Observed::ours())
        }
        None => Ok(Observed::Absent),
    }
}

pub async fn converge_client(cx: &Cx, name: &str) -> Result<()> {
    let out = idp(cx)
        .create_user_pool_client()
        .user_pool_id(pool_id(cx)?)
        .client_name(name)
        .generate_secret(false)
        .send()
        .await
        .sdk("cognito-idp:CreateUserPoolClient")?;
    let id = out
        .user_pool_client()
        .and_then(|c| c.client_id())
        .context("CreateUserPoolClient answered without an id")?;
    cx.learn(|f| f.client_id = Some(id.to_string()));
    Ok(())
}

pub async fn delete_client(cx: &Cx) -> Result<()> {
    let (Ok(pool), Some(id)) = (pool_id(cx), cx.facts().client_id) else {
        return Ok(());
    };
    idp(cx)
        .delete_user_pool_client()
        .user_pool_id(pool)
        .client_id(id)
        .send()
        .await
        .absent(
            "cognito-idp:DeleteUserPoolClient",
            &["ResourceNotFoundException"],
        )?;
    Ok(())
}

pub async fn observe_user(cx: &Cx, name: &str, email: &str) -> Result<Observed> {
    let Ok(pool) = pool_id(cx) else {
        return Ok(Observed::Absent);
    };
    let user = idp(cx)
        .admin_get_user()
        .user_pool_id(pool)
        .username(name)
        .send()
        .await
        .absent(
            "cognito-idp:AdminGetUser",
            &["UserNotFoundException", "ResourceNotFoundException"],
        )?;
    let Some(user) = user else {
        return Ok(Observed::Absent);
    };
    let have = user
        .user_attributes()
        .iter()
        .find(|a| a.name() == "email")
        .and_then(|a| a.value());
    Ok(if have == Some(email) {
        Observed::ours()
    } else {
        Observed::drifted(vec![format!("e-mail is {have:?}, not {email:?}")])
    })
}

fn email_attr(email: &str) -> Result<AttributeType> {
    Ok(AttributeType::builder()
        .name("email")
        .value(email)
        .build()?)
}

pub async fn converge_user(cx: &Cx, name: &str, email: &str, exists: bool) -> Result<()> {
    let pool = pool_id(cx)?;
    if exists {
        idp(cx)
            .admin_update_user_attributes()
            .user_pool_id(pool)
            .username(name)
            .user_attributes(email_attr(email)?)
            .send()
            .await
            .sdk("cognito-idp:AdminUpdateUserAttributes")?;
    } else {
        // Cognito mails the temporary password to the address.
        idp(cx)
            .admin_create_user()
            .user_pool_id(pool)
            .username(name)
            .user_attributes(email_attr(email)?)
            .desired_delivery_mediums(DeliveryMediumType::Email)
            .send()
            .await
            .sdk("cognito-idp:AdminCreateUser")?;
    }
    Ok(())
}

pub async fn delete_user(cx: &Cx, name: &str) -> Result<()> {
    let Ok(pool) = pool_id(cx) else {
        return Ok(());
    };
    idp(cx)
        .admin_delete_user()
        .user_pool_id(pool)
        .username(name)
        .send()
        .await
        .absent(
            "cognito-idp:AdminDeleteUser",
            &["UserNotFoundException", "ResourceNotFoundException"],
        )?;
    Ok(())
}

async fn find_identity_pool(cx: &Cx) -> Result<Option<Result<String, String>>> {
    let name = identity_pool_name(&cx.stack);
    let mut token = None;
    let mut same = Vec::new();
    loop {
        let out = identity(cx)
            .list_identity_pools()
            .max_results(60)
            .set_next_token(token)
            .send()
            .await
            .sdk("cognito-identity:ListIdentityPools")?;
        for p in out.identity_pools() {
            if p.identity_pool_name() == Some(name.as_str())
                && let Some(id) = p.identity_pool_id()
            {
                same.push(id.to_string());
            }
        }
        token = out.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    let mut ours = Vec::new();
    for id in &same {
        let d = identity(cx)
            .describe_identity_pool()
            .identity_pool_id(id)
            .send()
            .await
            .sdk("cognito-identity:DescribeIdentityPool")?;
        if d.identity_pool_tags()
            .and_then(|t| t.get(STACK_TAG))
            .is_some_and(|v| *v == cx.stack.project)
        {
            ours.push(id.clone());
        }
    }
    super::pick_ours("identity pool", &name, same.len(), ours)
}

fn provider_name(cx: &Cx, pool: &str) -> String {
    format!(
        "cognito-idp.{}.amazonaws.com/{pool}",
        cx.stack.region_name(Role::Primary)
    )
}

pub async fn observe_identity_pool(cx: &Cx) -> Result<Observed> {
    let id = match find_identity_pool(cx).await? {
        None => return Ok(Observed::Absent),
        Some(Err(why)) => return Ok(Observed::Foreign(why)),
        Some(Ok(id)) => id,
    };
    cx.learn(|f| f.identity_pool_id = Some(id.clone()));
    let d = identity(cx)
        .describe_identity_pool()
        .identity_pool_id(&id)
        .send()
        .await
        .sdk("cognito-identity:DescribeIdentityPool")?;
    let facts = cx.facts();
    let want = facts.user_pool_id.as_deref().map(|p| {
        (
            provider_name(cx, p),
            facts.client_id.clone().unwrap_or_default(),
        )
    });
    let linked = d.cognito_identity_providers().iter().any(|p| {
        want.as_ref().is_some_and(|(name, client)| {
            p.provider_name() == Some(name.as_str()) && p.client_id() == Some(client.as_str())
        })
    });
    let mut drift = Vec::new();
    if !linked {
        drift.push("not linked to the user pool's client".into());
    }
    if d.allow_unauthenticated_identities() {
        drift.push("allows unauthenticated identities".into());
    }
    Ok(Observed::drifted(drift))
}

fn provider(cx: &Cx) -> Result<CognitoIdentityProvider> {
    let facts = cx.facts();
    let pool = facts
        .user_pool_id
        .context("the user pool's id is not known")?;
    let client = facts
        .client_id
        .context("the user pool client's id is not known")?;
    Ok(CognitoIdentityProvider::builder()
        .provider_name(provider_name(cx, &pool))
        .client_id(client)
        .server_side_token_check(false)
        .build())
}

pub async fn converge_identity_pool(cx: &Cx, exists: bool) -> Result<()> {
    let name = identity_pool_name(&cx.stack);
    if exists {
        let id = cx
            .facts()
            .identity_pool_id
            .context("identity pool id not known")?;
        identity(cx)
            .update_identity_pool()
            .identity_pool_id(id)
            .identity_pool_name(name)
            .allow_unauthenticated_identities(false)
            .cognito_identity_providers(provider(cx)?)
            .identity_pool_tags(STACK_TAG, &cx.stack.project)
            .send()
            .await
            .sdk("cognito-identity:UpdateIdentityPool")?;
        return Ok(());
    }
    let out = identity(cx)
        .create_identity_pool()
        .identity_pool_name(name)
        .allow_unauthenticated_identities(false)
        .cognito_identity_providers(provider(cx)?)
        .identity_pool_tags(STACK_TAG, &cx.stack.project)
        .send()
        .await
        .sdk("cognito-identity:CreateIdentityPool")?;
    cx.learn(|f| f.identity_pool_id = Some(out.identity_pool_id().to_string()));
    Ok(())
}

pub async fn delete_identity_pool(cx: &Cx) -> Result<()> {
    if let Some(Ok(id)) = find_identity_pool(cx).await? {
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
    let name = cx.stack.role_name("web");
    cx.facts()
        .role_arns
        .get(&name)
        .cloned()
        .with_context(|| format!("the ARN of role {name} is not known"))
}

/// The identity pool's `authenticated` role. The emulator does not implement
/// Get/SetIdentityPoolRoles; there the step is reported as accepted, not done.
pub async fn observe_roles(cx: &Cx) -> Result<Observed> {
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
            let have = o.roles().and_then(|r| r.get("authenticated")).cloned();
            Ok(match (have, web_role_arn(cx).ok()) {
                (Some(h), Some(w)) if h == w => Observed::ours(),
                (None, _) => Observed::Absent,
                _ => Observed::drifted(vec!["authenticated role differs".into()]),
            })
        }
        Err(e) if unimplemented_here(cx, &e) => {
            note_unimplemented(cx);
            Ok(Observed::ours())
        }
        Err(e) => Err(super::sdk::fail(
            "cognito-identity:GetIdentityPoolRoles",
            &e,
        )),
    }
}

fn note_unimplemented(cx: &Cx) {
    let key = format!(
        "identity-pool-roles {} (primary)",
        identity_pool_name(&cx.stack)
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

fn unimplemented_here<E, R: super::sdk::HasStatus>(
    cx: &Cx,
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    cx.region(Role::Primary).emulated() && super::sdk::status(e).is_some_and(|s| s >= 500)
}

pub async fn converge_roles(cx: &Cx) -> Result<()> {
    let id = cx
        .facts()
        .identity_pool_id
        .context("identity pool id not known")?;
    let out = identity(cx)
        .set_identity_pool_roles()
        .identity_pool_id(id)
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
        Err(e) => Err(super::sdk::fail(
            "cognito-identity:SetIdentityPoolRoles",
            &e,
        )),
    }
}
