//! The secondary's readiness, checked continuously: can it take the traffic now?
//!
//! A check is made of parts behind one seam, [`ReadinessPart`]: the daemon's own
//! (the secondary's tables and their replicas, [`TablesPart`]; a conditional write
//! of this instance's item in the commit region, [`CommitWritePart`]) and the one
//! the binary supplies from the provisioning wing (the secondary's half of the stack
//! as `provision plan` wants it, its REST APIs' stage included), since this crate
//! never provisions. [`run`] checks every part every `[readiness] every` and sends
//! a [`Report`] to the decision loop, which shows the [`Readiness`] in status and
//! `failover_monitor_secondary_ready`, and hands the [`SecondaryReadiness`] to the
//! policy's safety rule (`[readiness] failover`).
//!
//! Each part says what it found ([`Finding`]): as it should be, not checked (and
//! why: the stack was not provisioned by this tool, say), not ready (evidence about
//! the secondary), or unknown (the part could not be checked for a reason about the
//! monitor: its permissions, its credentials, a call that did not answer). A run
//! concludes not ready when any part found the secondary not ready; otherwise
//! unknown when any part was unknown; otherwise ready. Unknown never blocks a
//! failover: evidence about the monitor is not evidence about the region.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::clock::WallClock;
use crate::gate::Gate;
use failover_aws::dynamo::{Table, s};
use failover_aws::{Blame, classify, describe};
use failover_config::{Settings, TablesMode};
use failover_core::model::keys;
use failover_core::policy::SecondaryReadiness;

/// Longest one part of a check may take; a part that takes longer is unknown.
pub const PART_TIMEOUT: Duration = Duration::from_secs(60);

/// The secondary's readiness as status shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Readiness {
    /// The last check found every part it could check as it should be, and none
    /// unknown.
    pub ready: bool,
    /// When the last check ended (RFC 3339).
    pub checked_at: String,
    /// Why it is not ready (first), then what could not be known (`unknown: ...`)
    /// and what was not checked (`not checked: ...`).
    pub reasons: Vec<String>,
}

/// What one part of a check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// Not ready: something the secondary needs is missing or wrong.
    NotReady(String),
    /// The part could not be checked, for a reason about the monitor.
    Unknown(String),
    /// Deliberately not checked, and why (not a fault).
    NotChecked(String),
}

/// One part of the readiness check.
#[async_trait]
pub trait ReadinessPart: Send + Sync {
    /// How reasons name it (`tables`, `commit-write`, `stack`).
    fn name(&self) -> &str;

    /// Checks once; an empty answer means all is as it should be.
    async fn check(&self) -> Vec<Finding>;
}

/// One run of the check, for the decision loop.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub readiness: Readiness,
    /// What the policy's safety rule reads.
    pub conclusion: SecondaryReadiness,
}

/// The conclusion of one run from every part's findings (`(part, finding)`).
pub fn conclude(findings: &[(String, Finding)], checked_at: String) -> Report {
    let mut not_ready = Vec::new();
    let mut unknown = Vec::new();
    let mut not_checked = Vec::new();
    for (part, finding) in findings {
        match finding {
            Finding::NotReady(why) => not_ready.push(format!("{part}: {why}")),
            Finding::Unknown(why) => unknown.push(format!("unknown: {part}: {why}")),
            Finding::NotChecked(why) => not_checked.push(format!("not checked: {part}: {why}")),
        }
    }
    let conclusion = if !not_ready.is_empty() {
        SecondaryReadiness::NotReady(not_ready.clone())
    } else if !unknown.is_empty() {
        SecondaryReadiness::Unknown
    } else {
        SecondaryReadiness::Ready
    };
    let ready = conclusion == SecondaryReadiness::Ready;
    Report {
        readiness: Readiness {
            ready,
            checked_at,
            reasons: not_ready
                .into_iter()
                .chain(unknown)
                .chain(not_checked)
                .collect(),
        },
        conclusion,
    }
}

/// Checks every part once, each within [`PART_TIMEOUT`].
pub async fn check_once(parts: &[Arc<dyn ReadinessPart>], clock: &dyn WallClock) -> Report {
    let mut findings = Vec::new();
    for part in parts {
        let name = part.name().to_owned();
        match tokio::time::timeout(PART_TIMEOUT, part.check()).await {
            Ok(found) => findings.extend(found.into_iter().map(|f| (name.clone(), f))),
            Err(_) => findings.push((
                name,
                Finding::Unknown(format!("did not finish within {PART_TIMEOUT:?}")),
            )),
        }
    }
    conclude(&findings, clock.rfc3339())
}

/// Checks the parts at once and then every `every` (a run that takes longer
/// delays the next), sending each run's report, until the loop is gone.
pub async fn run(
    parts: Vec<Arc<dyn ReadinessPart>>,
    every: Duration,
    clock: Arc<dyn WallClock>,
    tx: mpsc::Sender<Report>,
    gate: Gate,
) {
    loop {
        gate.pass().await;
        let report = check_once(&parts, clock.as_ref()).await;
        if tx.send(report).await.is_err() {
            return;
        }
        tokio::time::sleep(every).await;
    }
}

/// The secondary's config and data tables: each active in the secondary, every
/// replica of it active, and (global tables) a replica in the primary.
pub struct TablesPart {
    pub tables: Vec<Table>,
    pub mode: TablesMode,
    pub primary_region: String,
}

impl TablesPart {
    pub fn new(settings: &Settings, client: aws_sdk_dynamodb::Client) -> Self {
        let limit = settings.monitor.write_timeout;
        Self {
            tables: [settings.config_table(), settings.store_table()]
                .into_iter()
                .map(|name| Table::new(client.clone(), name, limit))
                .collect(),
            mode: settings.tables_mode(),
            primary_region: settings.regions.primary.name.clone(),
        }
    }
}

#[async_trait]
impl ReadinessPart for TablesPart {
    fn name(&self) -> &str {
        "tables"
    }

    async fn check(&self) -> Vec<Finding> {
        let mut found = Vec::new();
        for t in &self.tables {
            let call = t.client.describe_table().table_name(&t.name).send();
            let answer = match tokio::time::timeout(t.limit, call).await {
                Err(_) => {
                    found.push(Finding::Unknown(format!(
                        "DescribeTable {}: timed out after {:?}",
                        t.name, t.limit
                    )));
                    continue;
                }
                Ok(Err(e)) => {
                    let not_found = e
                        .as_service_error()
                        .is_some_and(|e| e.is_resource_not_found_exception());
                    let why = format!("DescribeTable {}: {}", t.name, describe(&e));
                    found.push(if not_found {
                        Finding::NotReady(format!("table {} does not exist here", t.name))
                    } else {
                        // Denied, throttled or unanswered: nothing learned about the
                        // table (the probes judge whether the region answers).
                        Finding::Unknown(why)
                    });
                    continue;
                }
                Ok(Ok(answer)) => answer,
            };
            let Some(table) = answer.table() else {
                found.push(Finding::Unknown(format!(
                    "DescribeTable {}: no description",
                    t.name
                )));
                continue;
            };
            let status = table.table_status().map(|s| s.as_str().to_owned());
            if status.as_deref() != Some("ACTIVE") {
                found.push(Finding::NotReady(format!(
                    "table {} is {}",
                    t.name,
                    status.as_deref().unwrap_or("of no status")
                )));
            }
            let replicas = table.replicas();
            for r in replicas {
                let state = r.replica_status().map(|s| s.as_str().to_owned());
                if state.as_deref() != Some("ACTIVE") {
                    found.push(Finding::NotReady(format!(
                        "table {}: the replica in {} is {}",
                        t.name,
                        r.region_name().unwrap_or("?"),
                        state.as_deref().unwrap_or("of no status")
                    )));
                }
            }
            if self.mode == TablesMode::Global
                && !replicas.is_empty()
                && !replicas
                    .iter()
                    .any(|r| r.region_name() == Some(self.primary_region.as_str()))
            {
                found.push(Finding::NotReady(format!(
                    "table {} has no replica in {}",
                    t.name, self.primary_region
                )));
            }
        }
        found
    }
}

/// A conditional write of this instance's own item (`<app id>#ready#<instance>`,
/// never the config item) in the commit region's config table: the failover is
/// committed there.
pub struct CommitWritePart {
    pub table: Table,
    pub key: String,
    pub instance: String,
    pub clock: Arc<dyn WallClock>,
}

impl CommitWritePart {
    pub fn new(settings: &Settings, table: Table, clock: Arc<dyn WallClock>) -> Self {
        let instance = settings.monitor.instance_id.clone();
        Self {
            table,
            key: keys::ready(&settings.app.id, &instance),
            instance,
            clock,
        }
    }
}

#[async_trait]
impl ReadinessPart for CommitWritePart {
    fn name(&self) -> &str {
        "commit-write"
    }

    async fn check(&self) -> Vec<Finding> {
        let t = &self.table;
        let call = t
            .client
            .put_item()
            .table_name(&t.name)
            .item("appId", s(&self.key))
            .item("instance", s(&self.instance))
            .item("at", s(self.clock.rfc3339()))
            .condition_expression("attribute_not_exists(appId) OR #i = :i")
            .expression_attribute_names("#i", "instance")
            .expression_attribute_values(":i", s(&self.instance))
            .send();
        let result = match tokio::time::timeout(t.limit, call).await {
            Err(_) => {
                return vec![Finding::NotReady(format!(
                    "PutItem {} in {}: timed out after {:?}",
                    self.key, t.name, t.limit
                ))];
            }
            Ok(r) => r,
        };
        match result {
            Ok(_) => Vec::new(),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
            {
                vec![Finding::Unknown(format!(
                    "PutItem {}: the item belongs to another writer",
                    self.key
                ))]
            }
            Err(e) => {
                let why = format!("PutItem {} in {}: {}", self.key, t.name, describe(&e));
                match classify(&e) {
                    // The region failed the write: a failover could not commit.
                    Blame::Region => vec![Finding::NotReady(why)],
                    // Denied for this item (its own IAM grant) or refused as built:
                    // about the monitor, and perhaps not about the config item.
                    Blame::Monitor => vec![Finding::Unknown(why)],
                }
            }
        }
    }
}

/// The part the daemon puts in the place of the stack's when no provisioning wing
/// supplies one (a daemon built without it).
pub struct StackNotChecked(pub String);

#[async_trait]
impl ReadinessPart for StackNotChecked {
    fn name(&self) -> &str {
        "stack"
    }

    async fn check(&self) -> Vec<Finding> {
        vec![Finding::NotChecked(self.0.clone())]
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::clock::SystemClock;

    fn at() -> String {
        "2026-12-04T10:00:00.000Z".into()
    }

    fn f(part: &str, finding: Finding) -> (String, Finding) {
        (part.into(), finding)
    }

    #[test]
    fn any_part_not_ready_makes_the_secondary_not_ready_and_names_it_first() {
        let r = conclude(
            &[
                f(
                    "tables",
                    Finding::Unknown("DescribeTable: AccessDenied".into()),
                ),
                f(
                    "stack",
                    Finding::NotReady("missing: rest-api x (secondary)".into()),
                ),
            ],
            at(),
        );
        assert!(!r.readiness.ready);
        assert_eq!(
            r.conclusion,
            SecondaryReadiness::NotReady(vec!["stack: missing: rest-api x (secondary)".into()])
        );
        assert_eq!(
            r.readiness.reasons,
            [
                "stack: missing: rest-api x (secondary)",
                "unknown: tables: DescribeTable: AccessDenied"
            ]
        );
    }

    #[test]
    fn a_part_that_could_not_check_leaves_the_readiness_unknown_never_not_ready() {
        let r = conclude(
            &[f("commit-write", Finding::Unknown("AccessDenied".into()))],
            at(),
        );
        assert_eq!(r.conclusion, SecondaryReadiness::Unknown);
        assert!(!r.readiness.ready);
        assert_eq!(r.readiness.reasons, ["unknown: commit-write: AccessDenied"]);
    }

    #[test]
    fn what_was_not_checked_is_said_but_leaves_the_secondary_ready() {
        let r = conclude(
            &[f("stack", Finding::NotChecked("no [stack] section".into()))],
            at(),
        );
        assert_eq!(r.conclusion, SecondaryReadiness::Ready);
        assert!(r.readiness.ready);
        assert_eq!(
            r.readiness.reasons,
            ["not checked: stack: no [stack] section"]
        );
        let r = conclude(&[], at());
        assert!(r.readiness.ready && r.readiness.reasons.is_empty());
    }

    /// A daemon built without the provisioning wing says that the stack is not
    /// checked, and why, without calling the secondary not ready.
    #[tokio::test]
    async fn a_stack_without_a_checker_is_said_not_checked() {
        let part = Arc::new(StackNotChecked("built without provisioning".into()));
        let report = check_once(&[part as Arc<dyn ReadinessPart>], &SystemClock).await;
        assert_eq!(report.conclusion, SecondaryReadiness::Ready);
        assert_eq!(
            report.readiness.reasons,
            ["not checked: stack: built without provisioning"]
        );
    }

    /// A part whose findings the test sets, counting its runs.
    struct Scripted {
        found: Mutex<Vec<Finding>>,
        runs: Mutex<u32>,
        hang: bool,
    }

    #[async_trait]
    impl ReadinessPart for Scripted {
        fn name(&self) -> &str {
            "scripted"
        }
        async fn check(&self) -> Vec<Finding> {
            *self.runs.lock().unwrap() += 1;
            if self.hang {
                std::future::pending::<()>().await;
            }
            self.found.lock().unwrap().clone()
        }
    }

    fn scripted(hang: bool) -> Arc<Scripted> {
        Arc::new(Scripted {
            found: Mutex::new(Vec::new()),
            runs: Mutex::new(0),
            hang,
        })
    }

    #[tokio::test(start_paused = true)]
    async fn checks_at_start_then_every_period_and_reports_each_run() {
        let part = scripted(false);
        let (tx, mut rx) = mpsc::channel(4);
        let task = tokio::spawn(run(
            vec![part.clone() as Arc<dyn ReadinessPart>],
            Duration::from_secs(300),
            Arc::new(SystemClock),
            tx,
            Gate::open(),
        ));
        let first = rx.recv().await.unwrap();
        assert!(first.readiness.ready);
        *part.found.lock().unwrap() = vec![Finding::NotReady("stage prod missing".into())];
        tokio::time::sleep(Duration::from_secs(299)).await;
        assert!(rx.try_recv().is_err(), "no second run before `every`");
        let second = rx.recv().await.unwrap();
        assert_eq!(
            second.conclusion,
            SecondaryReadiness::NotReady(vec!["scripted: stage prod missing".into()])
        );
        assert_eq!(*part.runs.lock().unwrap(), 2);
        task.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn a_part_that_hangs_is_unknown_after_its_timeout() {
        let report = check_once(&[scripted(true) as Arc<dyn ReadinessPart>], &SystemClock).await;
        assert_eq!(report.conclusion, SecondaryReadiness::Unknown);
        assert!(
            report.readiness.reasons[0].starts_with("unknown: scripted: did not finish"),
            "{:?}",
            report.readiness.reasons
        );
    }
}
