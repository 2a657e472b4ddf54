//! Cognito user pools (`cognito-idp`): the pool (admin-created users only, e-mail
//! verified), the web page's client (allowing exactly the sign-in flows the page
//! uses), and the one operator user. In the primary region (the page's `uiRegion`).

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, AttributeType, DeliveryMediumType, ExplicitAuthFlowsType,
    VerifiedAttributeType,
};
use serde::Serialize;

use crate::context::StackContext;
use crate::names::Names;
use crate::ownership::{Found, every_page};
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Drift, Fact, Kind, Observed, Pending};

/// The user pool (named like the project).
#[derive(Debug, Clone, Serialize)]
pub struct UserPool;

/// The web page's client of the user pool; it lives in the pool.
#[derive(Debug, Clone, Serialize)]
pub struct UserPoolClient;

/// The operator's user (its name is `stack.cognito_username`); it lives in the pool.
#[derive(Debug, Clone, Serialize)]
pub struct User {
    pub email: String,
}

const POOL: &str = "user-pool";
const CLIENT: &str = "user-pool-client";

/// The fact the user pool publishes: its id.
pub fn pool_id(names: &Names) -> Fact {
    Fact::new(format!("{POOL} {}", names.user_pool()), "id")
}

/// The fact the web page's client publishes: its id.
pub fn client_id(names: &Names) -> Fact {
    Fact::new(format!("{CLIENT} {}", names.user_pool_client()), "id")
}

impl Kind<StackContext> for UserPool {
    fn name(&self) -> &'static str {
        POOL
    }
    fn observe<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_pool(context))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        _: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge_pool(context, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_pool(context))
    }
}

impl Kind<StackContext> for UserPoolClient {
    fn name(&self) -> &'static str {
        CLIENT
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_client(context, at.name))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        at: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge_client(context, at.name, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_client(context))
    }
}

impl Kind<StackContext> for User {
    fn name(&self) -> &'static str {
        "cognito-user"
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_user(context, at.name, &self.email))
    }
    fn converge<'a>(
        &'a self,
        context: &'a StackContext,
        at: At<'a>,
        exists: bool,
    ) -> Pending<'a, ()> {
        Box::pin(converge_user(context, at.name, &self.email, exists))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_user(context, at.name))
    }
}

fn idp(context: &StackContext) -> &aws_sdk_cognitoidentityprovider::Client {
    &context.region(Role::Primary).idp
}

/// The pool's id, once known.
fn known_pool(context: &StackContext) -> Result<String> {
    context.know(&pool_id(context.names()))
}

/// The stack's user pool among those named like the project: its id.
async fn find_pool(context: &StackContext) -> Result<Found<String>> {
    let (idp, name) = (idp(context), context.names().project());
    let page = move |token: Option<String>| async move {
        let out = idp
            .list_user_pools()
            .max_results(60)
            .set_next_token(token)
            .send()
            .await
            .sdk("cognito-idp:ListUserPools")?;
        let same = out.user_pools().iter().filter(|p| p.name() == Some(name));
        let ids = same.filter_map(|p| p.id().map(String::from)).collect();
        anyhow::Ok((ids, out.next_token().map(String::from)))
    };
    let tag = move |id: &String| {
        let id = id.clone();
        async move {
            let d = idp
                .describe_user_pool()
                .user_pool_id(id)
                .send()
                .await
                .sdk("cognito-idp:DescribeUserPool")?;
            let tags = d.user_pool().and_then(|p| p.user_pool_tags());
            anyhow::Ok(tags.and_then(|t| t.get(STACK_TAG)).cloned())
        }
    };
    context.lookup("user pool", name).find(page, tag).await
}

async fn observe_pool(context: &StackContext) -> Result<Observed> {
    let id = match find_pool(context).await?.or_observed() {
        Ok(id) => id,
        Err(seen) => return Ok(seen),
    };
    context.learn(pool_id(context.names()), id.clone());
    let d = idp(context)
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

async fn converge_pool(context: &StackContext, exists: bool) -> Result<()> {
    if exists {
        let id = known_pool(context)?;
        idp(context)
            .update_user_pool()
            .user_pool_id(id)
            .admin_create_user_config(admin_only())
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .user_pool_tags(STACK_TAG, context.stack.project())
            .send()
            .await
            .sdk("cognito-idp:UpdateUserPool")?;
        return Ok(());
    }
    let out = idp(context)
        .create_user_pool()
        .pool_name(context.names().user_pool())
        .admin_create_user_config(admin_only())
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .user_pool_tags(STACK_TAG, context.stack.project())
        .send()
        .await
        .sdk("cognito-idp:CreateUserPool")?;
    let id = out
        .user_pool()
        .and_then(|p| p.id())
        .context("CreateUserPool answered without an id")?
        .to_string();
    context.learn(pool_id(context.names()), id);
    Ok(())
}

async fn delete_pool(context: &StackContext) -> Result<()> {
    if let Found::Ours(id) = find_pool(context).await? {
        idp(context)
            .delete_user_pool()
            .user_pool_id(id)
            .send()
            .await
            .absent("cognito-idp:DeleteUserPool", &["ResourceNotFoundException"])?;
    }
    Ok(())
}

async fn find_client(context: &StackContext, name: &str) -> Result<Option<String>> {
    let Ok(pool) = known_pool(context) else {
        return Ok(None);
    };
    let (idp, pool) = (idp(context), pool.as_str());
    let page = move |token: Option<String>| async move {
        let out = idp
            .list_user_pool_clients()
            .user_pool_id(pool)
            .max_results(60)
            .set_next_token(token)
            .send()
            .await
            .absent(
                "cognito-idp:ListUserPoolClients",
                &["ResourceNotFoundException"],
            )?;
        let Some(out) = out else {
            return anyhow::Ok((Vec::new(), None));
        };
        let same = out.user_pool_clients().iter();
        let ids = same
            .filter(|c| c.client_name() == Some(name))
            .filter_map(|c| c.client_id().map(String::from))
            .collect();
        anyhow::Ok((ids, out.next_token().map(String::from)))
    };
    Ok(every_page(page).await?.into_iter().next())
}

/// The sign-in flows the web page uses (deploy/website/cognito.js): the user name
/// and password (`USER_PASSWORD_AUTH`, answered with `NEW_PASSWORD_REQUIRED` for a
/// temporary password), and the refresh token. Nothing else: an app client allowing
/// flows nobody uses only widens what a stolen client id can try.
pub const AUTH_FLOWS: [ExplicitAuthFlowsType; 2] = [
    ExplicitAuthFlowsType::AllowUserPasswordAuth,
    ExplicitAuthFlowsType::AllowRefreshTokenAuth,
];

/// How the client's allowed flows differ from [`AUTH_FLOWS`], if they do.
fn flows_drift(have: &[ExplicitAuthFlowsType]) -> Option<String> {
    let mut have: Vec<&str> = have.iter().map(ExplicitAuthFlowsType::as_str).collect();
    let mut want: Vec<&str> = AUTH_FLOWS
        .iter()
        .map(ExplicitAuthFlowsType::as_str)
        .collect();
    have.sort_unstable();
    have.dedup();
    want.sort_unstable();
    (have != want).then(|| {
        let have = if have.is_empty() {
            "Cognito's default".to_string()
        } else {
            have.join(", ")
        };
        format!("auth flows are {have}, not {}", want.join(", "))
    })
}

/// The client lives inside the pool: ours when the pool is.
async fn observe_client(context: &StackContext, name: &str) -> Result<Observed> {
    let Some(id) = find_client(context, name).await? else {
        return Ok(Observed::Absent);
    };
    context.learn(client_id(context.names()), id.clone());
    let d = idp(context)
        .describe_user_pool_client()
        .user_pool_id(known_pool(context)?)
        .client_id(id)
        .send()
        .await
        .sdk("cognito-idp:DescribeUserPoolClient")?;
    let mut drift = Drift::default();
    let flows = d
        .user_pool_client()
        .map(|c| c.explicit_auth_flows())
        .unwrap_or_default();
    if let Some(why) = flows_drift(flows) {
        drift.add(why);
    }
    Ok(drift.finish())
}

async fn converge_client(context: &StackContext, name: &str, exists: bool) -> Result<()> {
    let pool = known_pool(context)?;
    if exists {
        let id = context.know(&client_id(context.names()))?;
        // UpdateUserPoolClient sets every setting it is not given back to its
        // default; the client has no setting of its own besides its name and flows.
        idp(context)
            .update_user_pool_client()
            .user_pool_id(pool)
            .client_id(id)
            .client_name(name)
            .set_explicit_auth_flows(Some(AUTH_FLOWS.to_vec()))
            .send()
            .await
            .sdk("cognito-idp:UpdateUserPoolClient")?;
        return Ok(());
    }
    let out = idp(context)
        .create_user_pool_client()
        .user_pool_id(pool)
        .client_name(name)
        .generate_secret(false)
        .set_explicit_auth_flows(Some(AUTH_FLOWS.to_vec()))
        .send()
        .await
        .sdk("cognito-idp:CreateUserPoolClient")?;
    let id = out
        .user_pool_client()
        .and_then(|c| c.client_id())
        .context("CreateUserPoolClient answered without an id")?;
    context.learn(client_id(context.names()), id);
    Ok(())
}

async fn delete_client(context: &StackContext) -> Result<()> {
    let (Ok(pool), Some(id)) = (
        known_pool(context),
        context.facts().find(&client_id(context.names())),
    ) else {
        return Ok(());
    };
    idp(context)
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

async fn observe_user(context: &StackContext, name: &str, email: &str) -> Result<Observed> {
    let Ok(pool) = known_pool(context) else {
        return Ok(Observed::Absent);
    };
    let user = idp(context)
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

async fn converge_user(
    context: &StackContext,
    name: &str,
    email: &str,
    exists: bool,
) -> Result<()> {
    let pool = known_pool(context)?;
    if exists {
        idp(context)
            .admin_update_user_attributes()
            .user_pool_id(pool)
            .username(name)
            .user_attributes(email_attr(email)?)
            .send()
            .await
            .sdk("cognito-idp:AdminUpdateUserAttributes")?;
    } else {
        // Cognito mails the temporary password to the address.
        idp(context)
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

async fn delete_user(context: &StackContext, name: &str) -> Result<()> {
    let Ok(pool) = known_pool(context) else {
        return Ok(());
    };
    idp(context)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_allows_exactly_the_pages_flows() {
        assert_eq!(flows_drift(&AUTH_FLOWS), None);
        let reversed: Vec<_> = AUTH_FLOWS.iter().rev().cloned().collect();
        assert_eq!(flows_drift(&reversed), None, "order does not matter");
        let mut more = AUTH_FLOWS.to_vec();
        more.push(ExplicitAuthFlowsType::AllowUserSrpAuth);
        assert_eq!(
            flows_drift(&more).unwrap(),
            "auth flows are ALLOW_REFRESH_TOKEN_AUTH, ALLOW_USER_PASSWORD_AUTH, ALLOW_USER_SRP_AUTH, \
             not ALLOW_REFRESH_TOKEN_AUTH, ALLOW_USER_PASSWORD_AUTH"
        );
        assert_eq!(
            flows_drift(&[]).unwrap(),
            "auth flows are Cognito's default, not ALLOW_REFRESH_TOKEN_AUTH, ALLOW_USER_PASSWORD_AUTH"
        );
    }
}
