//! The OpenAPI 3.1 document, generated from the handlers' annotations (utoipa), plus the
//! responses every operation shares, added here once rather than on each handler.

use agora_client::types::ErrorEnvelope;
use utoipa::{
    Modify, OpenApi, ToSchema,
    openapi::{
        Content, ObjectBuilder, Ref, RefOr, Required, Response, ResponseBuilder, Type,
        path::{Operation, Parameter, ParameterBuilder, ParameterIn},
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
        (name = "jobs", description = "Jobs and bids: post, match, bid, negotiate, hire (escrowed), invite, auto-bid"),
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

/// Adds what every operation can answer, once, here: 401 everywhere (a public operation
/// still refuses an invalid bearer), 429, 500 and 503; 403 `ACCOUNT_BANNED` on
/// authenticated ones; 408, 413 and 422 where a body is read; 422 where a path id is read;
/// and on an authenticated POST the `Idempotency-Key` header with its 409 and 422.
pub fn finish(mut api: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    for item in api.paths.paths.values_mut() {
        let ops = [
            (&mut item.get, false),
            (&mut item.post, true),
            (&mut item.put, false),
            (&mut item.patch, false),
            (&mut item.delete, false),
        ];
        for (op, post) in ops {
            let Some(op) = op else { continue };
            let public = is_public(op);
            let has_body = op.request_body.is_some();
            let params = op.parameters.get_or_insert_with(Vec::new);
            let inline = |p: &RefOr<Parameter>| match p {
                RefOr::T(p) => Some((p.name.clone(), p.parameter_in.clone())),
                RefOr::Ref(_) => None,
            };
            let has_path_id = params.iter().filter_map(inline).any(|(_, at)| at == ParameterIn::Path);
            let keyed = post && !public;
            if keyed {
                // One description of the header for every keyed POST, with its rules.
                params.retain(|p| inline(p).is_none_or(|(name, _)| name != IDEMPOTENCY_KEY));
                params.push(RefOr::T(idempotency_key()));
            }
            for response in op.responses.responses.values_mut() {
                if let RefOr::T(response) = response {
                    event_stream_frames(response);
                }
            }
            let r = &mut op.responses.responses;
            let mut add = |status: &str, description: &str| {
                r.entry(status.to_owned()).or_insert_with(|| error_response(description));
            };
            add("401", "`UNAUTHORIZED`: missing, invalid, expired or revoked credentials");
            if !public {
                add("403", "`ACCOUNT_BANNED`");
            }
            if has_body || keyed {
                // A keyed POST's body is read (for its hash) even where no handler wants it.
                add("408", "`REQUEST_TIMEOUT`: the body did not arrive in time");
                add("413", "`PAYLOAD_TOO_LARGE`");
            }
            if has_body || has_path_id || keyed {
                add(
                    "422",
                    "`VALIDATION_ERROR`: malformed JSON, wrong types, unknown fields, an unreadable path id \
                     or `Idempotency-Key` (with paths)",
                );
            }
            if keyed {
                add("409", "`IDEMPOTENCY_KEY_REUSED`: the key was used with another request");
            }
            add("429", "`RATE_LIMITED`, with `Retry-After`");
            add("500", "`INTERNAL_ERROR`");
            add("503", "`SERVICE_UNAVAILABLE`: the database does not answer");
        }
    }
    api
}

const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

fn idempotency_key() -> Parameter {
    ParameterBuilder::new()
        .name(IDEMPOTENCY_KEY)
        .parameter_in(ParameterIn::Header)
        .required(Required::False)
        .description(Some(
            "Replays the first response for 24 h. Keys are per account, shared by every POST; the same \
             key with another request is 409 `IDEMPOTENCY_KEY_REUSED`, a key that breaks these rules 422.",
        ))
        .schema(Some(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .min_length(Some(1))
                .max_length(Some(255))
                .pattern(Some(r"^[\x21-\x7E]([\x20-\x7E]*[\x21-\x7E])?$")),
        ))
        .build()
}

/// A Server-Sent Events stream's schema describes one frame: `data` is a string of JSON
/// whose content is the schema the handler named (`contentSchema`), with the frame's `id`
/// and `event`. Validators then check each event as it arrives.
fn event_stream_frames(response: &mut Response) {
    let Some(RefOr::T(content)) = response.content.get_mut("text/event-stream") else { return };
    let Some(payload) = content.schema.take() else { return };
    let frame = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", ObjectBuilder::new().schema_type(Type::String))
        .property("event", ObjectBuilder::new().schema_type(Type::String))
        .property("retry", ObjectBuilder::new().schema_type(Type::Integer))
        .property(
            "data",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .content_media_type("application/json")
                .content_schema(Some(payload)),
        )
        .required("data");
    content.schema = Some(frame.into());
}
