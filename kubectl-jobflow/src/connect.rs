//! Connecting as kubectl does: `--kubeconfig`, `--context`, `-n`, else the usual defaults.

use jobflow::api::JobFlow;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

use crate::cli::GlobalOptions;
use crate::error::Error;

/// A client and the namespace commands act in.
pub struct Cluster {
    /// The client.
    pub client: Client,
    /// `-n`, else the context's namespace, else `default`.
    pub namespace: String,
}

impl Cluster {
    /// The JobFlows of the namespace.
    pub fn flows(&self) -> Api<JobFlow> {
        Api::namespaced(self.client.clone(), &self.namespace)
    }

    /// Reads one flow; a missing one is [`Error::FlowNotFound`].
    pub async fn flow(&self, name: &str) -> Result<JobFlow, Error> {
        match self.flows().get(name).await {
            Ok(flow) => Ok(flow),
            Err(kube::Error::Api(status)) if status.code == 404 => Err(Error::FlowNotFound {
                namespace: self.namespace.clone(),
                name: name.to_owned(),
            }),
            Err(source) => Err(Error::Api {
                action: format!("get jobflow {}/{name}", self.namespace),
                source,
            }),
        }
    }
}

/// Builds the client from the global options (no request is made yet).
pub async fn connect(global: &GlobalOptions) -> Result<Cluster, Error> {
    let options = KubeConfigOptions {
        context: global.context.clone(),
        ..KubeConfigOptions::default()
    };
    let fail = |source: Box<dyn std::error::Error + Send + Sync>| Error::LoadKubeconfig {
        path: global.kubeconfig.clone(),
        source,
    };
    let config = match (&global.kubeconfig, &global.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| fail(Box::new(e)))?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(|e| fail(Box::new(e)))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(|e| fail(Box::new(e)))?,
        (None, None) => Config::infer().await.map_err(|e| fail(Box::new(e)))?,
    };
    let namespace = global
        .namespace
        .clone()
        .unwrap_or_else(|| config.default_namespace.clone());
    let client = Client::try_from(config).map_err(|e| fail(Box::new(e)))?;
    Ok(Cluster { client, namespace })
}
