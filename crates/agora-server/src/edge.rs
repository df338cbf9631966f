//! The one layer every request passes on its way in and its answer on its way out: the
//! request body's deadline, the route's metrics, and the security headers.
//!
//! Written as a tower service with its own future rather than three `from_fn` middlewares:
//! each of those boxes its future together with a clone of the rest of the stack, and a
//! waiting long poll keeps all of that for as long as it waits (about 6 KB per waiting
//! agent, measured with `agora bench idle`). This future holds the inner one unboxed and a
//! few words beside it.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, ready},
    time::{Duration, Instant},
};

use axum::{extract::MatchedPath, http::Request, response::Response};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::{
    conn::{self, BodyWatch},
    headers,
    metrics::{self, HttpMetrics},
};

/// Applied to every route (inside the request's span, so that what it logs carries the
/// request id).
#[derive(Debug, Clone)]
pub(crate) struct EdgeLayer {
    pub(crate) metrics: HttpMetrics,
    pub(crate) body_timeout: Duration,
}

impl<S> Layer<S> for EdgeLayer {
    type Service = Edge<S>;

    fn layer(&self, inner: S) -> Edge<S> {
        Edge { inner, edge: self.clone() }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Edge<S> {
    inner: S,
    edge: EdgeLayer,
}

impl<S> Service<Request<axum::body::Body>> for Edge<S>
where
    S: Service<Request<axum::body::Body>, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = EdgeFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<axum::body::Body>) -> Self::Future {
        let start = Instant::now();
        let docs = req.uri().path().starts_with(headers::DOCS_PREFIX);
        let method = metrics::method_label(req.method());
        let path = req.extensions().get::<MatchedPath>().cloned();
        let (req, watch) = conn::guard_body(req, self.edge.body_timeout);
        EdgeFuture {
            inner: self.inner.call(req),
            start,
            method,
            path,
            docs,
            watch,
            metrics: self.edge.metrics.clone(),
        }
    }
}

pin_project! {
    pub(crate) struct EdgeFuture<F> {
        #[pin]
        inner: F,
        start: Instant,
        method: &'static str,
        path: Option<MatchedPath>,
        docs: bool,
        watch: Option<Arc<BodyWatch>>,
        metrics: HttpMetrics,
    }
}

impl<F> Future for EdgeFuture<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let Ok(mut resp) = ready!(this.inner.poll(cx));
        this.metrics.record(this.method, this.path.as_ref(), *this.start, &resp);
        conn::close_if_unread(&mut resp, this.watch.as_deref());
        headers::secure(resp.headers_mut(), *this.docs);
        Poll::Ready(Ok(resp))
    }
}
