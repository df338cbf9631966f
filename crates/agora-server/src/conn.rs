//! Connections: accepting them (at most `max_connections` at once), serving HTTP/1.1 on each
//! with a header read timeout, and guarding request bodies (a read timeout, and
//! `Connection: close` on an answer given before the body was read).
//!
//! Written here rather than with `axum::serve` because that one sets neither a header read
//! timeout (a client that sends half its headers holds its connection for good:
//! slowloris) nor a connection cap. The loop is hyper-util's graceful-shutdown pattern:
//! hyper does the protocol; this file only decides when to accept and when to stop.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use axum::{
    Router,
    body::{Body, Bytes},
    extract::{ConnectInfo, Request},
    http::{HeaderValue, header},
    response::Response,
};
use http_body::{Body as HttpBody, Frame, SizeHint};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    server::graceful::GracefulShutdown,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::ServiceExt;

/// How connections are served.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub max_connections: usize,
}

/// Accepts connections until `shutdown` resolves, then stops accepting, calls `stopping`
/// (which answers what waits: long polls, live streams), and lets every connection finish
/// its request in flight before returning.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnLimits,
    shutdown: impl Future<Output = ()>,
    stopping: impl FnOnce(),
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A permit first: at the cap, new connections wait in the listen queue rather than
        // being accepted and starved.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit,
            () = &mut shutdown => break,
        };
        let Ok(permit) = permit else { break };
        let (stream, addr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors or a connection reset before it was
                    // accepted: wait a moment rather than spin, as axum does.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(addr));
            router.clone().oneshot(req)
        });
        let conn = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %addr, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    stopping();
    graceful.shutdown().await;
    Ok(())
}

/// What became of a request's body.
#[derive(Debug, Default)]
pub struct BodyWatch {
    finished: AtomicBool,
    timed_out: AtomicBool,
}

impl BodyWatch {
    /// The body did not arrive within the body read timeout.
    pub fn timed_out(&self) -> bool {
        self.timed_out.load(Ordering::Relaxed)
    }
}

/// Puts a deadline on the request's body and, when the answer is given before the body was
/// read to its end (a 401 from the gate, a 413, a handler that needs no body), says
/// `Connection: close`: the unread rest would otherwise be taken for the next request, and
/// a client that reuses the connection would see it fail.
pub(crate) fn guard_body(req: Request, timeout: Duration) -> (Request, Option<Arc<BodyWatch>>) {
    if req.body().is_end_stream() {
        return (req, None);
    }
    let watch = Arc::new(BodyWatch::default());
    let (mut parts, body) = req.into_parts();
    parts.extensions.insert(watch.clone());
    let guarded =
        Guarded { inner: body, deadline: Box::pin(tokio::time::sleep(timeout)), watch: watch.clone() };
    (Request::from_parts(parts, Body::new(guarded)), Some(watch))
}

/// The second half of [`guard_body`]: `Connection: close` on an answer given before the
/// body it guarded was read to its end.
pub(crate) fn close_if_unread(resp: &mut Response, watch: Option<&BodyWatch>) {
    if watch.is_some_and(|w| !w.finished.load(Ordering::Relaxed)) {
        resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
}

/// A request body with a deadline, which records whether it was read to its end.
struct Guarded {
    inner: Body,
    deadline: Pin<Box<tokio::time::Sleep>>,
    watch: Arc<BodyWatch>,
}

#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive in time")]
struct BodyTimedOut;

impl HttpBody for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            if frame.is_none() {
                self.watch.finished.store(true, Ordering::Relaxed);
            }
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            self.watch.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimedOut))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
