//! `cloudwatch_alarm`: every named alarm must exist and not be in ALARM;
//! INSUFFICIENT_DATA counts as ok or down as configured.

use aws_sdk_cloudwatch::types::StateValue;

use super::ProbeError;
use failover_config::InsufficientData;

pub struct AlarmProbe {
    client: aws_sdk_cloudwatch::Client,
    alarms: Vec<String>,
    insufficient_data: InsufficientData,
}

impl AlarmProbe {
    pub fn new(
        client: aws_sdk_cloudwatch::Client,
        alarms: Vec<String>,
        insufficient_data: InsufficientData,
    ) -> Self {
        Self {
            client,
            alarms,
            insufficient_data,
        }
    }

    pub async fn check(&self) -> Result<(), ProbeError> {
        let out = self
            .client
            .describe_alarms()
            .set_alarm_names(Some(self.alarms.clone()))
            .send()
            .await
            .map_err(|e| ProbeError::sdk("describe_alarms", &self.alarms.join(","), &e))?;
        let found = out.metric_alarms();
        let mut problems = Vec::new();
        let mut missing = Vec::new();
        for name in &self.alarms {
            let Some(alarm) = found.iter().find(|a| a.alarm_name() == Some(name.as_str())) else {
                missing.push(format!("{name}: no such alarm"));
                continue;
            };
            match alarm.state_value() {
                Some(StateValue::Alarm) => problems.push(format!(
                    "{name}: ALARM ({})",
                    alarm.state_reason().unwrap_or("no reason given")
                )),
                Some(StateValue::InsufficientData)
                    if self.insufficient_data == InsufficientData::Down =>
                {
                    problems.push(format!("{name}: INSUFFICIENT_DATA"))
                }
                _ => {}
            }
        }
        match (problems.is_empty(), missing.is_empty()) {
            (true, true) => Ok(()),
            // An alarm in ALARM is about the region, whatever else is missing.
            (false, _) => Err(ProbeError::Unhealthy(
                problems
                    .into_iter()
                    .chain(missing)
                    .collect::<Vec<_>>()
                    .join("; "),
            )),
            // Only missing alarms: a name that does not exist says nothing of the
            // region.
            (true, false) => Err(ProbeError::Caller(missing.join("; "))),
        }
    }
}
