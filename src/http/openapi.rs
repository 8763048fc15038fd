//! The OpenAPI document: paths come from each handler's `#[utoipa::path]` as the routers are
//! built (utoipa-axum), so the document cannot drift from the routes, and every body it
//! describes is the type the handler really sends. This file holds the shared pieces: title,
//! tags and security schemes.
//!
//! Answers are closed: each response type carries `#[serde(deny_unknown_fields)]`, which serde
//! ignores when serializing and utoipa turns into `additionalProperties: false`, so a client
//! (and the schemathesis check in CI) can rely on no property being undocumented. Request
//! bodies stay open: unknown fields are ignored (SPEC §7).

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "brama",
        description = "Authentication server and member registry: the Membership API (seed 001), the Company API (seed 002), the page (seed 000) and operations.",
        license(name = "MIT")
    ),
    tags(
        (name = "auth", description = "Membership API: accounts, tokens, sessions"),
        (name = "mfa", description = "Membership API: the second factor (TOTP, recovery codes)"),
        (name = "members", description = "Membership API: the member register"),
        (name = "admin", description = "Membership API: accounts of one's organization and the audit"),
        (name = "company", description = "Company API (seed 002): sign-up, activation, log-in"),
        (name = "operations", description = "Health, readiness, metrics, keys"),
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-access-token"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    /// The names of the component schemas `value` refers to, directly or through others.
    fn referenced(value: &Value, schemas: &Value, found: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    let name = r.trim_start_matches("#/components/schemas/").to_string();
                    if found.insert(name.clone()) {
                        referenced(&schemas[&name], schemas, found);
                    }
                }
                for v in map.values() {
                    referenced(v, schemas, found);
                }
            }
            Value::Array(items) => {
                for v in items {
                    referenced(v, schemas, found);
                }
            }
            _ => {}
        }
    }

    /// Every object an answer can hold says which properties it has and that it has no
    /// others, so schemathesis refuses an undocumented property; every operation has its own id.
    #[test]
    fn answers_are_closed_and_operations_named_once() {
        let doc = serde_json::to_value(crate::http::document()).expect("serializes");
        let schemas = &doc["components"]["schemas"];
        let mut answers = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("operations") {
                let id = operation["operationId"].as_str().unwrap_or_default();
                assert!(
                    ids.insert(id.to_string()),
                    "{method} {path}: operationId {id:?} repeats"
                );
                referenced(&operation["responses"], schemas, &mut answers);
            }
        }
        assert!(answers.contains("ErrorBody") && answers.contains("CompanyFailure"));
        for name in &answers {
            let schema = &schemas[name];
            if schema["type"] == "object" {
                assert_eq!(
                    schema["additionalProperties"],
                    Value::Bool(false),
                    "{name} is an answer and must list every property it can have"
                );
            }
        }
    }

    /// Query strings are documented as such (they were once `in: path`).
    #[test]
    fn query_parameters_are_in_the_query() {
        let doc = serde_json::to_value(crate::http::document()).expect("serializes");
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("operations") {
                for p in operation["parameters"].as_array().into_iter().flatten() {
                    if p["in"] == "path" {
                        let name = p["name"].as_str().unwrap_or_default();
                        assert!(
                            path.contains(&format!("{{{name}}}")),
                            "{method} {path}: `{name}` is not in the path"
                        );
                    }
                }
            }
        }
    }
}
