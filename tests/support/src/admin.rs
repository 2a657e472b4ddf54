//! What a running daemon exposes, as the tests observe it: `GET /v1/status` (the
//! verdict, the item, each probe's health, leadership and quorum), `GET /metrics`,
//! `/readyz`; and the admin API's other routes. Every request carries the admin token
//! except where a test passes another one (or none) on purpose.

use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::monitor::{Monitor, TOKEN};
use crate::wait_for;

/// The counter of the transitions an instance committed (labels `from`, `to`, `trigger`).
pub const TRANSITIONS: &str = "failover_monitor_transitions_total";

/// Longer than any admin request takes; a suspended monitor does not hang a test.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("an HTTP client")
}

/// A response body as JSON, or as a JSON string when it is not JSON.
fn body(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

/// GET a JSON document from a monitor's admin API, with the token (`Null` while the
/// monitor does not answer, or answers something else than JSON).
pub async fn get_json(url: String) -> Value {
    let Ok(resp) = client().get(url).bearer_auth(TOKEN).send().await else {
        return Value::Null;
    };
    let text = resp.text().await.unwrap_or_default();
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Whether a status document lists probes, all of them up.
pub fn all_probes_up(status: &Value) -> bool {
    status["probes"]
        .as_array()
        .is_some_and(|ps| !ps.is_empty() && ps.iter().all(|p| p["health"] == "up"))
}

impl Monitor {
    /// GET `path` with the token; the status code and the body (JSON, or a string).
    /// Panics when the monitor does not answer.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        self.get_with_token(path, Some(TOKEN)).await
    }

    /// GET with `token` as the bearer token, or without one: for the tests of the
    /// authentication itself.
    pub async fn get_with_token(&self, path: &str, token: Option<&str>) -> (u16, Value) {
        let mut req = client().get(self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: the admin server does not answer: {e}"));
        let code = resp.status().as_u16();
        (code, body(resp.text().await.unwrap_or_default()))
    }

    /// POST a JSON `body` to `path` with the token.
    pub async fn post(&self, path: &str, body: &str) -> (u16, Value, HeaderMap) {
        self.post_with_token(path, Some(TOKEN), body).await
    }

    /// POST with `token` as the bearer token, or without one: for the tests of the
    /// authentication itself.
    pub async fn post_with_token(
        &self,
        path: &str,
        token: Option<&str>,
        json: &str,
    ) -> (u16, Value, HeaderMap) {
        let mut req = client()
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(json.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: the admin server does not answer: {e}"));
        let code = resp.status().as_u16();
        let headers = resp.headers().clone();
        (code, body(resp.text().await.unwrap_or_default()), headers)
    }

    /// `GET /v1/status` (`Null` while the monitor does not answer).
    pub async fn status(&self) -> Value {
        get_json(self.url("/v1/status")).await
    }

    /// `GET /metrics`. Panics when the monitor does not answer: an absent series must
    /// never be mistaken for a value of 0 because nothing was read.
    pub async fn metrics(&self) -> Metrics {
        self.try_metrics()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
    }

    async fn try_metrics(&self) -> Result<Metrics, String> {
        let resp = client()
            .get(self.url("/metrics"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .map_err(|e| format!("the admin server does not answer: {e}"))?;
        let code = resp.status();
        let text = resp.text().await.map_err(|e| e.to_string())?;
        if code != 200 {
            return Err(format!("{code}: {text}"));
        }
        Ok(Metrics(text))
    }

    /// Waits until `/readyz` says ready (the config item read, the first evaluation done).
    pub async fn wait_ready(&self, limit: Duration) {
        wait_for(limit, "ready", async || {
            match client()
                .get(self.url("/readyz"))
                .bearer_auth(TOKEN)
                .send()
                .await
            {
                Ok(r) if r.status() == 200 => Ok(()),
                Ok(r) => Err(format!("{}; log:\n{}", r.status(), self.log_tail(20))),
                Err(e) => Err(format!("{e}; log:\n{}", self.log_tail(20))),
            }
        })
        .await
    }

    /// Waits until the status satisfies `pred`; returns that status.
    pub async fn wait_status(
        &self,
        limit: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        wait_for(limit, what, async || {
            let s = self.status().await;
            if pred(&s) {
                Ok(s)
            } else {
                Err(format!("{s}\nlog:\n{}", self.log_tail(20)))
            }
        })
        .await
    }

    /// Waits until the policy's verdict (status `policy`: `hold: ...`, `act: ...`,
    /// `blocked (...): ...`) is `verdict`; returns that status.
    pub async fn wait_verdict(&self, verdict: &str, limit: Duration) -> Value {
        self.wait_status(limit, &format!("verdict {verdict:?}"), |s| {
            s["policy"] == verdict
        })
        .await
    }

    /// Waits until the series `name{labels}` has the value `want`.
    pub async fn wait_metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        want: f64,
        limit: Duration,
    ) {
        wait_for(limit, format!("{name}{labels:?} = {want}"), async || {
            let m = self.try_metrics().await?;
            match m.value(name, labels) {
                Some(v) if v == want => Ok(()),
                other => Err(format!("{other:?}")),
            }
        })
        .await
    }
}

/// A `/metrics` page (Prometheus text format).
pub struct Metrics(String);

impl Metrics {
    pub fn text(&self) -> &str {
        &self.0
    }

    /// The samples of `name` whose labels include `labels`, as values.
    fn samples<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&str, &str)],
    ) -> impl Iterator<Item = f64> + 'a {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(move |line| {
                let (series, value) = line.rsplit_once(' ')?;
                let (n, set) = match series.split_once('{') {
                    Some((n, rest)) => (n, rest.strip_suffix('}')?),
                    None => (series, ""),
                };
                let has =
                    |(k, v): &(&str, &str)| set.split(',').any(|kv| kv == format!("{k}=\"{v}\""));
                (n == name && labels.iter().all(has))
                    .then(|| value.parse().ok())
                    .flatten()
            })
    }

    /// The value of the first series `name` with `labels` (`None` when there is none).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.samples(name, labels).next()
    }

    /// The sum over every series `name` with `labels` (0 when there is none), such as
    /// every transition this instance committed.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples(name, labels).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn series_are_found_by_name_and_labels() {
        let m = Metrics(
            "# HELP failover_monitor_paused x\n\
             failover_monitor_paused 1\n\
             failover_monitor_transitions_total{from=\"active\",to=\"failover\",trigger=\"auto\"} 1\n\
             failover_monitor_transitions_total{from=\"failover\",to=\"active\",trigger=\"auto\"} 2\n\
             failover_monitor_transitions_total{from=\"active\",to=\"fenced\",trigger=\"manual\"} 1\n\
             failover_monitor_paused_other 7\n"
                .into(),
        );
        assert_eq!(m.value("failover_monitor_paused", &[]), Some(1.0));
        assert_eq!(m.value("failover_monitor_leader", &[]), None);
        let t = "failover_monitor_transitions_total";
        assert_eq!(m.sum(t, &[("trigger", "auto")]), 3.0);
        assert_eq!(m.sum(t, &[]), 4.0);
        assert_eq!(m.value(t, &[("to", "active")]), Some(2.0));
        assert_eq!(m.sum(t, &[("trigger", "none")]), 0.0);
    }
}
