//! A permission change in one emulated region (deploy/local/emulator/iam.py): the
//! calls signed with the chosen access keys are answered `AccessDenied` as AWS
//! answers a role whose policy lost the permission; every other caller is served.

/// The access key id the monitor processes of [`crate::monitor`] sign with when a
/// test gives them their own (`AWS_ACCESS_KEY_ID`).
pub const MONITOR_KEY: &str = "MONITORROLE";

/// Refuses the calls of `keys` in the region at `url` (an empty list allows all).
pub async fn deny(url: &str, keys: &[&str]) {
    let body = serde_json::json!({ "deny": keys }).to_string();
    let resp = reqwest::Client::new()
        .post(format!("{url}/_emulator/iam"))
        .body(body)
        .send()
        .await
        .expect("the region answers");
    assert!(resp.status().is_success(), "{}", resp.status());
}
