//! Cognito user pools (`cognito-idp`): the pool (admin-created users only, e-mail
//! verified), the web page's client (allowing exactly the sign-in flows the page
//! uses), and the one operator user. In the primary region (the page's `uiRegion`).

use anyhow::{Context, Result};
use aws_sdk_cognitoidentityprovider::types::{
    AdminCreateUserConfigType, AttributeType, DeliveryMediumType, ExplicitAuthFlowsType,
    VerifiedAttributeType,
};
use serde::Serialize;

use crate::context::Cx;
use crate::engine::{At, Drift, Kind, Observed, Pending};
use crate::ours::{Ours, every_page};
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;

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

impl Kind for UserPool {
    fn name(&self) -> &'static str {
        "user-pool"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_pool(cx))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, _: At<'a>, exists: bool) -> Pending<'a, ()> {
        Box::pin(converge_pool(cx, exists))
    }
    fn delete<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_pool(cx))
    }
}

impl Kind for UserPoolClient {
    fn name(&self) -> &'static str {
        "user-pool-client"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_client(cx, at.name))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, at: At<'a>, exists: bool) -> Pending<'a, ()> {
        Box::pin(converge_client(cx, at.name, exists))
    }
    fn delete<'a>(&'a self, cx: &'a Cx, _: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_client(cx))
    }
}

impl Kind for User {
    fn name(&self) -> &'static str {
        "cognito-user"
    }
    fn observe<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe_user(cx, at.name, &self.email))
    }
    fn converge<'a>(&'a self, cx: &'a Cx, at: At<'a>, exists: bool) -> Pending<'a, ()> {
        Box::pin(converge_user(cx, at.name, &self.email, exists))
    }
    fn delete<'a>(&'a self, cx: &'a Cx, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete_user(cx, at.name))
    }
}

fn idp(cx: &Cx) -> &aws_sdk_cognitoidentityprovider::Client {
    &cx.region(Role::Primary).idp
}

/// The stack's user pool among those named like the project: its id.
async fn find_pool(cx: &Cx) -> Result<Ours<String>> {
    let (idp, name) = (idp(cx), cx.stack.project.as_str());
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
    cx.lookup("user pool", name).find(page, tag).await
}

async fn observe_pool(cx: &Cx) -> Result<Observed> {
    let id = match find_pool(cx).await?.or_observed() {
        Ok(id) => id,
        Err(seen) => return Ok(seen),
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

async fn converge_pool(cx: &Cx, exists: bool) -> Result<()> {
    if exists {
        let id = cx.user_pool_id()?;
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

async fn delete_pool(cx: &Cx) -> Result<()> {
    if let Ours::Mine(id) = find_pool(cx).await? {
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
    let Ok(pool) = cx.user_pool_id() else {
        return Ok(None);
    };
    let (idp, pool) = (idp(cx), pool.as_str());
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
async fn observe_client(cx: &Cx, name: &str) -> Result<Observed> {
    let Some(id) = find_client(cx, name).await? else {
        return Ok(Observed::Absent);
    };
    cx.learn(|f| f.client_id = Some(id.clone()));
    let d = idp(cx)
        .describe_user_pool_client()
        .user_pool_id(cx.user_pool_id()?)
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

async fn converge_client(cx: &Cx, name: &str, exists: bool) -> Result<()> {
    let pool = cx.user_pool_id()?;
    if exists {
        let id = cx.client_id()?;
        // UpdateUserPoolClient sets every setting it is not given back to its
        // default; the client has no setting of its own besides its name and flows.
        idp(cx)
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
    let out = idp(cx)
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
    cx.learn(|f| f.client_id = Some(id.to_string()));
    Ok(())
}

async fn delete_client(cx: &Cx) -> Result<()> {
    let (Ok(pool), Some(id)) = (cx.user_pool_id(), cx.facts().client_id) else {
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

async fn observe_user(cx: &Cx, name: &str, email: &str) -> Result<Observed> {
    let Ok(pool) = cx.user_pool_id() else {
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

async fn converge_user(cx: &Cx, name: &str, email: &str, exists: bool) -> Result<()> {
    let pool = cx.user_pool_id()?;
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

async fn delete_user(cx: &Cx, name: &str) -> Result<()> {
    let Ok(pool) = cx.user_pool_id() else {
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
