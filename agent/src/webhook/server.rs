//! The webhook's HTTPS server: `POST /validate` answers AdmissionReviews, over TLS with the
//! certificate the [`Resolver`](super::resolver::Resolver) holds at each handshake.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use k8s_openapi::api::authorization::v1::SubjectAccessReview;
use kube::Api;
use kube::api::DynamicObject;
use kube::core::admission::{AdmissionRequest, AdmissionResponse};

use super::resolver::Resolver;
use super::{access, admit};
use crate::error::chain;
use crate::metrics::Metrics;

/// The largest AdmissionReview read (the API server's own request limit is 3 MiB).
const MAX_BODY: usize = 6 * 1024 * 1024;
/// The longest a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// rustls refused the configuration.
    #[error("configuring TLS")]
    ConfigureTls(#[source] rustls::Error),
}

/// The TLS settings: TLS 1.2 and 1.3 with ring, HTTP/1.1, certificates from `resolver`.
pub fn tls_config(resolver: Arc<Resolver>) -> Result<ServerConfig, ServeError> {
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(ServeError::ConfigureTls)?
            .with_no_client_auth()
            .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// What answering needs beyond the request.
#[derive(Clone)]
pub struct Webhook {
    /// Where to ask whether a flow's creator may create what the agent would create for it
    /// (`None`: the check is off).
    pub access: Option<Api<SubjectAccessReview>>,
    /// The series.
    pub metrics: Arc<Metrics>,
}

/// Serves the webhook on `listener` until the process ends.
pub async fn serve(listener: TcpListener, config: ServerConfig, webhook: Webhook) {
    let acceptor = TlsAcceptor::from(Arc::new(config));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(error) => {
                tracing::warn!(%error, "accepting a webhook connection failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let webhook = webhook.clone();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(error)) => {
                    webhook.metrics.webhook.handshake_error();
                    tracing::warn!(%error, "webhook TLS handshake failed");
                    return;
                }
                Err(_) => {
                    webhook.metrics.webhook.handshake_error();
                    tracing::warn!("webhook TLS handshake timed out");
                    return;
                }
            };
            if let Err(error) = http1::Builder::new()
                .serve_connection(
                    TokioIo::new(tls),
                    service_fn(move |request| handle(request, webhook.clone())),
                )
                .await
            {
                tracing::debug!(%error, "webhook connection ended");
            }
        });
    }
}

async fn handle(
    request: Request<Incoming>,
    webhook: Webhook,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.uri().path() != "/validate" {
        return Ok(reply(StatusCode::NOT_FOUND, "not found\n", "text/plain"));
    }
    if request.method() != Method::POST {
        return Ok(reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "POST only\n",
            "text/plain",
        ));
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(error) => {
            return Ok(reply(
                StatusCode::BAD_REQUEST,
                format!("reading the request: {error}\n"),
                "text/plain",
            ));
        }
    };
    let started = Instant::now();
    let (operation, response) = match admit::parse(&body) {
        Ok(request) => (
            format!("{:?}", request.operation).to_uppercase(),
            answer(&request, &webhook).await,
        ),
        Err(message) => (String::new(), AdmissionResponse::invalid(message)),
    };
    let result = match (response.allowed, operation.is_empty()) {
        (_, true) => "invalid",
        (true, false) => "allowed",
        (false, false) => "denied",
    };
    webhook
        .metrics
        .webhook
        .admission(&operation, result, started.elapsed().as_secs_f64());
    let review = response.into_review();
    Ok(match serde_json::to_vec(&review) {
        Ok(json) => reply(StatusCode::OK, json, "application/json"),
        Err(error) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("writing the AdmissionReview: {error}\n"),
            "text/plain",
        ),
    })
}

/// Validation's answer, then (CREATE, check on) the creator's permissions; fails closed when
/// they cannot be checked.
async fn answer(request: &AdmissionRequest<DynamicObject>, webhook: &Webhook) -> AdmissionResponse {
    let response = admit::decide(request);
    let (true, Some(api), Some(flow)) = (
        response.allowed,
        webhook.access.as_ref(),
        admit::created_flow(request),
    ) else {
        return response;
    };
    let namespace = request.namespace.clone().unwrap_or_default();
    let user = &request.user_info;
    match access::missing(api, user, &namespace, &access::required(&flow)).await {
        Ok(missing) if missing.is_empty() => response,
        Ok(missing) => response.deny(access::denial(user, &namespace, &missing)),
        Err(error) => {
            tracing::warn!(error = %chain(&error), "checking a flow creator's permissions failed");
            response.deny(chain(&error))
        }
    }
}

fn reply(
    status: StatusCode,
    body: impl Into<Bytes>,
    content_type: &'static str,
) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}
