//! The stack's part of the secondary's readiness check: the secondary's half of
//! the stack against what `provision plan` wants (its REST APIs' stage included),
//! from the provisioning wing, handed to the daemon through its readiness seam
//! (`failover_daemon::readiness::ReadinessPart`), since the daemon never provisions.

use std::sync::Arc;

use async_trait::async_trait;
use failover_config::Settings;
use failover_daemon::backend::StackPart;
use failover_daemon::readiness::{Finding, ReadinessPart, StackNotChecked};
use failover_provision::readiness::{Found, SecondaryStack};

/// What `run` gives the AWS backend: the stack's part for the settings, or one that
/// says why the stack is not compared (no `[stack]`: not provisioned by this tool).
pub fn stack_part() -> StackPart {
    Arc::new(|settings: &Settings| -> Arc<dyn ReadinessPart> {
        match SecondaryStack::from_settings(settings) {
            Ok(stack) => Arc::new(Provisioned(stack)),
            Err(why) => Arc::new(StackNotChecked(why)),
        }
    })
}

struct Provisioned(SecondaryStack);

#[async_trait]
impl ReadinessPart for Provisioned {
    fn name(&self) -> &str {
        "stack"
    }

    async fn check(&self) -> Vec<Finding> {
        self.0.check().await.into_iter().map(finding).collect()
    }
}

fn finding(found: Found) -> Finding {
    match found {
        Found::Missing(label) => Finding::NotReady(format!("missing: {label}")),
        Found::Drift(label, drift) => {
            Finding::NotReady(format!("drift: {label}: {}", drift.join("; ")))
        }
        Found::NotOurs(label, why) => Finding::NotChecked(format!(
            "{label} was not made by failover-monitor ({why}): not compared"
        )),
        Found::Unreadable(label, why) => {
            Finding::Unknown(format!("{label} could not be read: {why}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_drifted_resources_make_the_secondary_not_ready_naming_them() {
        assert_eq!(
            finding(Found::Missing(
                "rest-api photos-config-secondary (secondary)".into()
            )),
            Finding::NotReady("missing: rest-api photos-config-secondary (secondary)".into())
        );
        assert_eq!(
            finding(Found::Drift(
                "rest-api photos-config-secondary (secondary)".into(),
                vec!["stage prod missing".into()]
            )),
            Finding::NotReady(
                "drift: rest-api photos-config-secondary (secondary): stage prod missing".into()
            )
        );
        assert!(matches!(
            finding(Found::Unreadable("x".into(), "AccessDenied".into())),
            Finding::Unknown(_)
        ));
        assert!(matches!(
            finding(Found::NotOurs("x".into(), "no tag".into())),
            Finding::NotChecked(_)
        ));
    }
}
