//! CloudWatch alarms of each region, for the monitor's `cloudwatch_alarm` probes:
//! the two APIs' 5XX errors, the config API's latency, and DynamoDB system errors
//! on both tables. Missing data is not breaching: a quiet API is a healthy one.

use anyhow::Result;
use aws_sdk_cloudwatch::types::{ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};
use serde::Serialize;

use crate::context::StackContext;
use crate::names::{ApiKind, Names};
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Kind, Observed, Pending};

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename = "alarm")]
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

pub fn alarms(names: &Names, role: Role) -> Vec<AlarmSpec> {
    let api = |k| ("ApiName", names.api(k, role));
    let table = |name| ("TableName", name);
    // Any error in a minute raises these.
    let errors = |what: &str, namespace, metric, dimension, description: &str| AlarmSpec {
        name: names.alarm(role, what),
        namespace,
        metric,
        dimension,
        statistic: "Sum",
        threshold: 1.0,
        periods: 1,
        description: description.into(),
    };
    let (gw, ddb) = ("AWS/ApiGateway", "AWS/DynamoDB");
    vec![
        errors(
            "api-5xx",
            gw,
            "5XXError",
            api(ApiKind::Config),
            "the state API answers 5XX",
        ),
        errors(
            "store-api-5xx",
            gw,
            "5XXError",
            api(ApiKind::Store),
            "the comments API answers 5XX",
        ),
        AlarmSpec {
            name: names.alarm(role, "api-latency"),
            namespace: gw,
            metric: "Latency",
            dimension: api(ApiKind::Config),
            statistic: "p99",
            threshold: 2000.0,
            periods: 3,
            description: "the state API's p99 latency is above 2 s for 3 minutes".into(),
        },
        errors(
            "config-table-errors",
            ddb,
            "SystemErrors",
            table(names.config_table()),
            "DynamoDB system errors on the config table",
        ),
        errors(
            "store-table-errors",
            ddb,
            "SystemErrors",
            table(names.store_table()),
            "DynamoDB system errors on the store table",
        ),
    ]
}

impl Kind<StackContext> for AlarmSpec {
    fn name(&self) -> &'static str {
        "cloudwatch-alarm"
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(context, at.role, self))
    }
    fn converge<'a>(&'a self, context: &'a StackContext, at: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge(context, at.role, self))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete(context, at.role, &self.name))
    }
}

async fn observe(context: &StackContext, role: Role, spec: &AlarmSpec) -> Result<Observed> {
    let cw = &context.region(role).cw;
    let out = cw
        .describe_alarms()
        .alarm_names(&spec.name)
        .send()
        .await
        .sdk("cloudwatch:DescribeAlarms")?;
    let tag = move |a: &MetricAlarm| {
        let arn = a.alarm_arn().unwrap_or_default().to_string();
        async move {
            let tags = cw
                .list_tags_for_resource()
                .resource_arn(arn)
                .send()
                .await
                .sdk("cloudwatch:ListTagsForResource")?;
            let tag = tags.tags().iter().find(|t| t.key() == Some(STACK_TAG));
            anyhow::Ok(tag.and_then(|t| t.value().map(String::from)))
        }
    };
    let same = out.metric_alarms().to_vec();
    let a = match context
        .lookup("alarm", &spec.name)
        .among(same, tag)
        .await?
        .or_observed()
    {
        Ok(a) => a,
        Err(seen) => return Ok(seen),
    };
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

async fn converge(context: &StackContext, role: Role, spec: &AlarmSpec) -> Result<()> {
    let mut req = context
        .region(role)
        .cw
        .put_metric_alarm()
        .alarm_name(&spec.name)
        .alarm_description(format!(
            "{} ({})",
            spec.description,
            context.stack.project()
        ))
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
                .value(context.stack.project())
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

async fn delete(context: &StackContext, role: Role, name: &str) -> Result<()> {
    context
        .region(role)
        .cw
        .delete_alarms()
        .alarm_names(name)
        .send()
        .await
        .sdk("cloudwatch:DeleteAlarms")?;
    Ok(())
}
