//! Photos: a tinted test picture (the way the original tinted its sample with
//! ImageMagick) uploaded to `public/<uuid>` in the bucket the state points at, and a
//! photo picked at random for the comment commands.

use anyhow::{Context, Result, bail};
use serde::Serialize;

use super::png::{Picture, content_type};
use super::{Access, bucket, target, uuid};
use crate::sdk::{Region, SdkResult};
use failover_config::Settings;
use failover_core::model::Role;

/// The test picture: a colour gradient with a grid, tinted with `tint` at `amount`
/// (0..=1).
pub fn test_image(size: u32, tint: [u8; 3], amount: f32) -> Picture {
    Picture::from_fn(size, size, |x, y| {
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
        [
            mix(base[0], tint[0]),
            mix(base[1], tint[1]),
            mix(base[2], tint[2]),
        ]
    })
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

/// The body to upload: `file`, or a freshly tinted test image; with its tint (or
/// `none`) and content type.
fn body(file: Option<&std::path::Path>) -> Result<(Vec<u8>, String, &'static str)> {
    if let Some(path) = file {
        let body = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let ct = content_type(&body);
        return Ok((body, "none".to_string(), ct));
    }
    let tint = [fastrand::u8(..), fastrand::u8(..), fastrand::u8(..)];
    let amount = 0.2 + fastrand::f32() * 0.5;
    let body = test_image(256, tint, amount).png();
    let name = format!(
        "#{:02x}{:02x}{:02x} at {:.0}%",
        tint[0],
        tint[1],
        tint[2],
        amount * 100.0
    );
    Ok((body, name, "image/png"))
}

/// Uploads `file`, or a freshly tinted test image, to `public/<uuid>`.
pub async fn upload(
    settings: &Settings,
    region: Option<Role>,
    file: Option<&std::path::Path>,
) -> Result<Upload> {
    let (role, r) = target(settings, region, Access::Write).await?;
    let (body, tint, content_type) = body(file)?;
    let photo_id = uuid();
    let bucket = bucket(settings, role);
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
    let bucket = bucket(settings, role);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tint_moves_every_pixel_toward_its_colour() {
        let plain = test_image(64, [0, 0, 0], 0.0);
        let red = test_image(64, [255, 0, 0], 0.5);
        let (p, r) = (plain.pixel(10, 10), red.pixel(10, 10));
        assert!(r[0] > p[0], "red channel rises: {p:?} -> {r:?}");
        assert!(r[1] < p[1] || p[1] == 0, "green falls: {p:?} -> {r:?}");
        let bytes = red.png();
        assert_eq!(&bytes[1..4], b"PNG");
    }
}
