//! The comments of a photo, the way the web page reads and writes them: through the
//! region's store API (`GET /comments/{photoId}` open, `POST` signed with SigV4 for
//! `execute-api` with the caller's credentials: the method is `AWS_IAM`) when it
//! answers, else on the store table directly. Either way the answer says which path
//! was taken, and in a few words why the API was not (its status and error code;
//! the whole answer goes to the debug log).

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use anyhow::{Result, bail};
use aws_credential_types::Credentials;
use aws_credential_types::provider::ProvideCredentials;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use tracing::debug;

use super::photo::random_photo;
use super::{Access, target, uuid};
use crate::names::{ApiKind, Names};
use crate::ownership::Found;
use crate::resources::api::{self, stage_url};
use crate::sdk::{Region, SdkResult};
use failover_config::Settings;
use failover_core::model::Role;

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
        let table = Names::new(&settings.app.project).store_table();
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
/// the emulator's user-request path against an emulator.
async fn comments_url(settings: &Settings, route: &Route) -> Result<String> {
    let (role, r) = (route.role, &route.region);
    let name = Names::new(&settings.app.project).api(ApiKind::Store, role);
    // The stack's own API of that name (the one carrying its tag) if there is one.
    let id = match api::find_ours(&r.apigw, &name, &settings.app.project).await? {
        Found::Ours(id) => id,
        Found::Foreign { same, .. } => same.into_iter().next().unwrap_or_default(),
        Found::Absent => bail!("no REST API named {name}"),
    };
    let base = stage_url(&id, &r.name, r.endpoint.as_deref());
    Ok(format!("{base}/comments/{}", route.photo))
}

fn http() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| e.to_string())
}

/// The store API's answer to `request`: its body when it is a success, else why
/// not, in a few words. The whole answer goes to the debug log.
async fn call(url: &str, request: reqwest::RequestBuilder) -> Result<String, String> {
    let resp = request.send().await.map_err(|e| unreachable(&e))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    if status.is_success() {
        return Ok(body);
    }
    debug!(%url, %status, %body, "the store API refused");
    Err(refusal(status, &body))
}

/// Why a request got no answer: a timeout, or the innermost cause.
fn unreachable(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "no answer within 10 s".into();
    }
    let mut cause: &dyn std::error::Error = e;
    while let Some(inner) = cause.source() {
        cause = inner;
    }
    format!("no answer: {cause}")
}

/// `HTTP <status> <reason>`, the reason being the error code the body names (an
/// XML `<Code>`, a JSON `__type` or `code`, a JSON `message`, an HTML `<title>`),
/// else the status's own name.
pub fn refusal(status: reqwest::StatusCode, body: &str) -> String {
    let reason = error_code(body)
        .map(|c| {
            // An HTML title repeats the status: `500 Internal Server Error`.
            let c = c.trim();
            c.strip_prefix(status.as_str())
                .unwrap_or(c)
                .trim()
                .to_string()
        })
        .filter(|c| !c.is_empty())
        .or_else(|| status.canonical_reason().map(String::from))
        .unwrap_or_default();
    let reason: String = reason.chars().take(80).collect();
    format!("HTTP {} {reason}", status.as_u16())
        .trim_end()
        .to_string()
}

fn error_code(body: &str) -> Option<String> {
    let between = |open: &str, close: &str| {
        let start = body.find(open)? + open.len();
        let len = body[start..].find(close)?;
        Some(body[start..start + len].to_string())
    };
    if let Ok(v) = serde_json::from_str::<serde_json::Value>(body) {
        let field = ["__type", "code", "message", "Message"]
            .iter()
            .find_map(|k| v.get(k).and_then(|x| x.as_str()))?;
        // `com.amazonaws...#ResourceNotFoundException`: the name after the `#`.
        return Some(field.rsplit('#').next().unwrap_or(field).to_string());
    }
    between("<Code>", "</Code>").or_else(|| {
        let lower = body.to_ascii_lowercase();
        let start = lower.find("<title>")? + "<title>".len();
        let len = lower[start..].find("</title>")?;
        Some(body[start..start + len].to_string())
    })
}

async fn api_list(url: &str) -> Result<Vec<Comment>, String> {
    #[derive(serde::Deserialize)]
    struct Answer {
        comments: Vec<Comment>,
    }
    let body = call(url, http()?.get(url)).await?;
    serde_json::from_str::<Answer>(&body)
        .map(|a| a.comments)
        .map_err(|e| {
            debug!(%url, %body, "the store API's answer");
            format!("its answer is not a comments list ({e})")
        })
}

/// The headers that sign `POST url` with `body` for API Gateway (`execute-api`)
/// (`failover_aws::sign::sign_post`, which the daemon's client-path write shares).
pub fn sign_post(
    url: &str,
    body: &str,
    region: &str,
    credentials: Credentials,
    time: SystemTime,
) -> Result<Vec<(String, String)>> {
    failover_aws::sign::sign_post(url, body, region, credentials, time).map_err(anyhow::Error::msg)
}

/// The caller's credentials, by the SDK's chain (any key works on an emulator).
async fn credentials(region: &Region) -> Result<Credentials, String> {
    let provider = region
        .credentials
        .as_ref()
        .ok_or("no AWS credentials to sign with")?;
    provider
        .provide_credentials()
        .await
        .map_err(|e| format!("no AWS credentials to sign with ({e})"))
}

async fn api_add(url: &str, body: String, region: &Region) -> Result<(), String> {
    let creds = credentials(region).await?;
    let headers = sign_post(url, &body, &region.name, creds, SystemTime::now())
        .map_err(|e| format!("{e:#}"))?;
    let mut request = http()?.post(url).body(body);
    for (k, v) in headers {
        request = request.header(k, v);
    }
    call(url, request).await.map(drop)
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
        Err(e) => Err(format!("{e:#}")),
    };
    match api {
        Ok((url, comments)) => Ok((route.via(Ok(url)), comments)),
        Err(why) => {
            let comments = table_list(&route).await?;
            Ok((route.via(Err(why)), comments))
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
        Ok(url) => api_add(&url, body.to_string(), &route.region)
            .await
            .map(|()| url),
        Err(e) => Err(format!("{e:#}")),
    };
    if api.is_err() {
        table_add(&route, &comment).await?;
    }
    Ok((route.via(api), comment))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::StatusCode;

    #[test]
    fn a_refusal_is_the_status_and_the_error_code_the_body_names() {
        let s3 = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<Error><Code>NoSuchBucket</Code>\
                  <Message>The specified bucket does not exist</Message></Error>";
        assert_eq!(refusal(StatusCode::NOT_FOUND, s3), "HTTP 404 NoSuchBucket");
        let page = "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n\
                    <h1>Internal Server Error</h1><p>The server encountered an internal error</p>";
        assert_eq!(
            refusal(StatusCode::INTERNAL_SERVER_ERROR, page),
            "HTTP 500 Internal Server Error"
        );
        let gateway = r#"{"message": "Missing Authentication Token"}"#;
        assert_eq!(
            refusal(StatusCode::FORBIDDEN, gateway),
            "HTTP 403 Missing Authentication Token"
        );
        let ddb = r#"{"__type": "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException",
                      "message": "Requested resource not found"}"#;
        assert_eq!(
            refusal(StatusCode::BAD_REQUEST, ddb),
            "HTTP 400 ResourceNotFoundException"
        );
        assert_eq!(refusal(StatusCode::BAD_GATEWAY, ""), "HTTP 502 Bad Gateway");
        assert_eq!(
            refusal(StatusCode::SERVICE_UNAVAILABLE, "overloaded, try later"),
            "HTTP 503 Service Unavailable"
        );
    }

    #[test]
    fn a_comment_post_is_signed_for_execute_api_in_its_region() {
        // 2015-08-30T12:36:00Z, the date of AWS's SigV4 examples.
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160);
        let url = "https://a1b2.execute-api.ap-northeast-1.amazonaws.com/prod/comments/p-1";
        let creds = Credentials::new("AKIDEXAMPLE", "secret", None, None, "test");
        let body = r#"{"message":"it's"}"#;
        let headers = sign_post(url, body, "ap-northeast-1", creds.clone(), time).unwrap();
        let get = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(get("content-type").as_deref(), Some("application/json"));
        assert_eq!(get("x-amz-date").as_deref(), Some("20150830T123600Z"));
        assert_eq!(get("x-amz-security-token"), None);
        let auth = get("authorization").unwrap();
        assert!(
            auth.starts_with(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/ap-northeast-1/execute-api/aws4_request, \
                 SignedHeaders=content-type;host;x-amz-date, Signature="
            ),
            "{auth}"
        );
        let signature = auth.rsplit("Signature=").next().unwrap();
        assert_eq!(signature.len(), 64);
        assert!(signature.chars().all(|c| c.is_ascii_hexdigit()));
        // The same request signs the same; another body does not.
        let again = sign_post(url, body, "ap-northeast-1", creds.clone(), time).unwrap();
        assert_eq!(again, headers);
        let other = sign_post(url, "{}", "ap-northeast-1", creds, time).unwrap();
        assert_ne!(other, headers);

        // Temporary credentials send their session token, signed.
        let temporary = Credentials::new("ASIAEXAMPLE", "secret", Some("token".into()), None, "t");
        let headers = sign_post(url, body, "ap-northeast-1", temporary, time).unwrap();
        assert!(
            headers
                .iter()
                .any(|(k, v)| k == "x-amz-security-token" && v == "token")
        );
        let auth = &headers
            .iter()
            .find(|(k, _)| k == "authorization")
            .unwrap()
            .1;
        assert!(
            auth.contains("SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"),
            "{auth}"
        );
    }

    #[test]
    fn the_way_a_comment_went_is_one_line() {
        let via = Via {
            region: Role::Primary,
            photo_id: "p1".into(),
            path: "table photos-store".into(),
            api_error: Some(refusal(StatusCode::NOT_FOUND, "<Code>NoSuchBucket</Code>")),
        };
        assert_eq!(
            via.to_string(),
            "primary region, photo p1, via table photos-store \
             (store API unavailable: HTTP 404 NoSuchBucket)"
        );
    }
}
