//! CloudWatch alarms of each region, for the monitor's `cloudwatch_alarm` probes:
//! the two APIs' 5XX errors, the config API's latency, and DynamoDB system errors
//! on both tables. Missing data is not breaching: a quiet API is a healthy one.

use anyhow::Result;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, Statistic, Tag};
use serde::Serialize;

use super::sdk::{STACK_TAG, SdkResult};
use super::{Cx, Observed, Stack, api::ApiKind};
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlarmSpec {
    pub name: String,
    pub namespace: &'static str,
    pub metric: &'static str,
    pub dimension: (&'static str, String),
    /// `Sum`, or a percentile such as `p99`.
    pub statistic: &'static str,
    pub threshold: f64,
    pub periods: i32,
    pub description: String,
}

pub fn alarms(stack: &Stack, role: Role) -> Vec<AlarmSpec> {
    let p = &stack.project;
    let api = |k| ("ApiName", stack.api_name(k, role));
    vec![
        AlarmSpec {
            name: format!("{p}-{role}-api-5xx"),
            namespace: "AWS/ApiGateway",
            metric: "5XXError",
            dimension: api(ApiKind::Config),
            statistic: "Sum",
            threshold: 1.0,
            periods: 1,
            description: "the state API answers 5XX".into(),
        },
        AlarmSpec {
            name: format!("{p}-{role}-store-api-5xx"),
            namespace: "AWS/ApiGateway",
            metric: "5XXError",
            dimension: api(ApiKind::Store),
            statistic: "Sum",
            threshold: 1.0,
            periods: 1,
            description: "the comments API answers 5XX".into(),
        },
        AlarmSpec {
            name: format!("{p}-{role}-api-latency"),
            namespace: "AWS/ApiGateway",
            metric: "Latency",
            dimension: api(ApiKind::Config),
            statistic: "p99",
            threshold: 2000.0,
            periods: 3,
            description: "the state API's p99 latency is above 2 s for 3 minutes".into(),
        },
        AlarmSpec {
            name: format!("{p}-{role}-config-table-errors"),
            namespace: "AWS/DynamoDB",
            metric: "SystemErrors",
            dimension: ("TableName", stack.config_table()),
            statistic: "Sum",
            threshold: 1.0,
            periods: 1,
            description: "DynamoDB system errors on the config table".into(),
        },
        AlarmSpec {
            name: format!("{p}-{role}-store-table-errors"),
            namespace: "AWS/DynamoDB",
            metric: "SystemErrors",
            dimension: ("TableName", stack.store_table()),
            statistic: "Sum",
            threshold: 1.0,
            periods: 1,
            description: "DynamoDB system errors on the store table".into(),
        },
    ]
}

pub async fn observe(cx: &Cx, role: Role, spec: &AlarmSpec) -> Result<Observed> {
    let cw = &cx.region(role).cw;
    let out = cw
        .describe_alarms()
        .alarm_names(&spec.name)
        .send()
        .await
        .sdk("cloudwatch:DescribeAlarms")?;
    let Some(a) = out.metric_alarms().first() else {
        return Ok(Observed::Absent);
    };
    let tags = cw
        .list_tags_for_resource()
        .resource_arn(a.alarm_arn().unwrap_or_default())
        .send()
        .await
        .sdk("cloudwatch:ListTagsForResource")?;
    if !tags
        .tags()
        .iter()
        .any(|t| t.key() == Some(STACK_TAG) && t.value() == Some(cx.stack.project.as_str()))
    {
        return Ok(Observed::Foreign(format!(
            "alarm without the {STACK_TAG} tag"
        )));
    }
    let mut drift = Vec::new();
    let stat_ok = match a.statistic() {
        Some(s) => s.as_str() == spec.statistic,
        None => a.extended_statistic() == Some(spec.statistic),
    };
    let dim_ok = a.dimensions().iter().any(|d| {
        d.name() == Some(spec.dimension.0) && d.value() == Some(spec.dimension.1.as_str())
    });
    if a.namespace() != Some(spec.namespace) || a.metric_name() != Some(spec.metric) || !dim_ok {
        drift.push("metric differs".to_string());
    }
    if !stat_ok
        || a.threshold() != Some(spec.threshold)
        || a.evaluation_periods() != Some(spec.periods)
        || a.period() != Some(60)
    {
        drift.push("statistic, threshold or periods differ".to_string());
    }
    Ok(Observed::drifted(drift))
}

pub async fn converge(cx: &Cx, role: Role, spec: &AlarmSpec) -> Result<()> {
    let mut req = cx
        .region(role)
        .cw
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(format!("{} ({})", spec.description, cx.stack.project))
        .namespace(spec.namespace)
        .metric_name(spec.metric)
        .dimensions(
            Dimension::builder()
                .name(spec.dimension.0)
                .value(&spec.dimension.1)
                .build(),
        )
        .period(60)
        .evaluation_periods(spec.periods)
        .threshold(spec.threshold)
        .comparison_operator(if spec.threshold > 1.0 {
            ComparisonOperator::GreaterThanThreshold
        } else {
            ComparisonOperator::GreaterThanOrEqualToThreshold
        })
        .treat_missing_data("notBreaching")
        .tags(
            Tag::builder()
                .key(STACK_TAG)
                .value(&cx.stack.project)
                .build(),
        );
    req = if spec.statistic.starts_with('p') {
        req.extended_statistic(spec.statistic)
    } else {
        req.statistic(Statistic::from(spec.statistic))
    };
    req.send().await.sdk("cloudwatch:PutMetricAlarm")?;
    Ok(())
}

pub async fn delete(cx: &Cx, role: Role, name: &str) -> Result<()> {
    cx.region(role)
        .cw
        .delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .sdk("cloudwatch:DeleteAlarms")?;
    Ok(())
}
