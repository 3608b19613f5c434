//! The platform's side of the rooms' NetworkPolicies: which namespaces may reach a room's
//! pods, and where those pods may connect. Kubernetes cannot express host names in a
//! NetworkPolicy, so the stores are given as CIDRs plus ports; a store without CIDRs is
//! reachable on its ports only, at any address but cloud metadata (link-local and the few
//! metadata addresses outside it).

use clap::Args;

use crate::labels::MatchLabels;

/// Namespaces of the Ingress controller: ingress-nginx's namespace by default.
pub const DEFAULT_INGRESS_NAMESPACE_SELECTOR: &str = "kubernetes.io/metadata.name=ingress-nginx";
/// Namespaces of Prometheus: kube-prometheus-stack's usual `monitoring`.
pub const DEFAULT_MONITORING_NAMESPACE_SELECTOR: &str = "kubernetes.io/metadata.name=monitoring";
/// The API server listens on 443 behind the `kubernetes` Service and on 6443 on most
/// control-plane nodes; NetworkPolicies see the endpoint's port after DNAT.
pub const DEFAULT_API_SERVER_PORTS: &str = "443,6443";
pub const DEFAULT_S3_PORTS: &str = "443";
pub const DEFAULT_MONGODB_PORTS: &str = "27017";
pub const DEFAULT_REDIS_PORTS: &str = "6379";

/// One kind of destination a worker connects to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Destination {
    /// Networks, normalized (`10.0.0.0/8`, `fd00::/8`). Empty: any address but metadata.
    pub cidrs: Vec<String>,
    pub ports: Vec<u16>,
}

/// Who may reach a room and where its pods may go.
#[derive(Args, Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// Namespaces whose pods may reach the rooms' HLS origin and chat (the Ingress
    /// controller's), as `key=value[,key=value]` namespace labels. Empty: every namespace.
    #[arg(
        long,
        env = "ROOMCAST_INGRESS_NAMESPACE_SELECTOR",
        default_value = DEFAULT_INGRESS_NAMESPACE_SELECTOR,
        value_parser = MatchLabels::parse
    )]
    pub ingress_namespace_selector: MatchLabels,
    /// Namespaces whose pods may scrape the workers' metrics port (Prometheus'), as
    /// `key=value[,key=value]` namespace labels. Empty: every namespace.
    #[arg(
        long,
        env = "ROOMCAST_MONITORING_NAMESPACE_SELECTOR",
        default_value = DEFAULT_MONITORING_NAMESPACE_SELECTOR,
        value_parser = MatchLabels::parse
    )]
    pub monitoring_namespace_selector: MatchLabels,
    /// Addresses of the API server (the `kubernetes` Service's endpoints), comma-separated
    /// CIDRs. Workers write the room status there. Empty: any address on its ports.
    #[arg(long, env = "ROOMCAST_EGRESS_API_SERVER_CIDRS", default_value = "", value_parser = Cidrs::parse)]
    pub egress_api_server_cidrs: Cidrs,
    /// Ports of the API server.
    #[arg(long, env = "ROOMCAST_EGRESS_API_SERVER_PORTS", value_delimiter = ',', default_value = DEFAULT_API_SERVER_PORTS, value_parser = clap::value_parser!(u16).range(1..))]
    pub egress_api_server_ports: Vec<u16>,
    /// Addresses of the S3 store recording rooms upload to. Empty: any address on its ports.
    #[arg(long, env = "ROOMCAST_EGRESS_S3_CIDRS", default_value = "", value_parser = Cidrs::parse)]
    pub egress_s3_cidrs: Cidrs,
    /// Ports of the S3 store.
    #[arg(long, env = "ROOMCAST_EGRESS_S3_PORTS", value_delimiter = ',', default_value = DEFAULT_S3_PORTS, value_parser = clap::value_parser!(u16).range(1..))]
    pub egress_s3_ports: Vec<u16>,
    /// Addresses of MongoDB. Empty: any address on its ports.
    #[arg(long, env = "ROOMCAST_EGRESS_MONGODB_CIDRS", default_value = "", value_parser = Cidrs::parse)]
    pub egress_mongodb_cidrs: Cidrs,
    /// Ports of MongoDB.
    #[arg(long, env = "ROOMCAST_EGRESS_MONGODB_PORTS", value_delimiter = ',', default_value = DEFAULT_MONGODB_PORTS, value_parser = clap::value_parser!(u16).range(1..))]
    pub egress_mongodb_ports: Vec<u16>,
    /// Addresses of Redis. Empty: any address on its ports.
    #[arg(long, env = "ROOMCAST_EGRESS_REDIS_CIDRS", default_value = "", value_parser = Cidrs::parse)]
    pub egress_redis_cidrs: Cidrs,
    /// Ports of Redis.
    #[arg(long, env = "ROOMCAST_EGRESS_REDIS_PORTS", value_delimiter = ',', default_value = DEFAULT_REDIS_PORTS, value_parser = clap::value_parser!(u16).range(1..))]
    pub egress_redis_ports: Vec<u16>,
}

/// Comma-separated CIDRs or addresses, normalized (`10.1.2.3/8` becomes `10.0.0.0/8`, an
/// address `/32` or `/128`). Empty text: none.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Cidrs(pub Vec<String>);

impl Cidrs {
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .filter(|entry| !entry.trim().is_empty())
            .map(|entry| {
                roomcast_runtime::clientip::parse_network(entry).map(|net| net.to_string())
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

fn ports(text: &str) -> Vec<u16> {
    text.split(',')
        .filter_map(|p| p.trim().parse().ok())
        .collect()
}

impl Default for NetworkConfig {
    /// The same as the flags' defaults, so configurations built in code (tests, `roomcast
    /// dev`) get the policies a default install gets.
    fn default() -> Self {
        let selector = |text| MatchLabels::parse(text).unwrap_or_default();
        Self {
            ingress_namespace_selector: selector(DEFAULT_INGRESS_NAMESPACE_SELECTOR),
            monitoring_namespace_selector: selector(DEFAULT_MONITORING_NAMESPACE_SELECTOR),
            egress_api_server_cidrs: Cidrs::default(),
            egress_api_server_ports: ports(DEFAULT_API_SERVER_PORTS),
            egress_s3_cidrs: Cidrs::default(),
            egress_s3_ports: ports(DEFAULT_S3_PORTS),
            egress_mongodb_cidrs: Cidrs::default(),
            egress_mongodb_ports: ports(DEFAULT_MONGODB_PORTS),
            egress_redis_cidrs: Cidrs::default(),
            egress_redis_ports: ports(DEFAULT_REDIS_PORTS),
        }
    }
}

impl NetworkConfig {
    pub fn api_server(&self) -> Destination {
        destination(&self.egress_api_server_cidrs, &self.egress_api_server_ports)
    }

    pub fn s3(&self) -> Destination {
        destination(&self.egress_s3_cidrs, &self.egress_s3_ports)
    }

    pub fn mongodb(&self) -> Destination {
        destination(&self.egress_mongodb_cidrs, &self.egress_mongodb_ports)
    }

    pub fn redis(&self) -> Destination {
        destination(&self.egress_redis_cidrs, &self.egress_redis_ports)
    }
}

fn destination(cidrs: &Cidrs, ports: &[u16]) -> Destination {
    Destination {
        cidrs: cidrs.0.clone(),
        ports: ports.to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<NetworkConfig, String> {
        crate::config::tests::parse(args).map(|config| config.network)
    }

    #[test]
    fn defaults_in_code_are_the_flag_defaults() {
        assert_eq!(parse(&[]).expect("parses"), NetworkConfig::default());
        assert_eq!(NetworkConfig::default().api_server().ports, [443, 6443]);
    }

    #[test]
    fn destinations_are_normalized_cidrs_and_ports() {
        let config = parse(&[
            "--egress-s3-cidrs",
            "10.1.2.3/8,192.168.1.5,fd00::1/8",
            "--egress-s3-ports",
            "443,9000",
        ])
        .expect("parses");
        assert_eq!(
            config.s3(),
            Destination {
                cidrs: vec![
                    "10.0.0.0/8".to_owned(),
                    "192.168.1.5/32".to_owned(),
                    "fd00::/8".to_owned()
                ],
                ports: vec![443, 9000],
            }
        );
    }

    #[test]
    fn empty_cidrs_mean_none_so_a_chart_can_always_pass_the_variable() {
        let config =
            parse(&["--egress-mongodb-cidrs", "", "--egress-redis-cidrs", " , "]).expect("parses");
        assert_eq!(config.mongodb().cidrs, Vec::<String>::new());
        assert_eq!(config.redis().cidrs, Vec::<String>::new());
    }

    #[test]
    fn bad_destinations_and_selectors_are_refused_naming_the_flag() {
        for args in [
            &["--egress-redis-cidrs", "redis.svc"][..],
            &["--egress-redis-cidrs", "10.0.0.0/33"],
            &["--egress-redis-cidrs", "10.0.0.1,,nope"],
            &["--egress-mongodb-ports", "0"],
            &["--egress-mongodb-ports", "70000"],
            &["--egress-api-server-ports", "https"],
            &["--ingress-namespace-selector", "name in (a)"],
            &["--monitoring-namespace-selector", "team"],
        ] {
            let err = parse(args).expect_err(args[1]);
            assert!(err.contains(args[0]), "{err}");
        }
    }
}
