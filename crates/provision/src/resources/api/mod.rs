//! The two API Gateway REST APIs of each region, with the original stack's mapping
//! templates (fixed): the config API (`GET /state/{appId}`: a DynamoDB Query answered
//! as `{"state": ..., "version": N}` or `{}`) and the store API (`GET|POST
//! /comments/{photoId}`, the POST signed: `AWS_IAM`), both with an `OPTIONS` CORS
//! mock. Stage `prod`.
//!
//! The stage keeps serving the deployment it was given, so the whole definition is
//! hashed into the deployment's description: a changed template, method or role is
//! a drift, and converging it ends with a new deployment.

mod methods;

use std::collections::HashMap;

use anyhow::{Context, Result, bail};
use aws_sdk_apigateway::types::{EndpointConfiguration, EndpointType, IntegrationType};
use serde::Serialize;

use super::iam;
use crate::context::StackContext;
use crate::names::Names;
use crate::ownership::{Found, Lookup};
use crate::sdk::{STACK_TAG, SdkResult};
use failover_core::model::Role;
use failover_provision_engine::{At, Drift, Fact, Kind, Observed, Pending};

pub use crate::names::ApiKind;
pub use methods::{Authorization, Method, definition_tag, methods};

const KIND: &str = "rest-api";

/// One of a region's two REST APIs (its name says which, and where).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RestApi(pub ApiKind);

/// The fact [`RestApi`] publishes: the API's id.
pub fn api_id(names: &Names, kind: ApiKind, role: Role) -> Fact {
    Fact::new(format!("{KIND} {} ({role})", names.api(kind, role)), "id")
}

pub const STAGE: &str = "prod";
const JSON: &str = "application/json";

fn table_of(context: &StackContext, kind: ApiKind) -> String {
    match kind {
        ApiKind::Config => context.names().config_table(),
        ApiKind::Store => context.names().store_table(),
    }
}

fn role_arn(context: &StackContext, kind: ApiKind) -> Result<String> {
    let role = context.names().role(&format!("{}-api", kind.as_str()));
    context.know(&iam::role_arn(&role))
}

impl Kind<StackContext> for RestApi {
    fn name(&self) -> &'static str {
        KIND
    }
    fn observe<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, Observed> {
        Box::pin(observe(context, at.role, self.0))
    }
    fn converge<'a>(&'a self, context: &'a StackContext, at: At<'a>, _: bool) -> Pending<'a, ()> {
        Box::pin(converge(context, at.role, self.0))
    }
    fn delete<'a>(&'a self, context: &'a StackContext, at: At<'a>) -> Pending<'a, ()> {
        Box::pin(delete(context, at.role, self.0))
    }
}

/// The REST APIs called `name` in the region (names are not unique in API
/// Gateway), the stack's own among them: its id.
pub async fn find_ours(
    gw: &aws_sdk_apigateway::Client,
    name: &str,
    project: &str,
) -> Result<Found<String>> {
    let page = move |position: Option<String>| async move {
        let out = gw
            .get_rest_apis()
            .limit(500)
            .set_position(position)
            .send()
            .await
            .sdk("apigateway:GetRestApis")?;
        let same = out
            .items()
            .iter()
            .filter(|a| a.name() == Some(name))
            .map(|a| {
                let tag = a.tags().and_then(|t| t.get(STACK_TAG)).cloned();
                (a.id().unwrap_or_default().to_string(), tag)
            })
            .collect();
        anyhow::Ok((same, out.position().map(String::from)))
    };
    // The listing carries the tags.
    let tag = |api: &(String, Option<String>)| std::future::ready(anyhow::Ok(api.1.clone()));
    let lookup = Lookup {
        what: "REST API",
        name,
        project,
    };
    Ok(lookup.find(page, tag).await?.map(|(id, _)| id))
}

async fn find(context: &StackContext, role: Role, kind: ApiKind) -> Result<Found<String>> {
    let name = context.names().api(kind, role);
    find_ours(&context.region(role).apigw, &name, context.stack.project()).await
}

/// Resource path -> id.
async fn resources(gw: &aws_sdk_apigateway::Client, id: &str) -> Result<HashMap<String, String>> {
    let out = gw
        .get_resources()
        .rest_api_id(id)
        .limit(500)
        .send()
        .await
        .sdk("apigateway:GetResources")?;
    Ok(out
        .items()
        .iter()
        .filter_map(|r| Some((r.path()?.to_string(), r.id()?.to_string())))
        .collect())
}

fn integration_uri(region: &str, action: &str) -> String {
    format!("arn:aws:apigateway:{region}:dynamodb:action/{action}")
}

async fn observe(context: &StackContext, role: Role, kind: ApiKind) -> Result<Observed> {
    let id = match find(context, role, kind).await?.or_observed() {
        Ok(id) => id,
        Err(seen) => return Ok(seen),
    };
    context.learn(api_id(context.names(), kind, role), id.clone());
    let gw = &context.region(role).apigw;
    let methods = methods(kind, &table_of(context, kind));
    let mut drift = Drift::default();
    for d in integration_drift(gw, &id, &context.region(role).name, &methods).await? {
        drift.add(d);
    }
    let stage = gw
        .get_stage()
        .rest_api_id(&id)
        .stage_name(STAGE)
        .send()
        .await
        .absent("apigateway:GetStage", &["NotFoundException"])?;
    // The deployment's hash covers the role's ARN: unknown until the role exists.
    let want = drift.want(role_arn(context, kind))?;
    match stage.and_then(|s| s.deployment_id().map(String::from)) {
        None => drift.add(format!("stage {STAGE} missing")),
        // Any other difference ends with a redeployment anyway.
        Some(dep) if drift.is_empty() => {
            if let Some(arn) = want
                && !deployed(gw, &id, &dep, &definition_tag(&methods, &arn)).await?
            {
                drift.add(format!("stage {STAGE} serves an older deployment"));
            }
        }
        Some(_) => {}
    }
    Ok(drift.finish())
}

/// Whether the deployment `dep` carries the definition's hash `tag`.
async fn deployed(
    gw: &aws_sdk_apigateway::Client,
    api: &str,
    dep: &str,
    tag: &str,
) -> Result<bool> {
    let d = gw
        .get_deployment()
        .rest_api_id(api)
        .deployment_id(dep)
        .send()
        .await
        .sdk("apigateway:GetDeployment")?;
    Ok(d.description() == Some(tag))
}

/// The methods that are missing, or whose authorization or integration differs.
async fn integration_drift(
    gw: &aws_sdk_apigateway::Client,
    id: &str,
    region: &str,
    methods: &[Method],
) -> Result<Vec<String>> {
    let paths = resources(gw, id).await?;
    let mut drift = Vec::new();
    for m in methods {
        let Some(rid) = paths.get(m.path) else {
            drift.push(format!("{} {} missing", m.verb, m.path));
            continue;
        };
        let method = gw
            .get_method()
            .rest_api_id(id)
            .resource_id(rid)
            .http_method(m.verb)
            .send()
            .await
            .absent("apigateway:GetMethod", &["NotFoundException"])?;
        let Some(method) = method else {
            drift.push(format!("{} {} missing", m.verb, m.path));
            continue;
        };
        let want = m.authorization.as_str();
        let have = method.authorization_type().unwrap_or("NONE");
        if have != want {
            drift.push(format!(
                "{} {} authorization is {have}, not {want}",
                m.verb, m.path
            ));
        }
        let integ = gw
            .get_integration()
            .rest_api_id(id)
            .resource_id(rid)
            .http_method(m.verb)
            .send()
            .await
            .absent("apigateway:GetIntegration", &["NotFoundException"])?;
        let Some(integ) = integ else {
            drift.push(format!("{} {} missing", m.verb, m.path));
            continue;
        };
        let template = integ.request_templates().and_then(|t| t.get(JSON));
        let uri_ok = match m.action {
            Some(a) => integ.uri() == Some(integration_uri(region, a).as_str()),
            None => true,
        };
        if template != Some(&m.request_template) || !uri_ok {
            drift.push(format!("{} {} integration differs", m.verb, m.path));
        }
    }
    Ok(drift)
}

/// Creates or completes the API, overwrites every integration, and redeploys.
async fn converge(context: &StackContext, role: Role, kind: ApiKind) -> Result<()> {
    let gw = &context.region(role).apigw;
    let id = ensure_api(context, role, kind).await?;
    context.learn(api_id(context.names(), kind, role), id.clone());
    let role_arn = role_arn(context, kind)?;
    let methods = methods(kind, &table_of(context, kind));
    let mut paths = resources(gw, &id).await?;
    let at = Integration {
        gw,
        api: &id,
        region: &context.region(role).name,
        role_arn: &role_arn,
    };
    for m in &methods {
        let resource = ensure_path(gw, &id, &mut paths, m.path).await?;
        at.put(&resource, m).await?;
    }
    gw.create_deployment()
        .rest_api_id(&id)
        .stage_name(STAGE)
        .description(definition_tag(&methods, &role_arn))
        .send()
        .await
        .sdk("apigateway:CreateDeployment")?;
    Ok(())
}

/// The stack's API (created when there is none): its id.
async fn ensure_api(context: &StackContext, role: Role, kind: ApiKind) -> Result<String> {
    match find(context, role, kind).await? {
        Found::Ours(id) => return Ok(id),
        Found::Foreign { why, .. } => bail!("{why}"),
        Found::Absent => {}
    }
    let out = context
        .region(role)
        .apigw
        .create_rest_api()
        .name(context.names().api(kind, role))
        .description(format!(
            "{} {} API, managed by failover-monitor provision",
            context.stack.project(),
            kind.as_str()
        ))
        .endpoint_configuration(
            EndpointConfiguration::builder()
                .types(EndpointType::Regional)
                .build(),
        )
        .tags(STACK_TAG, context.stack.project())
        .send()
        .await
        .sdk("apigateway:CreateRestApi")?;
    Ok(out
        .id()
        .context("CreateRestApi answered without an id")?
        .to_string())
}

/// Makes each segment of `path` exist; the id of the last one.
async fn ensure_path(
    gw: &aws_sdk_apigateway::Client,
    api: &str,
    paths: &mut HashMap<String, String>,
    path: &str,
) -> Result<String> {
    let mut parent = paths
        .get("/")
        .cloned()
        .context("the API has no root resource")?;
    let mut here = String::new();
    for seg in path.trim_start_matches('/').split('/') {
        here = format!("{here}/{seg}");
        parent = match paths.get(&here) {
            Some(id) => id.clone(),
            None => {
                let r = gw
                    .create_resource()
                    .rest_api_id(api)
                    .parent_id(&parent)
                    .path_part(seg)
                    .send()
                    .await
                    .sdk("apigateway:CreateResource")?;
                let rid = r
                    .id()
                    .context("CreateResource answered without an id")?
                    .to_string();
                paths.insert(here.clone(), rid.clone());
                rid
            }
        };
    }
    Ok(parent)
}

/// Where the methods of one API are written.
struct Integration<'a> {
    gw: &'a aws_sdk_apigateway::Client,
    api: &'a str,
    region: &'a str,
    role_arn: &'a str,
}

impl Integration<'_> {
    /// The method (when missing or authorized otherwise) and its integration
    /// (always, overwriting).
    async fn put(&self, resource: &str, m: &Method) -> Result<()> {
        let gw = self.gw;
        let have = gw
            .get_method()
            .rest_api_id(self.api)
            .resource_id(resource)
            .http_method(m.verb)
            .send()
            .await
            .absent("apigateway:GetMethod", &["NotFoundException"])?;
        match have {
            None => self.put_method(resource, m).await?,
            Some(h) if h.authorization_type().unwrap_or("NONE") != m.authorization.as_str() => {
                // UpdateMethod could patch `/authorizationType` on AWS; the emulator
                // has no UpdateMethod. Deleting the method (its integration and
                // responses go with it) and putting it again works on both. The stage
                // keeps serving the last deployment meanwhile; the caller redeploys.
                gw.delete_method()
                    .rest_api_id(self.api)
                    .resource_id(resource)
                    .http_method(m.verb)
                    .send()
                    .await
                    .sdk("apigateway:DeleteMethod")?;
                self.put_method(resource, m).await?;
            }
            Some(_) => {}
        }
        let mut integ = gw
            .put_integration()
            .rest_api_id(self.api)
            .resource_id(resource)
            .http_method(m.verb)
            .passthrough_behavior("NEVER")
            .request_templates(JSON, &m.request_template);
        integ = match m.action {
            Some(action) => integ
                .r#type(IntegrationType::Aws)
                .integration_http_method("POST")
                .uri(integration_uri(self.region, action))
                .credentials(self.role_arn),
            None => integ.r#type(IntegrationType::Mock),
        };
        integ.send().await.sdk("apigateway:PutIntegration")?;
        let mut ir = gw
            .put_integration_response()
            .rest_api_id(self.api)
            .resource_id(resource)
            .http_method(m.verb)
            .status_code("200");
        if !m.response_template.is_empty() {
            ir = ir.response_templates(JSON, &m.response_template);
        }
        for (h, v) in &m.headers {
            ir = ir.response_parameters(format!("method.response.header.{h}"), v);
        }
        ir.send().await.sdk("apigateway:PutIntegrationResponse")?;
        Ok(())
    }

    async fn put_method(&self, resource: &str, m: &Method) -> Result<()> {
        self.gw
            .put_method()
            .rest_api_id(self.api)
            .resource_id(resource)
            .http_method(m.verb)
            .authorization_type(m.authorization.as_str())
            .request_parameters(format!("method.request.path.{}", m.path_param), true)
            .send()
            .await
            .sdk("apigateway:PutMethod")?;
        let mut resp = self
            .gw
            .put_method_response()
            .rest_api_id(self.api)
            .resource_id(resource)
            .http_method(m.verb)
            .status_code("200")
            .response_models(JSON, "Empty");
        for (h, _) in &m.headers {
            resp = resp.response_parameters(format!("method.response.header.{h}"), false);
        }
        resp.send().await.sdk("apigateway:PutMethodResponse")?;
        Ok(())
    }
}

async fn delete(context: &StackContext, role: Role, kind: ApiKind) -> Result<()> {
    if let Found::Ours(id) = find(context, role, kind).await? {
        context
            .region(role)
            .apigw
            .delete_rest_api()
            .rest_api_id(id)
            .send()
            .await
            .absent("apigateway:DeleteRestApi", &["NotFoundException"])?;
    }
    Ok(())
}

/// The base URL of the API's stage: the execute-api URL on AWS; against an emulator
/// (`endpoint`), the form its execution layer answers
/// (`<endpoint>/restapis/<id>/prod/_user_request_`, as moto documents for invoking
/// an API in server mode). A method's path follows it.
pub fn stage_url(id: &str, region: &str, endpoint: Option<&str>) -> String {
    match endpoint {
        Some(e) => format!(
            "{}/restapis/{id}/{STAGE}/_user_request_",
            e.trim_end_matches('/')
        ),
        None => format!("https://{id}.execute-api.{region}.amazonaws.com/{STAGE}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stage_url_is_execute_api_on_aws_and_the_user_request_path_on_an_emulator() {
        assert_eq!(
            stage_url("a1b2", "ap-northeast-1", None),
            "https://a1b2.execute-api.ap-northeast-1.amazonaws.com/prod"
        );
        assert_eq!(
            stage_url("a1b2", "us-east-1", Some("http://127.0.0.1:5001/")),
            "http://127.0.0.1:5001/restapis/a1b2/prod/_user_request_"
        );
    }
}
