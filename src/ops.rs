//! The original stack's day-to-day operations, on the provisioned stack: upload a
//! tinted test photo, list and add the comments of a photo. Each goes where the
//! application's clients would go (the region the config item points at), and says
//! which region and which path (the store API, or the table directly) it used.

use std::io::Cursor;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_sdk_dynamodb::types::AttributeValue;
use image::{ImageFormat, Rgb, RgbImage};
use serde::Serialize;

use crate::config::Settings;
use crate::model::{AppState, Role};
use crate::provision::api::{ApiKind, STAGE};
use crate::provision::sdk::{Region, SdkResult};

/// A random RFC 4122 version 4 UUID.
pub fn uuid() -> String {
    let mut b: [u8; 16] = std::array::from_fn(|_| fastrand::u8(..));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The test picture: a colour gradient with a grid, tinted with `tint` at `amount`
/// (0..=1), the way the original tinted its sample photo with ImageMagick.
pub fn test_image(size: u32, tint: [u8; 3], amount: f32) -> RgbImage {
    RgbImage::from_fn(size, size, |x, y| {
        let base = if x % 32 == 0 || y % 32 == 0 {
            [40, 40, 40]
        } else {
            [
                (x * 255 / size) as u8,
                (y * 255 / size) as u8,
                ((x + y) * 255 / (2 * size)) as u8,
            ]
        };
        let mix = |b: u8, t: u8| (f32::from(b) * (1.0 - amount) + f32::from(t) * amount) as u8;
        Rgb([
            mix(base[0], tint[0]),
            mix(base[1], tint[1]),
            mix(base[2], tint[2]),
        ])
    })
}

pub fn png(img: &RgbImage) -> Result<Vec<u8>> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, ImageFormat::Png)?;
    Ok(buf.into_inner())
}

/// Where the clients would write now: the config item's region, refusing while
/// fenced (the page blocks writes then). `--region` overrides.
pub async fn target(settings: &Settings, region: Option<Role>) -> Result<(Role, Region)> {
    if let Some(role) = region {
        let (r, _) = Region::load(settings.regions.get(role)).await;
        return Ok((role, r));
    }
    let mut last = None;
    // Clients read the primary's state first and fall back to the secondary.
    for role in Role::BOTH {
        let (r, _) = Region::load(settings.regions.get(role)).await;
        let item = r
            .ddb
            .get_item()
            .table_name(settings.config_table())
            .key("appId", AttributeValue::S(settings.app.id.clone()))
            .send()
            .await
            .sdk("dynamodb:GetItem");
        match item.map(|o| o.item) {
            Ok(Some(item)) => {
                let state: AppState = item
                    .get("state")
                    .and_then(|v| v.as_s().ok())
                    .context("the config item has no state")?
                    .parse()
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                let to = match state {
                    AppState::Active => Role::Primary,
                    AppState::Failover => Role::Secondary,
                    AppState::Fenced => bail!(
                        "the state is fenced: writes are blocked during a switch (pass --region to write anyway)"
                    ),
                };
                let (r, _) = Region::load(settings.regions.get(to)).await;
                return Ok((to, r));
            }
            Ok(None) => last = Some(format!("no config item in {role}")),
            Err(e) => last = Some(format!("{role}: {e:#}")),
        }
    }
    bail!(
        "cannot read the state from either region ({}); pass --region",
        last.unwrap_or_default()
    )
}

#[derive(Debug, Serialize)]
pub struct Upload {
    pub region: Role,
    pub bucket: String,
    pub key: String,
    pub photo_id: String,
    pub bytes: usize,
    pub tint: String,
}

/// Uploads `file`, or a freshly tinted test image, to `public/<uuid>`.
pub async fn upload(
    settings: &Settings,
    region: Option<Role>,
    file: Option<&std::path::Path>,
) -> Result<Upload> {
    let (role, r) = target(settings, region).await?;
    let (body, tint, content_type) = match file {
        Some(path) => {
            let body =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let ct = image::guess_format(&body)
                .map(|f| f.to_mime_type())
                .unwrap_or("application/octet-stream");
            (body, "none".to_string(), ct)
        }
        None => {
            let tint = [fastrand::u8(..), fastrand::u8(..), fastrand::u8(..)];
            let amount = 0.2 + fastrand::f32() * 0.5;
            let body = png(&test_image(256, tint, amount))?;
            let name = format!(
                "#{:02x}{:02x}{:02x} at {:.0}%",
                tint[0],
                tint[1],
                tint[2],
                amount * 100.0
            );
            (body, name, "image/png")
        }
    };
    let photo_id = uuid();
    let bucket = format!("{}-{role}", settings.app.project);
    let key = format!("public/{photo_id}");
    r.s3.put_object()
        .bucket(&bucket)
        .key(&key)
        .content_type(content_type)
        .body(body.clone().into())
        .send()
        .await
        .sdk("s3:PutObject")?;
    Ok(Upload {
        region: role,
        bucket,
        key,
        photo_id,
        bytes: body.len(),
        tint,
    })
}

/// A photo id picked at random from the bucket's `public/` listing.
pub async fn random_photo(settings: &Settings, role: Role, r: &Region) -> Result<String> {
    let bucket = format!("{}-{role}", settings.app.project);
    let out =
        r.s3.list_objects_v2()
            .bucket(&bucket)
            .prefix("public/")
            .max_keys(1000)
            .send()
            .await
            .sdk("s3:ListObjectsV2")?;
    let ids: Vec<&str> = out
        .contents()
        .iter()
        .filter_map(|o| o.key()?.strip_prefix("public/"))
        .filter(|k| !k.is_empty())
        .collect();
    if ids.is_empty() {
        bail!(
            "no photo in s3://{bucket}/public/: upload one first (`failover-monitor photo upload`)"
        );
    }
    Ok(ids[fastrand::usize(..ids.len())].to_string())
}

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

/// The store API's comments URL in that region: the API Gateway invoke URL on AWS,
/// the emulator's user-request path against an emulator (which cannot run it).
async fn comments_url(settings: &Settings, role: Role, r: &Region, photo: &str) -> Result<String> {
    let name = format!(
        "{}-{}-{role}",
        settings.app.project,
        ApiKind::Store.as_str()
    );
    // The stack's own API of that name (the one carrying its tag) if there is one.
    let mut apis = crate::provision::api::named(&r.apigw, &name, &settings.app.project).await?;
    apis.sort_by_key(|(_, ours)| !ours);
    let id = apis
        .first()
        .map(|(id, _)| id.clone())
        .with_context(|| format!("no REST API named {name}"))?;
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

async fn api_list(url: &str) -> Result<Vec<Comment>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        comments: Vec<Comment>,
    }
    let resp = http()?.get(url).send().await?;
    let status = resp.status();
    let body = resp.text().await?;
    if !status.is_success() {
        bail!("HTTP {status}: {}", snippet(&body));
    }
    let a: Answer = serde_json::from_str(&body)
        .with_context(|| format!("not a comments answer: {}", snippet(&body)))?;
    Ok(a.comments)
}

pub async fn list(
    settings: &Settings,
    region: Option<Role>,
    photo: Option<String>,
) -> Result<(Via, Vec<Comment>)> {
    let (role, r) = target_for_read(settings, region).await?;
    let photo = match photo {
        Some(p) => p,
        None => random_photo(settings, role, &r).await?,
    };
    let api = match comments_url(settings, role, &r, &photo).await {
        Ok(url) => api_list(&url).await.map(|c| (url, c)),
        Err(e) => Err(e),
    };
    let api_error = match api {
        Ok((url, comments)) => {
            let via = Via {
                region: role,
                photo_id: photo,
                path: format!("store API {url}"),
                api_error: None,
            };
            return Ok((via, comments));
        }
        Err(e) => format!("{e:#}"),
    };
    let table = format!("{}-store", settings.app.project);
    let out = r
        .ddb
        .query()
        .table_name(&table)
        .index_name("photoId")
        .key_condition_expression("photoId = :v1")
        .expression_attribute_values(":v1", AttributeValue::S(photo.clone()))
        .send()
        .await
        .sdk("dynamodb:Query")?;
    let s = |item: &std::collections::HashMap<String, AttributeValue>, k: &str| {
        item.get(k)
            .and_then(|v| v.as_s().ok())
            .cloned()
            .unwrap_or_default()
    };
    let comments = out
        .items()
        .iter()
        .map(|i| Comment {
            comment_id: s(i, "commentId"),
            user: s(i, "user"),
            message: s(i, "message"),
        })
        .collect();
    let via = Via {
        region: role,
        photo_id: photo,
        path: format!("table {table}"),
        api_error: Some(api_error),
    };
    Ok((via, comments))
}

/// Reads follow the state too, but a fenced state still serves reads.
async fn target_for_read(settings: &Settings, region: Option<Role>) -> Result<(Role, Region)> {
    match target(settings, region).await {
        Ok(t) => Ok(t),
        Err(e) if e.to_string().contains("fenced") => target(settings, Some(Role::Primary)).await,
        Err(e) => Err(e),
    }
}

pub async fn add(
    settings: &Settings,
    region: Option<Role>,
    photo: Option<String>,
    user: &str,
    message: &str,
) -> Result<(Via, Comment)> {
    let (role, r) = target(settings, region).await?;
    let photo = match photo {
        Some(p) => p,
        None => random_photo(settings, role, &r).await?,
    };
    let comment = Comment {
        comment_id: uuid(),
        user: user.to_string(),
        message: message.to_string(),
    };
    let body = serde_json::json!({"commentId": comment.comment_id, "message": message,
        "photoId": photo, "user": user});
    let api = match comments_url(settings, role, &r, &photo).await {
        Ok(url) => {
            let sent = async {
                let resp = http()?
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .send()
                    .await?;
                let status = resp.status();
                if !status.is_success() {
                    let text = resp.text().await.unwrap_or_default();
                    bail!("HTTP {status}: {}", snippet(&text));
                }
                Ok(())
            };
            sent.await.map(|()| url)
        }
        Err(e) => Err(e),
    };
    let api_error = match api {
        Ok(url) => {
            let via = Via {
                region: role,
                photo_id: photo,
                path: format!("store API {url}"),
                api_error: None,
            };
            return Ok((via, comment));
        }
        Err(e) => format!("{e:#}"),
    };
    let table = format!("{}-store", settings.app.project);
    let s = |v: &str| AttributeValue::S(v.to_string());
    r.ddb
        .put_item()
        .table_name(&table)
        .item("commentId", s(&comment.comment_id))
        .item("photoId", s(&photo))
        .item("user", s(user))
        .item("message", s(message))
        .send()
        .await
        .sdk("dynamodb:PutItem")?;
    let via = Via {
        region: role,
        photo_id: photo,
        path: format!("table {table}"),
        api_error: Some(api_error),
    };
    Ok((via, comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_version_4_and_distinct() {
        let a = uuid();
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
        assert!(matches!(&a[19..20], "8" | "9" | "a" | "b"));
        assert_ne!(a, uuid());
    }

    #[test]
    fn the_tint_moves_every_pixel_toward_its_colour() {
        let plain = test_image(64, [0, 0, 0], 0.0);
        let red = test_image(64, [255, 0, 0], 0.5);
        let (p, r) = (plain.get_pixel(10, 10), red.get_pixel(10, 10));
        assert!(r[0] > p[0], "red channel rises: {p:?} -> {r:?}");
        assert!(r[1] < p[1] || p[1] == 0, "green falls: {p:?} -> {r:?}");
        let bytes = png(&red).unwrap();
        assert_eq!(&bytes[1..4], b"PNG");
        let back = image::load_from_memory(&bytes).unwrap().to_rgb8();
        assert_eq!(back.get_pixel(10, 10), r);
    }
}
