//! Which names the serving leaf must carry: the Service's DNS names plus extra SANs.

use std::fmt;
use std::net::IpAddr;

/// One subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum San {
    /// A DNS name.
    Dns(String),
    /// An IP address.
    Ip(IpAddr),
}

impl San {
    /// An IP address if `text` is one, else a DNS name.
    pub fn parse(text: &str) -> Self {
        text.parse::<IpAddr>()
            .map_or_else(|_| Self::Dns(text.to_ascii_lowercase()), Self::Ip)
    }
}

impl fmt::Display for San {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dns(name) => f.write_str(name),
            Self::Ip(ip) => ip.fmt(f),
        }
    }
}

/// What the certificates are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The webhook Service's name.
    pub service: String,
    /// The Service's (and the agent's) namespace.
    pub namespace: String,
    /// More SANs (`--webhook-extra-san`), e.g. `127.0.0.1` when the API server calls by URL.
    pub extra: Vec<San>,
}

impl Names {
    /// The leaf's SANs: `<svc>`, `<svc>.<ns>`, `<svc>.<ns>.svc`, then the extras, sorted and
    /// without duplicates.
    pub fn sans(&self) -> Vec<San> {
        let Self {
            service,
            namespace,
            extra,
        } = self;
        let mut sans: Vec<San> = [
            service.clone(),
            format!("{service}.{namespace}"),
            format!("{service}.{namespace}.svc"),
        ]
        .iter()
        .map(|name| San::parse(name))
        .chain(extra.iter().cloned())
        .collect();
        sans.sort();
        sans.dedup();
        sans
    }

    /// The CA's common name.
    pub fn ca_common_name(&self) -> String {
        format!("{}.{} webhook CA", self.service, self.namespace)
    }
}
