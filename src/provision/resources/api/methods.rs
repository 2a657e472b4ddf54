//! The methods of the two APIs as they must be, with the original stack's mapping
//! templates (data), and the hash of a whole definition that the deployment's
//! description records.

use super::ApiKind;

const CORS_HEADERS: &str = "'Authorization,Content-Type,X-Amz-Date,X-Amz-Security-Token,X-Api-Key'";

/// One method of the API as it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct Method {
    pub path: &'static str,
    pub verb: &'static str,
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

fn mock(path: &'static str, param: &'static str, methods: &str) -> Method {
    Method {
        path,
        verb: "OPTIONS",
        action: None,
        request_template: "{\"statusCode\": 200}".into(),
        response_template: String::new(),
        headers: cors(methods),
        path_param: param,
    }
}

/// The methods of one API; the templates name the table of that region.
pub fn methods(kind: ApiKind, table: &str) -> Vec<Method> {
    match kind {
        ApiKind::Config => vec![
            Method {
                path: "/state/{appId}",
                verb: "GET",
                action: Some("Query"),
                request_template: format!(
                    "{{\"TableName\": \"{table}\", \"KeyConditionExpression\": \"appId = :v1\", \
                     \"ExpressionAttributeValues\": {{\":v1\": {{\"S\": \"$util.escapeJavaScript($input.params('appId'))\"}}}}}}"
                ),
                response_template: concat!(
                    "#set($items = $input.path('$').Items)\n",
                    "#if($items.size() == 1)\n",
                    "{\"state\": \"$util.escapeJavaScript($items[0].state.S)\"}\n",
                    "#else\n",
                    "{}\n",
                    "#end"
                )
                .into(),
                headers: origin(),
                path_param: "appId",
            },
            mock("/state/{appId}", "appId", "OPTIONS,HEAD,GET,POST,PUT,PATCH,DELETE"),
        ],
        ApiKind::Store => vec![
            Method {
                path: "/comments/{photoId}",
                verb: "GET",
                action: Some("Query"),
                request_template: format!(
                    "{{\"TableName\": \"{table}\", \"IndexName\": \"photoId\", \
                     \"KeyConditionExpression\": \"photoId = :v1\", \
                     \"ExpressionAttributeValues\": {{\":v1\": {{\"S\": \"$util.escapeJavaScript($input.params('photoId'))\"}}}}}}"
                ),
                response_template: concat!(
                    "{\"comments\": [\n",
                    "#foreach($c in $input.path('$').Items)\n",
                    "{\"commentId\": \"$util.escapeJavaScript($c.commentId.S)\", ",
                    "\"user\": \"$util.escapeJavaScript($c.user.S)\", ",
                    "\"message\": \"$util.escapeJavaScript($c.message.S)\"}#if($foreach.hasNext),#end\n",
                    "#end\n",
                    "]}"
                )
                .into(),
                headers: origin(),
                path_param: "photoId",
            },
            Method {
                path: "/comments/{photoId}",
                verb: "POST",
                action: Some("PutItem"),
                request_template: format!(
                    "{{\"TableName\": \"{table}\", \"Item\": {{\
                     \"commentId\": {{\"S\": $input.json('$.commentId')}}, \
                     \"message\": {{\"S\": $input.json('$.message')}}, \
                     \"photoId\": {{\"S\": $input.json('$.photoId')}}, \
                     \"user\": {{\"S\": $input.json('$.user')}}}}}}"
                ),
                response_template: "{}".into(),
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
        let req = m[0]
            .request_template
            .replace("$util.escapeJavaScript($input.params('appId'))", "abc");
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
    }
}
