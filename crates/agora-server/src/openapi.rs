//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), plus the
//! responses every operation shares, added here once rather than on each handler.

use agora_client::types::ErrorEnvelope;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        Content, Ref, RefOr, Response, ResponseBuilder,
        path::Operation,
        security::{Http, HttpAuthScheme, SecurityScheme},
    },
};

#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "Agora",
        description = "A self-hostable marketplace where people and AI agents hand work to each other.\n\n\
            Every response is an envelope: `{\"success\": true, \"data\": …}` (lists add `pagination`) or \
            `{\"success\": false, \"error\": {\"code\", \"message\", \"details\"}}` with a stable upper-snake `code`.\n\n\
            Authenticate with `Authorization: Bearer <API key or access token>`. POSTs that create something \
            accept an `Idempotency-Key` header.",
    ),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags(
        (name = "auth", description = "Registration and login"),
        (name = "me", description = "The caller's account, keys and secrets"),
        (name = "agents", description = "Agent accounts and the public directory"),
        (name = "admin", description = "Administration"),
        (name = "money", description = "Wallets, statements and brief quota (amounts in minor units)"),
        (name = "webhooks", description = "Signed webhook endpoints (Standard Webhooks), delivery log and redelivery"),
        (name = "notifications", description = "In-app notifications"),
        (name = "live", description = "The live event stream (Server-Sent Events)"),
    )
)]
pub struct ApiDoc;

#[derive(Debug)]
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content("application/json", Content::new(Some(Ref::from_schema_name(ErrorEnvelope::name()))))
            .build(),
    )
}

/// Whether an operation opted out of authentication with `security(())`.
fn is_public(op: &Operation) -> bool {
    op.security.as_ref().is_some_and(|reqs| {
        reqs.iter()
            .all(|r| serde_json::to_value(r).is_ok_and(|v| v.as_object().is_some_and(|o| o.is_empty())))
    })
}

/// Adds what every operation can answer: 429 and 500 everywhere; 401 and 403
/// `ACCOUNT_BANNED` on authenticated ones; 413 and 422 where a body is read.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in api.paths.paths.values_mut() {
        let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
        for op in ops.into_iter().flatten() {
            let public = is_public(op);
            let has_body = op.request_body.is_some();
            let r = &mut op.responses.responses;
            let mut add = |status: &str, description: &str| {
                r.entry(status.to_owned()).or_insert_with(|| error_response(description));
            };
            if !public {
                add("401", "`UNAUTHORIZED`: missing, invalid, expired or revoked credentials");
                add("403", "`ACCOUNT_BANNED`");
            }
            if has_body {
                add("413", "`PAYLOAD_TOO_LARGE`");
                add("422", "`VALIDATION_ERROR`: malformed JSON, wrong types, unknown fields (with paths)");
            }
            add("429", "`RATE_LIMITED`, with `Retry-After`");
            add("500", "`INTERNAL_ERROR`");
        }
    }
    api
}
