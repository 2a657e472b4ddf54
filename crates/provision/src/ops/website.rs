//! The web page (`deploy/website/`), embedded in the binary so that an installed
//! binary can deploy it: `provision website-deploy` uploads it with `uiConfig.json`
//! to the website bucket under `console/` (CloudFront's origin path), and
//! `provision website-local` serves that folder on a loopback port, read from the
//! bucket on each request, standing in for CloudFront.
//!
//! Caching. `index.html` and `uiConfig.json` are `no-cache`: a browser revalidates
//! them on every use, since both change with a deploy (and `uiConfig.json` with a
//! re-provisioned stack, whose pool ids are new). The scripts and the style sheet
//! are written under `assets/<version>/`, the version being a hash of their
//! contents, and `index.html` is rewritten to point there; they are `immutable` for
//! a year. A new page is a new folder, so a browser never runs a new `index.html`
//! with an older cached `app.js`, and an unchanged file is never fetched twice.
//! CloudFront's CachingOptimized policy keeps a `no-cache` object for its minimum
//! TTL, one second, and the assets up to a year.

use std::future::Future;
use std::sync::Arc;

use anyhow::Result;
use aws_sdk_s3::primitives::ByteStream;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use tracing::{debug, warn};

use crate::sdk::SdkResult;

/// The folder of the website bucket that holds the page (CloudFront's origin path).
pub const PREFIX: &str = "console/";

/// The page's files as `deploy/website/` holds them (its README is not part of the
/// site); `index.html` first.
pub const FILES: &[(&str, &str)] = &[
    (
        "index.html",
        include_str!("../../../../deploy/website/index.html"),
    ),
    (
        "style.css",
        include_str!("../../../../deploy/website/style.css"),
    ),
    ("app.js", include_str!("../../../../deploy/website/app.js")),
    (
        "cognito.js",
        include_str!("../../../../deploy/website/cognito.js"),
    ),
    (
        "sigv4.js",
        include_str!("../../../../deploy/website/sigv4.js"),
    ),
];

const INDEX: &str = "index.html";
const UI_CONFIG: &str = "uiConfig.json";
/// Revalidate on every use.
pub const NO_CACHE: &str = "no-cache";
/// Never changes under its name: cache for a year.
pub const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// The `Content-Type` of a file of the page, by its extension.
pub fn content_type(name: &str) -> &'static str {
    match name.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("json") => "application/json",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// FNV-1a, 64 bits: stable across builds, so an unchanged page keeps its folder.
fn fnv(data: &[u8], seed: u64) -> u64 {
    data.iter().fold(seed, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The page's version: a hash of every asset's name and contents.
pub fn version() -> String {
    let h = FILES.iter().filter(|(name, _)| *name != INDEX).fold(
        0xcbf2_9ce4_8422_2325,
        |h, (name, text)| {
            let h = fnv(name.as_bytes(), h);
            fnv(&[0], fnv(text.as_bytes(), fnv(&[0], h)))
        },
    );
    format!("{h:016x}")
}

/// `index.html` pointing at the assets of `version`.
pub fn rewrite_index(html: &str, version: &str) -> String {
    FILES
        .iter()
        .filter(|(name, _)| *name != INDEX)
        .fold(html.to_string(), |html, (name, _)| {
            html.replace(
                &format!("=\"{name}\""),
                &format!("=\"assets/{version}/{name}\""),
            )
        })
}

/// The asset version an `index.html` points at, if it is one this module wrote.
fn version_in(html: &str) -> Option<String> {
    let start = html.find("\"assets/")? + "\"assets/".len();
    let v: String = html[start..].chars().take_while(|c| *c != '/').collect();
    (v.len() == 16 && v.chars().all(|c| c.is_ascii_hexdigit())).then_some(v)
}

/// One object `website-deploy` writes.
#[derive(Debug, Clone, Serialize)]
pub struct Object {
    pub key: String,
    #[serde(skip)]
    pub body: String,
    pub bytes: usize,
    pub content_type: &'static str,
    pub cache_control: &'static str,
}

impl Object {
    fn new(key: String, body: String, cache_control: &'static str) -> Self {
        Object {
            content_type: content_type(&key),
            bytes: body.len(),
            key,
            body,
            cache_control,
        }
    }
}

/// What `website-deploy` writes, in the order it writes it: the assets, then
/// `uiConfig.json`, then `index.html`, so that no page ever points at a file that is
/// not there yet.
pub fn objects(ui_config: &str) -> Vec<Object> {
    let v = version();
    let mut out: Vec<Object> = FILES
        .iter()
        .filter(|(name, _)| *name != INDEX)
        .map(|(name, text)| {
            Object::new(
                format!("{PREFIX}assets/{v}/{name}"),
                text.to_string(),
                IMMUTABLE,
            )
        })
        .collect();
    out.push(Object::new(
        format!("{PREFIX}{UI_CONFIG}"),
        ui_config.to_string(),
        NO_CACHE,
    ));
    let index = FILES
        .iter()
        .find(|(name, _)| *name == INDEX)
        .map(|(_, text)| rewrite_index(text, &v))
        .unwrap_or_default();
    out.push(Object::new(format!("{PREFIX}{INDEX}"), index, NO_CACHE));
    out
}

/// What `website-deploy` did.
#[derive(Debug, Serialize)]
pub struct Deployed {
    pub bucket: String,
    pub version: String,
    pub objects: Vec<Object>,
    /// Asset folders of older pages that were deleted.
    pub removed: Vec<String>,
}

/// Uploads the page and `ui_config` to `bucket` under [`PREFIX`], then deletes the
/// asset folders of pages older than the one it replaces (that one stays: a browser
/// that loaded its `index.html` a moment ago still fetches its scripts).
pub async fn deploy(s3: &aws_sdk_s3::Client, bucket: &str, ui_config: &str) -> Result<Deployed> {
    let previous = read(s3, bucket, &format!("{PREFIX}{INDEX}"))
        .await?
        .and_then(|o| version_in(&String::from_utf8_lossy(&o.body)));
    let objects = objects(ui_config);
    for o in &objects {
        s3.put_object()
            .bucket(bucket)
            .key(&o.key)
            .content_type(o.content_type)
            .cache_control(o.cache_control)
            .body(ByteStream::from(o.body.clone().into_bytes()))
            .send()
            .await
            .sdk("s3:PutObject")?;
    }
    let version = version();
    let keep = |v: &str| v == version || previous.as_deref() == Some(v);
    let mut removed = Vec::new();
    let assets = format!("{PREFIX}assets/");
    for key in list(s3, bucket, &assets).await? {
        let Some(v) = key[assets.len()..].split('/').next() else {
            continue;
        };
        if keep(v) {
            continue;
        }
        s3.delete_object()
            .bucket(bucket)
            .key(&key)
            .send()
            .await
            .sdk("s3:DeleteObject")?;
        let folder = format!("{assets}{v}/");
        if !removed.contains(&folder) {
            removed.push(folder);
        }
    }
    Ok(Deployed {
        bucket: bucket.to_string(),
        version,
        objects,
        removed,
    })
}

/// Every key under `prefix`.
async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Result<Vec<String>> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .sdk("s3:ListObjectsV2")?;
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(String::from)),
        );
        token = out.next_continuation_token().map(String::from);
        if token.is_none() {
            return Ok(keys);
        }
    }
}

/// An object as it is served.
struct Served {
    body: Vec<u8>,
    content_type: Option<String>,
    cache_control: Option<String>,
    etag: Option<String>,
}

/// The object at `key`, or `None` when there is none.
async fn read(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<Served>> {
    let Some(out) = s3
        .get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .absent("s3:GetObject", &["NoSuchKey"])?
    else {
        return Ok(None);
    };
    let (content_type, cache_control, etag) = (
        out.content_type().map(String::from),
        out.cache_control().map(String::from),
        out.e_tag().map(String::from),
    );
    let body = out.body.collect().await?.into_bytes().to_vec();
    Ok(Some(Served {
        body,
        content_type,
        cache_control,
        etag,
    }))
}

/// Percent-decodes a URL path; `None` when it does not decode to UTF-8.
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = path.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The bucket key a request path reads, as CloudFront maps it with the origin path
/// `/console` and the default root object `index.html` (for `/` only).
pub fn key_for(path: &str) -> Option<String> {
    let rest = percent_decode(path.strip_prefix('/')?)?;
    Some(if rest.is_empty() {
        format!("{PREFIX}{INDEX}")
    } else {
        format!("{PREFIX}{rest}")
    })
}

/// The bucket being served.
struct Site {
    s3: aws_sdk_s3::Client,
    bucket: String,
}

/// Whether the page is in `bucket` (its `index.html` under [`PREFIX`]).
pub async fn deployed(s3: &aws_sdk_s3::Client, bucket: &str) -> Result<bool> {
    Ok(read(s3, bucket, &format!("{PREFIX}{INDEX}"))
        .await?
        .is_some())
}

/// Serves `bucket`'s [`PREFIX`] on `listener` until `shutdown` completes: `GET` and
/// `HEAD` only, each request read from the bucket.
pub async fn serve(
    listener: tokio::net::TcpListener,
    s3: aws_sdk_s3::Client,
    bucket: String,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let site = Arc::new(Site { s3, bucket });
    let router = Router::new().fallback(get(page)).with_state(site);
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

fn text(status: StatusCode, body: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn page(State(site): State<Arc<Site>>, uri: Uri) -> Response {
    let Some(key) = key_for(uri.path()) else {
        return text(StatusCode::BAD_REQUEST, "malformed path\n".into());
    };
    let answer = match read(&site.s3, &site.bucket, &key).await {
        Ok(Some(o)) => {
            let mut resp = o.body.into_response();
            let headers = resp.headers_mut();
            let ct = o
                .content_type
                .as_deref()
                .unwrap_or("application/octet-stream");
            for (name, value) in [
                (header::CONTENT_TYPE, Some(ct)),
                (header::CACHE_CONTROL, o.cache_control.as_deref()),
                (header::ETAG, o.etag.as_deref()),
            ] {
                if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                    headers.insert(name, v);
                }
            }
            resp
        }
        Ok(None) => {
            let hint = if key.ends_with(INDEX) {
                " (run `failover-monitor provision website-deploy`)"
            } else {
                ""
            };
            text(
                StatusCode::NOT_FOUND,
                format!("not found: s3://{}/{key}{hint}\n", site.bucket),
            )
        }
        Err(e) => {
            warn!(
                key,
                error = format!("{e:#}"),
                "reading the website bucket failed"
            );
            text(StatusCode::BAD_GATEWAY, format!("{e:#}\n"))
        }
    };
    debug!(
        path = uri.path(),
        status = answer.status().as_u16(),
        "served"
    );
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo_file(name: &str) -> String {
        std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../deploy/website")
                .join(name),
        )
        .unwrap()
    }

    #[test]
    fn every_file_of_the_page_is_embedded_and_nothing_else() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/website");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".md") && n != UI_CONFIG)
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = FILES.iter().map(|(n, _)| n.to_string()).collect();
        embedded.sort();
        assert_eq!(embedded, on_disk);
        for (name, text) in FILES {
            assert_eq!(*text, repo_file(name), "{name}");
        }
    }

    #[test]
    fn every_module_a_script_imports_is_deployed_beside_it() {
        for (name, text) in FILES.iter().filter(|(n, _)| n.ends_with(".js")) {
            for part in text.split("from \"./").skip(1) {
                let module = part.split('"').next().unwrap();
                assert!(
                    FILES.iter().any(|(n, _)| *n == module),
                    "{name} imports ./{module}, which is not deployed"
                );
            }
        }
    }

    #[test]
    fn the_index_points_at_the_assets_of_its_version() {
        let v = version();
        assert_eq!(v.len(), 16);
        assert_eq!(v, version(), "stable");
        let html = rewrite_index(FILES[0].1, &v);
        assert!(
            html.contains(&format!("href=\"assets/{v}/style.css\"")),
            "{html}"
        );
        assert!(
            html.contains(&format!("src=\"assets/{v}/app.js\"")),
            "{html}"
        );
        for (name, _) in &FILES[1..] {
            assert!(
                !html.contains(&format!("=\"{name}\"")),
                "{name} left in {html}"
            );
        }
        assert_eq!(version_in(&html), Some(v));
        assert_eq!(version_in(FILES[0].1), None);
        assert_eq!(version_in("<a href=\"assets/notahash/x.js\">"), None);
    }

    #[test]
    fn objects_have_their_content_type_and_cache_policy_and_index_comes_last() {
        let objects = objects("{\"uiRegion\": \"us-east-1\"}\n");
        let v = version();
        let keys: Vec<&str> = objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("console/assets/{v}/style.css"),
                format!("console/assets/{v}/app.js"),
                format!("console/assets/{v}/cognito.js"),
                format!("console/assets/{v}/sigv4.js"),
                "console/uiConfig.json".into(),
                "console/index.html".into(),
            ]
        );
        let by = |suffix: &str| objects.iter().find(|o| o.key.ends_with(suffix)).unwrap();
        assert_eq!(by("index.html").content_type, "text/html; charset=utf-8");
        assert_eq!(by("index.html").cache_control, NO_CACHE);
        assert_eq!(by("uiConfig.json").content_type, "application/json");
        assert_eq!(by("uiConfig.json").cache_control, NO_CACHE);
        assert_eq!(by("uiConfig.json").body, "{\"uiRegion\": \"us-east-1\"}\n");
        assert_eq!(by("app.js").content_type, "text/javascript; charset=utf-8");
        assert_eq!(by("app.js").cache_control, IMMUTABLE);
        assert_eq!(by("app.js").body, repo_file("app.js"));
        assert_eq!(by("style.css").content_type, "text/css; charset=utf-8");
        assert_eq!(content_type("photo.bin"), "application/octet-stream");
    }

    #[test]
    fn request_paths_map_to_keys_as_cloudfront_maps_them() {
        assert_eq!(key_for("/").as_deref(), Some("console/index.html"));
        assert_eq!(key_for("/app.js").as_deref(), Some("console/app.js"));
        assert_eq!(
            key_for("/assets/0123/app.js").as_deref(),
            Some("console/assets/0123/app.js")
        );
        assert_eq!(key_for("/a%20b%C3%A9").as_deref(), Some("console/a bé"));
        assert_eq!(key_for("/bad%zz"), None);
        assert_eq!(key_for("/bad%ff"), None, "not UTF-8");
        assert_eq!(key_for("/cut%2"), None);
        assert_eq!(key_for("no-slash"), None);
    }
}
