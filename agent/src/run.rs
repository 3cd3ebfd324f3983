//! The process: client, caches, admin port, webhook, signals, then the controllers (behind the
//! Lease).

use std::future::Future;
use std::sync::Arc;

use anyhow::Context as _;
use futures::future::join_all;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use tokio::sync::watch;

use crate::admin::{self, Admin};
use crate::args::Args;
use crate::error::chain;
use crate::flows::context::Context;
use crate::flows::key_locks::KeyLocks;
use crate::flows::{self, Scope};
use crate::kube::call::Calls;
use crate::kube::events::EventPublisher;
use crate::kube::leadership::Leadership;
use crate::leader::{self, Elector, Timing};
use crate::metrics::Metrics;
use crate::webhook::readiness::Readiness;
use crate::webhook::resolver::Resolver;
use crate::webhook::server;
use crate::webhook::sync::CertSync;
use jobflow::certs::{Names, San};

/// Runs the agent until SIGTERM or SIGINT (then `Ok`), or until it loses the Lease or cannot
/// start (then `Err`: the process should exit non-zero and be restarted).
pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = client(&args).await?;
    // Bound before anything starts, so a taken port fails the process at once.
    let listener = tokio::net::TcpListener::bind(args.admin_addr)
        .await
        .with_context(|| format!("binding the admin address {}", args.admin_addr))?;
    let webhook_listener = match args.webhook_addr.0 {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("binding the webhook address {addr}"))?,
        ),
        None => None,
    };
    let metrics = Arc::new(Metrics::new()?);
    let identity = args.identity();

    let namespaces: Vec<Option<String>> = if args.namespaces.is_empty() {
        vec![None]
    } else {
        args.namespaces.iter().cloned().map(Some).collect()
    };
    let scopes: Vec<Arc<Scope>> = namespaces
        .into_iter()
        .map(|namespace| Arc::new(Scope::start(&client, namespace)))
        .collect();

    let webhook = webhook_listener.as_ref().map(|_| {
        (
            Arc::new(Resolver::default()),
            Arc::new(Readiness::default()),
        )
    });
    let admin = Arc::new(Admin {
        metrics: Arc::clone(&metrics),
        scopes: scopes.clone(),
        webhook: webhook.as_ref().map(|(_, readiness)| Arc::clone(readiness)),
    });
    tracing::info!(addr = %args.admin_addr, "serving /metrics, /healthz and /readyz");
    tokio::spawn(admin::serve(listener, Arc::clone(&admin)));

    let (stop, stopped) = watch::channel(false);
    tokio::spawn(async move {
        match shutdown_signal().await {
            Ok(()) => tracing::info!("shutting down"),
            Err(error) => {
                tracing::error!(error = %chain(&error), "listening for signals failed; shutting down");
            }
        }
        stop.send_replace(true);
    });

    let events = EventPublisher::new(client.clone(), jobflow::labels::FIELD_MANAGER, &identity);
    // With election on, the controllers write only while the elector says this replica leads.
    let leadership = if args.leader_election {
        Leadership::elected()
    } else {
        Leadership::unelected()
    };
    if let (Some(listener), Some((resolver, readiness))) = (webhook_listener, webhook) {
        let held = Held {
            resolver,
            readiness,
            leadership: leadership.clone(),
            events: events.clone(),
            metrics: Arc::clone(&metrics),
        };
        start_webhook(&args, &client, listener, held)?;
    }
    let controllers = run_controllers(
        &client,
        &scopes,
        &events,
        &metrics,
        &leadership,
        args.concurrency,
        &stopped,
    );

    if args.leader_election {
        let namespace = args.lease_namespace();
        let elector = Elector::new(
            client.clone(),
            &namespace,
            &args.lease_name,
            &identity,
            Timing::default(),
            Arc::clone(&metrics),
            leadership,
        );
        leader::run(elector, stopped, controllers).await?;
    } else {
        controllers.await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// What the webhook shares with the rest of the process.
struct Held {
    resolver: Arc<Resolver>,
    readiness: Arc<Readiness>,
    leadership: Leadership,
    events: EventPublisher,
    metrics: Arc<Metrics>,
}

/// Serves the webhook and keeps its certificates (both run as long as the process).
fn start_webhook(
    args: &Args,
    client: &Client,
    listener: tokio::net::TcpListener,
    held: Held,
) -> anyhow::Result<()> {
    let Held {
        resolver,
        readiness,
        leadership,
        events,
        metrics,
    } = held;
    let config = server::tls_config(Arc::clone(&resolver))?;
    let namespace = args.lease_namespace();
    let names = Names {
        service: args.webhook_service.clone(),
        namespace: namespace.clone(),
        extra: args
            .webhook_extra_sans
            .iter()
            .map(|san| San::parse(san))
            .collect(),
    };
    tracing::info!(
        addr = ?args.webhook_addr.0,
        secret = %format!("{namespace}/{}", args.webhook_secret),
        mode = ?args.cert_mode,
        "serving the admission webhook on /validate"
    );
    let webhook = server::Webhook {
        access: args
            .webhook_access_check
            .then(|| kube::Api::all(client.clone())),
        metrics: Arc::clone(&metrics),
    };
    tokio::spawn(server::serve(listener, config, webhook));
    let sync = CertSync {
        secrets: kube::Api::namespaced(client.clone(), &namespace),
        configs: kube::Api::all(client.clone()),
        secret: args.webhook_secret.clone(),
        config: args.webhook_config.clone(),
        names,
        mode: args.cert_mode,
        leadership,
        resolver,
        readiness,
        events,
        metrics,
    };
    tokio::spawn(sync.run());
    Ok(())
}

async fn client(args: &Args) -> anyhow::Result<Client> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path).context("reading the kubeconfig")?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("loading {}", path.display()))?
        }
        None => Config::infer()
            .await
            .context("finding a cluster configuration")?,
    };
    Client::try_from(config).context("building the API client")
}

/// Waits for every cache, then runs one controller per scope until `stopped` turns true.
fn run_controllers(
    client: &Client,
    scopes: &[Arc<Scope>],
    events: &EventPublisher,
    metrics: &Arc<Metrics>,
    leadership: &Leadership,
    concurrency: u16,
    stopped: &watch::Receiver<bool>,
) -> impl Future<Output = ()> + use<> {
    let contexts: Vec<Arc<Context>> = scopes
        .iter()
        .map(|scope| {
            Arc::new(Context {
                client: client.clone(),
                calls: Calls::new(leadership.clone(), Arc::clone(metrics)),
                caches: Arc::clone(&scope.caches),
                queue: Arc::clone(&scope.queue),
                events: events.clone(),
                key_locks: KeyLocks::default(),
                metrics: Arc::clone(metrics),
            })
        })
        .collect();
    let stopped = stopped.clone();
    async move {
        let ready = join_all(contexts.iter().map(|ctx| ctx.caches.wait_until_ready()));
        tokio::select! {
            _ = ready => {}
            () = stop_requested(stopped.clone()) => return,
        }
        join_all(
            contexts
                .into_iter()
                .map(|ctx| flows::run(ctx, concurrency, stop_requested(stopped.clone()))),
        )
        .await;
    }
}

/// Resolves when a stop is requested (or the sender is gone).
async fn stop_requested(mut stopped: watch::Receiver<bool>) {
    // An error means the sender is gone: stopping is right then too.
    let _ = stopped.wait_for(|stop| *stop).await;
}

async fn shutdown_signal() -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    Ok(())
}
