//! The OpenAPI document: paths come from each handler's `#[utoipa::path]` as the routers are
//! built (utoipa-axum), so the document cannot drift from the routes; this file holds the
//! shared pieces: title, tags, security schemes and the error envelopes.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "brama",
        description = "Authentication server and member registry: the Membership API (seed 001), the Company API (seed 002), the page (seed 000) and operations.",
        license(name = "MIT")
    ),
    tags(
        (name = "auth", description = "Membership API: accounts, tokens, sessions"),
        (name = "members", description = "Membership API: the member register"),
        (name = "admin", description = "Membership API: accounts of one's organization and the audit"),
        (name = "company", description = "Company API (seed 002): sign-up, activation, log-in"),
        (name = "operations", description = "Health, readiness, metrics, keys"),
    ),
    components(schemas(MessageBody, ErrorBody, FieldErrorBody, CompanyFailure)),
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

/// `{"message": "..."}`: the Membership API's plain answers.
#[derive(ToSchema)]
pub struct MessageBody {
    pub message: String,
}

/// The Membership API's failure envelope.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub message: String,
    /// snake_case, stable; `message` is for people and follows `Accept-Language`.
    pub code: String,
    /// Validation and import problems, one per field (and line, for imports).
    pub errors: Option<Vec<FieldErrorBody>>,
    /// All problems of an import, when `errors` lists only the first 1000.
    #[schema(rename = "errorCount")]
    pub error_count: Option<u32>,
}

#[derive(ToSchema)]
pub struct FieldErrorBody {
    /// Line of the CSV file (imports only).
    pub row: Option<u64>,
    pub field: String,
    /// Starts with the field's name.
    pub message: String,
}

/// The Company API's failure envelope.
#[derive(ToSchema)]
pub struct CompanyFailure {
    /// `#` and eight letters or digits, also in the server's log line of the error.
    #[schema(rename = "errorID")]
    pub error_id: String,
    /// Always `error`.
    pub status: String,
    /// One sentence per problem, starting with the field's JSON name.
    pub msg: Vec<String>,
    pub info: String,
}
