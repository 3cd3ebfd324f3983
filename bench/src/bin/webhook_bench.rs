//! `jobflow-webhook-bench`: admission latency of the agent's webhook for one flow of N steps,
//! at a steady rate, on the local control plane (tests/cluster/up.sh). Starts an agent serving
//! the webhook in a fresh namespace, registers a configuration for that namespace alone (by
//! URL), then measures two ways at once:
//! - `direct`: AdmissionReview POSTs to the agent over one kept-alive TLS connection (what the
//!   webhook itself costs: parse, validate, DAG, answer; the creator access check included);
//! - `through the API server`: server-side dry-run creates (what `kubectl apply` waits for).
//!
//! ```text
//! cargo build --release -p jobflow-agent -p jobflow-bench --bin jobflow-webhook-bench
//! target/release/jobflow-webhook-bench --steps 50 --rate 20 --duration 30s
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Bytes;
use jobflow::api::JobFlow;
use jobflow::certs::CA_CRT;
use jobflow::validation::parse_duration;
use jobflow_bench::shape::flow;
use jobflow_bench::stats::Percentiles;
use jobflow_tests::TestNamespace;
use jobflow_tests::fixture::WebhookSetup;
use jobflow_tests::webhook::{wait_until_answering, with_webhook_config};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::time::Instant;

/// Measures the webhook's admission latency.
#[derive(Debug, Parser)]
#[command(name = "jobflow-webhook-bench")]
struct Args {
    /// Steps of the flow admitted.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Requests per second, each way.
    #[arg(long, default_value_t = 20)]
    rate: u32,
    /// How long to measure (a Go duration).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// The agent binary [default: target/release/jobflow-agent].
    #[arg(long)]
    agent: Option<std::path::PathBuf>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = jobflow_tests::client().await?;
    // The CRD is installed by the fixture (WebhookSetup::new).
    let ns = TestNamespace::create(client, "webhook-bench").await?;
    let result = bench(&args, &ns).await;
    ns.delete().await?;
    let (direct, through) = result?;
    let print = |what: &str, p: &Percentiles| {
        println!(
            "{what:<24} n={:<5} p50={:.2} ms  p90={:.2} ms  p99={:.2} ms  max={:.2} ms",
            p.count, p.p50_ms, p.p90_ms, p.p99_ms, p.max_ms
        );
    };
    println!(
        "admission of a {}-step flow at {}/s for {:?}:",
        args.steps, args.rate, args.duration
    );
    print("direct (webhook)", &direct);
    print("through the API server", &through);
    Ok(())
}

async fn bench(args: &Args, ns: &TestNamespace) -> anyhow::Result<(Percentiles, Percentiles)> {
    let setup = WebhookSetup::new(ns.clone()).await?;
    let (client, addr) = (&setup.client, setup.addr);
    let config = setup.config(None)?;
    let binary = args
        .agent
        .clone()
        .unwrap_or_else(|| jobflow_tests::workspace_root().join("target/release/jobflow-agent"));
    let mut out = None;
    with_webhook_config(client, &config, || async {
        let agent = setup
            .agent()
            .binary(&binary)
            .log_level("warn")
            .start()
            .await?;
        let flows: Api<JobFlow> = ns.api();
        wait_until_answering(&flows, Duration::from_secs(60)).await?;
        let secret: Secret = ns.api().get("jobflow-webhook-tls").await?;
        let bundle = secret.data.context("no data")?[CA_CRT].0.clone();
        let subject = flow("bench", args.steps, Duration::from_secs(1));
        let review = review(&subject, ns.name())?;
        let direct = tokio::spawn(direct(addr, bundle, review, args.rate, args.duration));
        let through = through_apiserver(&flows, &subject, args.rate, args.duration).await?;
        let direct = direct.await??;
        agent.ensure_running()?;
        out = Some((Percentiles::of(direct), Percentiles::of(through)));
        Ok(())
    })
    .await?;
    out.context("no figures")
}

/// An AdmissionReview asking to create `flow` in `namespace`, as the API server sends it.
fn review(flow: &JobFlow, namespace: &str) -> anyhow::Result<Vec<u8>> {
    let mut object = serde_json::to_value(flow)?;
    object["metadata"]["namespace"] = json!(namespace);
    Ok(serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "bench",
            "kind": {"group": "workflow.kube-zen.io", "version": "v1alpha1", "kind": "JobFlow"},
            "resource": {"group": "workflow.kube-zen.io", "version": "v1alpha1", "resource": "jobflows"},
            "name": flow.metadata.name, "namespace": namespace, "operation": "CREATE",
            "userInfo": {"username": "system:admin", "groups": ["system:masters"]},
            "object": object, "dryRun": true,
        },
    }))?)
}

/// POSTs `body` to the webhook at `rate` for `duration` over one TLS connection; milliseconds.
async fn direct(
    addr: std::net::SocketAddr,
    bundle: Vec<u8>,
    body: Vec<u8>,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Vec<f64>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&bundle) {
        roots.add(cert?)?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.set_nodelay(true)?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::IpAddress(addr.ip().into()), tcp)
        .await?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let body = Bytes::from(body);
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let end = Instant::now() + duration;
    let mut millis = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let request = hyper::Request::post("/validate")
            .header("content-type", "application/json")
            .header("host", addr.to_string())
            .body(Full::new(body.clone()))?;
        let start = Instant::now();
        let response = sender.send_request(request).await?;
        let answer = response.into_body().collect().await?.to_bytes();
        millis.push(start.elapsed().as_secs_f64() * 1000.0);
        let review: serde_json::Value = serde_json::from_slice(&answer)?;
        anyhow::ensure!(
            review["response"]["allowed"] == json!(true),
            "the flow was not admitted: {review}"
        );
    }
    Ok(millis)
}

/// Server-side dry-run creates of `flow` at `rate` for `duration`; milliseconds.
async fn through_apiserver(
    flows: &Api<JobFlow>,
    flow: &JobFlow,
    rate: u32,
    duration: Duration,
) -> anyhow::Result<Vec<f64>> {
    let params = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1) / rate);
    let end = Instant::now() + duration;
    let mut millis = Vec::new();
    while Instant::now() < end {
        tick.tick().await;
        let start = Instant::now();
        flows.create(&params, flow).await?;
        millis.push(start.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(millis)
}
