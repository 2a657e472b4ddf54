//! The methods of the two APIs as they must be, with their mapping templates
//! (`deploy/apigateway/*.vtl`, embedded: the original stack's, with its apostrophe
//! bug fixed and `version` added to the state), and the hash of a whole definition
//! that the deployment's description records.

use super::ApiKind;

const CORS_HEADERS: &str = "'Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key'";

/// The mapping templates; `@TABLE@` stands for the region's table.
mod vtl {
    pub const STATE_GET_REQUEST: &str =
        include_str!("../../../../../deploy/apigateway/state-get.request.vtl");
    pub const STATE_GET_RESPONSE: &str =
        include_str!("../../../../../deploy/apigateway/state-get.response.vtl");
    pub const COMMENTS_GET_REQUEST: &str =
        include_str!("../../../../../deploy/apigateway/comments-get.request.vtl");
    pub const COMMENTS_GET_RESPONSE: &str =
        include_str!("../../../../../deploy/apigateway/comments-get.response.vtl");
    pub const COMMENTS_POST_REQUEST: &str =
        include_str!("../../../../../deploy/apigateway/comments-post.request.vtl");
    pub const COMMENTS_POST_RESPONSE: &str =
        include_str!("../../../../../deploy/apigateway/comments-post.response.vtl");
    pub const PREFLIGHT_REQUEST: &str =
        include_str!("../../../../../deploy/apigateway/preflight.request.vtl");
}

/// Who may call a method: anyone, or callers with a SigV4 signature whose IAM
/// identity may `execute-api:Invoke` it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Authorization {
    None,
    AwsIam,
}

impl Authorization {
    /// The method's `authorizationType`.
    pub fn as_str(self) -> &'static str {
        match self {
            Authorization::None => "NONE",
            Authorization::AwsIam => "AWS_IAM",
        }
    }
}

/// One method of the API as it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub path: &'static str,
    pub verb: &'static str,
    pub authorization: Authorization,
    /// None: a MOCK integration (CORS preflight).
    pub action: Option<&'static str>,
    pub request_template: String,
    pub response_template: String,
    /// `method.response.header.X` -> value, for the 200 response.
    pub headers: Vec<(&'static str, String)>,
    pub path_param: &'static str,
}

fn cors(methods: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Access-Control-Allow-Headers", CORS_HEADERS.to_string()),
        ("Access-Control-Allow-Methods", format!("'{methods}'")),
        ("Access-Control-Allow-Origin", "'*'".to_string()),
        ("Access-Control-Max-Age", "'7200'".to_string()),
    ]
}

fn origin() -> Vec<(&'static str, String)> {
    vec![("Access-Control-Allow-Origin", "'*'".to_string())]
}

/// A template naming `table`.
fn with_table(template: &str, table: &str) -> String {
    template.replace("@TABLE@", table)
}

fn mock(path: &'static str, param: &'static str, methods: &str) -> Method {
    Method {
        path,
        verb: "OPTIONS",
        // A browser's preflight carries no credentials: it must stay open.
        authorization: Authorization::None,
        action: None,
        request_template: vtl::PREFLIGHT_REQUEST.into(),
        response_template: String::new(),
        headers: cors(methods),
        path_param: param,
    }
}

/// The methods of one API; the templates name the table of that region. Reads are
/// open, as in the original; writing a comment needs a signed call (`AWS_IAM`).
pub fn methods(kind: ApiKind, table: &str) -> Vec<Method> {
    match kind {
        ApiKind::Config => vec![
            Method {
                path: "/state/{appId}",
                verb: "GET",
                authorization: Authorization::None,
                action: Some("Query"),
                request_template: with_table(vtl::STATE_GET_REQUEST, table),
                response_template: vtl::STATE_GET_RESPONSE.into(),
                headers: origin(),
                path_param: "appId",
            },
            mock(
                "/state/{appId}",
                "appId",
                "OPTIONS,HEAD,GET,POST,PUT,PATCH,DELETE",
            ),
        ],
        ApiKind::Store => vec![
            Method {
                path: "/comments/{photoId}",
                verb: "GET",
                authorization: Authorization::None,
                action: Some("Query"),
                request_template: with_table(vtl::COMMENTS_GET_REQUEST, table),
                response_template: vtl::COMMENTS_GET_RESPONSE.into(),
                headers: origin(),
                path_param: "photoId",
            },
            Method {
                path: "/comments/{photoId}",
                verb: "POST",
                authorization: Authorization::AwsIam,
                action: Some("PutItem"),
                request_template: with_table(vtl::COMMENTS_POST_REQUEST, table),
                response_template: vtl::COMMENTS_POST_RESPONSE.into(),
                headers: origin(),
                path_param: "photoId",
            },
            mock("/comments/{photoId}", "photoId", "GET,OPTIONS,POST"),
        ],
    }
}

/// FNV-1a, 64 bits: stable across builds and Rust versions, unlike `DefaultHasher`.
fn fnv(data: &str) -> u64 {
    data.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// What the deployment's description records: the hash of the whole definition.
pub fn definition_tag(methods: &[Method], role_arn: &str) -> String {
    let text = format!("{methods:?}{role_arn}");
    format!("failover-monitor definition {:016x}", fnv(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_valid_json_shapes_and_name_the_table() {
        let m = methods(ApiKind::Config, "photos-config");
        assert_eq!(m.len(), 2);
        // With the template variables replaced, the request is the DynamoDB Query.
        let req = m[0].request_template.replace(
            "$util.escapeJavaScript($input.params('appId')).replaceAll(\"\\\\'\", \"'\")",
            "abc",
        );
        let v: serde_json::Value = serde_json::from_str(&req).unwrap();
        assert_eq!(v["TableName"], "photos-config");
        assert_eq!(v["KeyConditionExpression"], "appId = :v1");
        assert_eq!(v["ExpressionAttributeValues"][":v1"]["S"], "abc");

        let s = methods(ApiKind::Store, "photos-store");
        let post = s.iter().find(|m| m.verb == "POST").unwrap();
        let req = post
            .request_template
            .replace("$input.json('$.", "\"")
            .replace("')", "\"");
        let v: serde_json::Value = serde_json::from_str(&req).unwrap();
        assert_eq!(v["TableName"], "photos-store");
        for k in ["commentId", "message", "photoId", "user"] {
            assert_eq!(v["Item"][k]["S"], format!("{k}"), "{k}");
        }
        let get = s.iter().find(|m| m.verb == "GET").unwrap();
        assert!(get.request_template.contains("\"IndexName\": \"photoId\""));
        assert!(s.iter().any(|m| m.verb == "OPTIONS" && m.action.is_none()));
        for m in m.iter().chain(&s) {
            assert!(!m.request_template.contains("@TABLE@"), "{m:?}");
        }
    }

    #[test]
    fn the_templates_are_the_fixed_ones() {
        let state = methods(ApiKind::Config, "t");
        // The state answers its version too, for clients that compare regions.
        assert!(
            state[0]
                .response_template
                .contains("\"version\": $item.version.N"),
            "{}",
            state[0].response_template
        );
        // Every escaped value is repaired for JSON: `escapeJavaScript` writes `\'`.
        let store = methods(ApiKind::Store, "t");
        let get = &store[0];
        for text in [&get.request_template, &get.response_template] {
            assert_eq!(
                text.matches("$util.escapeJavaScript(").count(),
                text.matches(".replaceAll(\"\\\\'\", \"'\")").count(),
                "{text}"
            );
        }
        assert_eq!(get.response_template.matches("replaceAll").count(), 3);
    }

    #[test]
    fn only_writing_a_comment_needs_a_signature() {
        let all: Vec<Method> = [ApiKind::Config, ApiKind::Store]
            .into_iter()
            .flat_map(|k| methods(k, "t"))
            .collect();
        let signed: Vec<_> = all
            .iter()
            .filter(|m| m.authorization == Authorization::AwsIam)
            .map(|m| format!("{} {}", m.verb, m.path))
            .collect();
        assert_eq!(signed, ["POST /comments/{photoId}"]);
        assert_eq!(Authorization::AwsIam.as_str(), "AWS_IAM");
        assert_eq!(Authorization::None.as_str(), "NONE");
    }

    #[test]
    fn the_definition_tag_changes_with_any_template_or_role() {
        let a = methods(ApiKind::Config, "photos-config");
        let mut b = a.clone();
        b[0].response_template.push(' ');
        let tag = definition_tag(&a, "arn:role");
        assert_eq!(tag, definition_tag(&a, "arn:role"));
        assert_ne!(tag, definition_tag(&b, "arn:role"));
        assert_ne!(tag, definition_tag(&a, "arn:other"));
        assert_ne!(
            tag,
            definition_tag(&methods(ApiKind::Config, "other-config"), "arn:role")
        );
        let mut c = a.clone();
        c[0].authorization = Authorization::AwsIam;
        assert_ne!(tag, definition_tag(&c, "arn:role"));
    }
}
