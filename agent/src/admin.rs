//! The admin port: `/metrics`, `/healthz` (the process runs) and `/readyz` (every watch cache
//! has synced and, with the webhook on, the served certificate chains to the caBundle the API
//! server holds). Anything else is 404.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::error::chain;
use crate::flows::Scope;
use crate::metrics::{Metrics, StateEntries};
use crate::webhook::readiness::Readiness;

/// What the admin endpoints read.
#[derive(Debug)]
pub struct Admin {
    /// The series.
    pub metrics: Arc<Metrics>,
    /// Every scope (caches and controller queue), for readiness and the recomputed gauges.
    pub scopes: Vec<Arc<Scope>>,
    /// The webhook's readiness, when the webhook is on (liveness never depends on it).
    pub webhook: Option<Arc<Readiness>>,
}

impl Admin {
    /// Answers one request.
    pub fn respond(&self, method: &Method, path: &str) -> Response<Full<Bytes>> {
        match (method, path) {
            (&Method::GET, "/healthz") => text(StatusCode::OK, "ok\n".to_owned()),
            (&Method::GET, "/readyz") if !self.scopes.iter().all(|s| s.caches.is_ready()) => text(
                StatusCode::SERVICE_UNAVAILABLE,
                "watch caches not synced\n".to_owned(),
            ),
            (&Method::GET, "/readyz") => {
                match self
                    .webhook
                    .as_ref()
                    .and_then(|webhook| webhook.not_ready())
                {
                    Some(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
                    None => text(StatusCode::OK, "ready\n".to_owned()),
                }
            }
            (&Method::GET, "/metrics") => self.metrics(),
            (_, "/healthz" | "/readyz" | "/metrics") => {
                text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n".to_owned())
            }
            _ => text(StatusCode::NOT_FOUND, "not found\n".to_owned()),
        }
    }

    fn metrics(&self) -> Response<Full<Bytes>> {
        let flows: Vec<_> = self
            .scopes
            .iter()
            .flat_map(|s| s.caches.flows.state())
            .collect();
        let depth = self.scopes.iter().map(|s| s.queue.depth()).sum();
        let entries = self
            .scopes
            .iter()
            .map(|scope| scope.caches.index.sizes())
            .fold(StateEntries::default(), StateEntries::add);
        self.metrics
            .refresh(flows.iter().map(AsRef::as_ref), depth, entries);
        match self.metrics.encode() {
            Ok(body) => {
                let mut response = text(StatusCode::OK, body);
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                response
            }
            Err(error) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{}\n", chain(&error)),
            ),
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// Serves the admin endpoints on `listener` until the process ends.
pub async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(%error, "accepting an admin connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let admin = Arc::clone(&admin);
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let response = admin.respond(request.method(), request.uri().path());
                std::future::ready(Ok::<_, Infallible>(response))
            });
            if let Err(error) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin connection ended");
            }
        });
    }
}

#[cfg(test)]
#[allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::kube::caches::Caches;
    use http_body_util::BodyExt;

    fn admin() -> Admin {
        let (caches, _writers) = Caches::new(None);
        Admin {
            metrics: Arc::new(Metrics::new().unwrap()),
            scopes: vec![scope(caches)],
            webhook: None,
        }
    }

    fn scope(caches: Arc<Caches>) -> Arc<Scope> {
        Arc::new(Scope {
            caches,
            queue: Arc::default(),
        })
    }

    async fn body(response: Response<Full<Bytes>>) -> String {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn health_readiness_and_not_found() {
        let a = admin();
        assert_eq!(a.respond(&Method::GET, "/healthz").status(), StatusCode::OK);
        assert_eq!(
            a.respond(&Method::GET, "/readyz").status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        let synced = Admin {
            scopes: vec![scope(crate::kube::caches::tests::synced().await)],
            ..a
        };
        assert_eq!(
            synced.respond(&Method::GET, "/readyz").status(),
            StatusCode::OK
        );
        assert_eq!(
            synced.respond(&Method::GET, "/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            synced.respond(&Method::POST, "/metrics").status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }

    #[tokio::test]
    async fn with_the_webhook_on_readiness_says_why_it_is_not_ready() {
        let readiness = Arc::new(Readiness::default());
        let a = Admin {
            scopes: vec![scope(crate::kube::caches::tests::synced().await)],
            webhook: Some(Arc::clone(&readiness)),
            ..admin()
        };
        let response = a.respond(&Method::GET, "/readyz");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body(response).await, "no webhook certificate served yet\n");
        assert_eq!(a.respond(&Method::GET, "/healthz").status(), StatusCode::OK);
        readiness.set_ready();
        assert_eq!(a.respond(&Method::GET, "/readyz").status(), StatusCode::OK);
        readiness.set_not_ready("the served certificate does not chain".to_owned());
        let response = a.respond(&Method::GET, "/readyz");
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            body(response).await,
            "the served certificate does not chain\n"
        );
        assert_eq!(a.respond(&Method::GET, "/healthz").status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn metrics_are_in_the_text_format() {
        let a = admin();
        let text = body(a.respond(&Method::GET, "/metrics")).await;
        assert!(
            text.contains("# TYPE zen_flow_step_retries_total counter"),
            "{text}"
        );
        assert!(text.contains("zen_flow_workqueue_depth 0"), "{text}");
    }
}
