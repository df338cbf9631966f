//! Headers every response carries: no sniffing, no framing, no referrer, a content security
//! policy, and no caching of API answers (they carry tokens, keys and secrets, and are
//! personal).

use axum::{
    extract::Request,
    http::{HeaderName, HeaderValue, header},
    middleware::Next,
    response::Response,
};

/// For the API: a JSON answer needs nothing from the page it might be opened in.
const API_POLICY: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// For the Swagger UI at `/api/docs`, served from the binary: its own scripts and
/// stylesheets, the inline styles its components set, icons inlined as data URIs, and the
/// OpenAPI document fetched from this server. No inline script, nothing from elsewhere.
const DOCS_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
     img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; \
     base-uri 'none'; form-action 'none'";

/// Where the Swagger UI is served.
pub const DOCS_PREFIX: &str = "/api/docs";

pub async fn security_headers(req: Request, next: Next) -> Response {
    let docs = req.uri().path().starts_with(DOCS_PREFIX);
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    let set = |h: &mut axum::http::HeaderMap, name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(h, header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(h, header::X_FRAME_OPTIONS, "DENY");
    set(h, header::REFERRER_POLICY, "no-referrer");
    set(h, header::CONTENT_SECURITY_POLICY, if docs { DOCS_POLICY } else { API_POLICY });
    if !docs {
        set(h, header::CACHE_CONTROL, "no-store");
    }
    resp
}
