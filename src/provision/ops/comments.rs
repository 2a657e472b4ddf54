//! The comments of a photo, the way the original's page reads and writes them:
//! through the region's store API (`GET|POST /comments/{photoId}`) when it answers,
//! else on the store table directly. Either way the answer says which path was
//! taken, and why the API was not.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;

use super::photo::random_photo;
use super::{Access, target, uuid};
use crate::config::Settings;
use crate::model::Role;
use crate::provision::ours::Ours;
use crate::provision::resources::api::{self, ApiKind, STAGE};
use crate::provision::sdk::{Region, SdkResult};

#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub comment_id: String,
    pub user: String,
    pub message: String,
}

/// Which way a comment operation went.
#[derive(Debug, Serialize)]
pub struct Via {
    pub region: Role,
    pub photo_id: String,
    /// `store API <url>` or `table <name>`.
    pub path: String,
    /// Why the API was not used, when it was not.
    pub api_error: Option<String>,
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} region, photo {}, via {}",
            self.region, self.photo_id, self.path
        )?;
        match &self.api_error {
            Some(e) => write!(f, " (store API unavailable: {e})"),
            None => Ok(()),
        }
    }
}

/// Where one comment operation goes: the region, its clients, the photo.
struct Route {
    role: Role,
    region: Region,
    photo: String,
    table: String,
}

impl Route {
    async fn new(
        settings: &Settings,
        region: Option<Role>,
        access: Access,
        photo: Option<String>,
    ) -> Result<Self> {
        let (role, region) = target(settings, region, access).await?;
        let photo = match photo {
            Some(p) => p,
            None => random_photo(settings, role, &region).await?,
        };
        let table = format!("{}-store", settings.app.project);
        Ok(Route {
            role,
            region,
            photo,
            table,
        })
    }

    /// The way it went: the store API at `url`, or (`Err`) the table because of
    /// what the API answered.
    fn via(self, api: Result<String, String>) -> Via {
        let (path, api_error) = match api {
            Ok(url) => (format!("store API {url}"), None),
            Err(why) => (format!("table {}", self.table), Some(why)),
        };
        Via {
            region: self.role,
            photo_id: self.photo,
            path,
            api_error,
        }
    }
}

/// The store API's comments URL in that region: the API Gateway invoke URL on AWS,
/// the emulator's user-request path against an emulator (which cannot run it).
async fn comments_url(settings: &Settings, route: &Route) -> Result<String> {
    let (role, r) = (route.role, &route.region);
    let name = format!(
        "{}-{}-{role}",
        settings.app.project,
        ApiKind::Store.as_str()
    );
    // The stack's own API of that name (the one carrying its tag) if there is one.
    let id = match api::find_ours(&r.apigw, &name, &settings.app.project).await? {
        Ours::Mine(id) => id,
        Ours::Foreign { same, .. } => same.into_iter().next().unwrap_or_default(),
        Ours::Absent => bail!("no REST API named {name}"),
    };
    let photo = &route.photo;
    Ok(match &r.endpoint {
        Some(e) => format!(
            "{}/restapis/{id}/{STAGE}/_user_request_/comments/{photo}",
            e.trim_end_matches('/')
        ),
        None => format!(
            "https://{id}.execute-api.{}.amazonaws.com/{STAGE}/comments/{photo}",
            r.name
        ),
    })
}

/// The start of an answer's body on one line, for error messages.
fn snippet(body: &str) -> String {
    body.split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(100)
        .collect()
}

fn http() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?)
}

/// The body of a successful answer; an error with the status otherwise.
async fn answered(resp: reqwest::Response) -> Result<String> {
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if !status.is_success() {
        bail!("HTTP {status}: {}", snippet(&body));
    }
    Ok(body)
}

async fn api_list(url: &str) -> Result<Vec<Comment>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        comments: Vec<Comment>,
    }
    let body = answered(http()?.get(url).send().await?).await?;
    let a: Answer = serde_json::from_str(&body)
        .with_context(|| format!("not a comments answer: {}", snippet(&body)))?;
    Ok(a.comments)
}

async fn api_add(url: &str, body: String) -> Result<()> {
    let resp = http()?
        .post(url)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    answered(resp).await.map(drop)
}

async fn table_list(route: &Route) -> Result<Vec<Comment>> {
    let out = route
        .region
        .ddb
        .query()
        .table_name(&route.table)
        .index_name("photoId")
        .key_condition_expression("photoId = :v1")
        .expression_attribute_values(":v1", AttributeValue::S(route.photo.clone()))
        .send()
        .await
        .sdk("dynamodb:Query")?;
    let s = |item: &HashMap<String, AttributeValue>, k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    Ok(out
        .items()
        .iter()
        .map(|i| Comment {
            comment_id: s(i, "commentId"),
            user: s(i, "user"),
            message: s(i, "message"),
        })
        .collect())
}

async fn table_add(route: &Route, comment: &Comment) -> Result<()> {
    let s = |v: &str| AttributeValue::S(v.to_string());
    route
        .region
        .ddb
        .put_item()
        .table_name(&route.table)
        .item("commentId", s(&comment.comment_id))
        .item("photoId", s(&route.photo))
        .item("user", s(&comment.user))
        .item("message", s(&comment.message))
        .send()
        .await
        .sdk("dynamodb:PutItem")?;
    Ok(())
}

/// A photo's comments (a random photo of the bucket when none is given).
pub async fn list(
    settings: &Settings,
    region: Option<Role>,
    photo: Option<String>,
) -> Result<(Via, Vec<Comment>)> {
    let route = Route::new(settings, region, Access::Read, photo).await?;
    let api = match comments_url(settings, &route).await {
        Ok(url) => api_list(&url).await.map(|c| (url, c)),
        Err(e) => Err(e),
    };
    match api {
        Ok((url, comments)) => Ok((route.via(Ok(url)), comments)),
        Err(e) => {
            let comments = table_list(&route).await?;
            Ok((route.via(Err(format!("{e:#}"))), comments))
        }
    }
}

/// Adds a comment to a photo (a random photo of the bucket when none is given).
pub async fn add(
    settings: &Settings,
    region: Option<Role>,
    photo: Option<String>,
    user: &str,
    message: &str,
) -> Result<(Via, Comment)> {
    let route = Route::new(settings, region, Access::Write, photo).await?;
    let comment = Comment {
        comment_id: uuid(),
        user: user.to_string(),
        message: message.to_string(),
    };
    let body = serde_json::json!({"commentId": comment.comment_id, "message": message,
        "photoId": route.photo, "user": user});
    let api = match comments_url(settings, &route).await {
        Ok(url) => api_add(&url, body.to_string()).await.map(|()| url),
        Err(e) => Err(e),
    };
    let via = match api {
        Ok(url) => route.via(Ok(url)),
        Err(e) => {
            table_add(&route, &comment).await?;
            route.via(Err(format!("{e:#}")))
        }
    };
    Ok((via, comment))
}
