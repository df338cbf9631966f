//! Headers every response carries: no sniffing, no framing, no referrer, a content security
//! policy, and no caching of API answers (they carry tokens, keys and secrets, and are
//! personal).

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};

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

/// Sets the headers every answer carries; `docs`: the answer is the Swagger UI's (its own
/// policy, and cacheable). Called by [`crate::edge`].
pub(crate) fn secure(h: &mut HeaderMap, docs: bool) {
    let mut set = |name: HeaderName, value: &'static str| {
        h.insert(name, HeaderValue::from_static(value));
    };
    set(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(header::X_FRAME_OPTIONS, "DENY");
    set(header::REFERRER_POLICY, "no-referrer");
    set(header::CONTENT_SECURITY_POLICY, if docs { DOCS_POLICY } else { API_POLICY });
    if !docs {
        set(header::CACHE_CONTROL, "no-store");
    }
}
