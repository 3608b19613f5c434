//! The shared ingest gateway (`roomcast-ingest`), as the operator sees it: whether the platform
//! runs one, the URL streamers use, where its routing table and routing key live, and which
//! pods are the gateway (for rooms' NetworkPolicies).
//!
//! ```text
//!   OBS ──rtmps://<host>/live──► roomcast-ingest (operator namespace)
//!                                   │ reads ConfigMap <routes>: keyed hash of stream key -> room
//!                                   ▼
//!                                <room>-rtmp.<ns>.svc.<cluster domain>.:1935 (ClusterIP) ──► media worker
//! ```
//!
//! The operator writes the table ([`crate::routes`]); rooms choose per room with
//! `spec.ingest.expose`, whose default follows [`GatewayConfig::enabled`].

use clap::Args;
use roomcast_crds::{IngestExpose, StreamRoomSpec};

use crate::{Error, Result, labels::MatchLabels};

pub const DEFAULT_ROUTES_CONFIG_MAP: &str = "roomcast-ingest-routes";
pub const DEFAULT_ROUTING_KEY_SECRET: &str = "roomcast-ingest-routing-key";
/// Labels of the gateway pods the Helm chart runs (without the release's instance label).
pub const DEFAULT_GATEWAY_POD_LABELS: &str =
    "app.kubernetes.io/name=roomcast,app.kubernetes.io/component=ingest-gateway";

/// Operator flags of the ingest gateway. Setting `--ingest-gateway-url` turns it on.
#[derive(Args, Clone, Debug, Default)]
pub struct GatewayConfig {
    /// URL streamers publish to through the shared ingest gateway, e.g.
    /// `rtmps://ingest.example.com/live`. Set: rooms default to `spec.ingest.expose: gateway`
    /// and the operator publishes the gateway's routing table. Unset: no gateway.
    #[arg(long = "ingest-gateway-url", env = "ROOMCAST_INGEST_GATEWAY_URL")]
    pub url: Option<String>,
    /// ConfigMap in the operator's namespace the operator writes the routing table into
    /// (key `routes.json`) and the gateway watches.
    #[arg(
        long = "ingest-gateway-routes-configmap",
        env = "ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP",
        default_value = DEFAULT_ROUTES_CONFIG_MAP
    )]
    pub routes_config_map: String,
    /// Secret in the operator's namespace (key `key`) whose value keys the hashes of stream
    /// keys. Created by the operator with 64 random characters when missing; never
    /// overwritten.
    #[arg(
        long = "ingest-gateway-routing-key-secret",
        env = "ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET",
        default_value = DEFAULT_ROUTING_KEY_SECRET
    )]
    pub routing_key_secret: String,
    /// Labels of the gateway's pods (in the operator's namespace): rooms exposed through the
    /// gateway admit RTMP from these pods only (and from their own namespace).
    #[arg(
        long = "ingest-gateway-pod-labels",
        env = "ROOMCAST_INGEST_GATEWAY_POD_LABELS",
        default_value = DEFAULT_GATEWAY_POD_LABELS,
        value_parser = MatchLabels::parse
    )]
    pub pod_labels: MatchLabels,
}

impl GatewayConfig {
    /// True when the platform runs the gateway.
    pub fn enabled(&self) -> bool {
        self.url.is_some()
    }

    /// Whether a room's streamers go through the gateway: the room's choice, else the
    /// platform's. `Err` when the room asks for a gateway the platform does not run.
    pub fn routes_room(&self, spec: &StreamRoomSpec) -> Result<bool, &'static str> {
        match (spec.ingest.expose, self.enabled()) {
            (Some(IngestExpose::Service), _) => Ok(false),
            (Some(IngestExpose::Gateway), false) => Err(
                "spec.ingest.expose is gateway but the platform runs no ingest gateway (Helm value ingestGateway.enabled); set expose: service or leave it unset",
            ),
            (Some(IngestExpose::Gateway), true) => Ok(true),
            (None, enabled) => Ok(enabled),
        }
    }

    /// Check what clap cannot; empty strings count as unset (the chart may pass every variable).
    pub fn normalize(&mut self) -> Result<()> {
        if self.url.as_deref().is_some_and(|u| u.trim().is_empty()) {
            self.url = None;
        }
        if let Some(url) = &self.url {
            check_url(url).map_err(|why| {
                Error::Config(format!(
                    "ROOMCAST_INGEST_GATEWAY_URL (--ingest-gateway-url, Helm value ingestGateway.host) {why}, got {url:?}"
                ))
            })?;
        }
        for (value, default) in [
            (&mut self.routes_config_map, DEFAULT_ROUTES_CONFIG_MAP),
            (&mut self.routing_key_secret, DEFAULT_ROUTING_KEY_SECRET),
        ] {
            if value.trim().is_empty() {
                default.clone_into(value);
            }
        }
        for (value, what) in [
            (
                &self.routes_config_map,
                "ROOMCAST_INGEST_GATEWAY_ROUTES_CONFIGMAP (--ingest-gateway-routes-configmap)",
            ),
            (
                &self.routing_key_secret,
                "ROOMCAST_INGEST_GATEWAY_ROUTING_KEY_SECRET (--ingest-gateway-routing-key-secret)",
            ),
        ] {
            if !crate::labels::is_dns_subdomain(value) {
                return Err(Error::Config(format!(
                    "{what} must be an object name (a DNS subdomain), got {value:?}"
                )));
            }
        }
        if self.enabled() && self.pod_labels.0.is_empty() {
            return Err(Error::Config(
                "ROOMCAST_INGEST_GATEWAY_POD_LABELS (--ingest-gateway-pod-labels) must name the gateway pods' labels: empty would admit RTMP from every pod of the operator's namespace".into(),
            ));
        }
        Ok(())
    }
}

/// `rtmp://` or `rtmps://`, a host (DNS name or IP address), an optional port and an
/// application path: what OBS's "Server" field takes. Nothing that could carry a key or
/// trick a client: no user info, query or fragment.
fn check_url(url: &str) -> std::result::Result<(), &'static str> {
    const SHAPE: &str = "must be rtmp:// or rtmps://, a host, an optional port and an application path such as /live";
    let rest = url
        .strip_prefix("rtmps://")
        .or_else(|| url.strip_prefix("rtmp://"))
        .ok_or(SHAPE)?;
    let (authority, path) = rest.split_once('/').ok_or(SHAPE)?;
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (addr, after) = v6.split_once(']').ok_or(SHAPE)?;
            addr.parse::<std::net::Ipv6Addr>().map_err(|_| SHAPE)?;
            (addr, after.strip_prefix(':'))
        }
        None => match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let host_ok = host.parse::<std::net::IpAddr>().is_ok() || crate::labels::is_dns_subdomain(host);
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok_and(|p| p != 0));
    let path_ok = !path.is_empty()
        && !path.ends_with('/')
        && path.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        });
    if host_ok && port_ok && path_ok {
        Ok(())
    } else {
        Err(SHAPE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::parse;

    #[test]
    fn the_url_turns_the_gateway_on_and_is_checked() {
        let off = parse(&[]).expect("parses");
        assert!(!off.gateway.enabled());
        for good in [
            "rtmps://ingest.example.com/live",
            "rtmp://ingest.example.com:1935/live",
            "rtmps://203.0.113.7:443/live/app-2",
            "rtmps://[2001:db8::1]:443/live",
        ] {
            let config = parse(&["--ingest-gateway-url", good])
                .expect("parses")
                .normalized()
                .unwrap_or_else(|e| panic!("{good}: {e}"));
            assert!(config.gateway.enabled(), "{good}");
        }
        for bad in [
            "https://ingest.example.com/live",
            "rtmps://ingest.example.com",
            "rtmps://ingest.example.com/",
            "rtmps:///live",
            "rtmps://user:pw@ingest.example.com/live",
            "rtmps://ingest.example.com/live?key=abc",
            "rtmps://ingest.example.com/live#x",
            "rtmps://ingest.example.com/../live",
            "rtmps://ingest.example.com:0/live",
            "rtmps://ingest.example.com:99999/live",
            "rtmps://ingest example.com/live",
            "rtmps://Ingest.Example.com/live",
            "rtmps://[::g]/live",
            "rtmps://ingest.example.com/live\n",
            "rtmps://ingest.example.com/li%2Fve",
        ] {
            let err = parse(&["--ingest-gateway-url", bad])
                .expect("parses")
                .normalized()
                .expect_err(bad)
                .to_string();
            assert!(
                err.contains("ROOMCAST_INGEST_GATEWAY_URL") && err.contains("ingestGateway.host"),
                "{err}"
            );
        }
        let blank = parse(&["--ingest-gateway-url", " "])
            .expect("parses")
            .normalized()
            .expect("blank is unset");
        assert!(!blank.gateway.enabled());
    }

    #[test]
    fn names_and_pod_labels_are_checked_when_the_gateway_is_on() {
        let on = ["--ingest-gateway-url", "rtmps://ingest.example.com/live"];
        for (flag, bad) in [
            ("--ingest-gateway-routes-configmap", "Routes"),
            ("--ingest-gateway-routes-configmap", "../x"),
            ("--ingest-gateway-routing-key-secret", "key secret"),
            ("--ingest-gateway-routing-key-secret", "a/b"),
        ] {
            let mut args = on.to_vec();
            args.extend([flag, bad]);
            parse(&args).expect("parses").normalized().expect_err(bad);
        }
        let blank = parse(&["--ingest-gateway-routes-configmap", ""])
            .expect("parses")
            .normalized()
            .expect("blank is the default");
        assert_eq!(blank.gateway.routes_config_map, DEFAULT_ROUTES_CONFIG_MAP);
        let mut args = on.to_vec();
        args.extend(["--ingest-gateway-pod-labels", ""]);
        let err = parse(&args)
            .expect("parses")
            .normalized()
            .expect_err("empty labels")
            .to_string();
        assert!(err.contains("ROOMCAST_INGEST_GATEWAY_POD_LABELS"), "{err}");
        assert!(parse(&["--ingest-gateway-pod-labels", "a=b,bad key=x"]).is_err());
    }

    #[test]
    fn rooms_follow_the_platform_unless_they_choose() {
        let spec = |expose: Option<IngestExpose>| {
            let mut spec = StreamRoomSpec::default();
            spec.ingest.expose = expose;
            spec
        };
        let off = GatewayConfig::default();
        let on = GatewayConfig {
            url: Some("rtmps://ingest.example.com/live".into()),
            ..GatewayConfig::default()
        };
        assert_eq!(off.routes_room(&spec(None)), Ok(false));
        assert_eq!(on.routes_room(&spec(None)), Ok(true));
        assert_eq!(
            on.routes_room(&spec(Some(IngestExpose::Service))),
            Ok(false)
        );
        assert_eq!(
            off.routes_room(&spec(Some(IngestExpose::Service))),
            Ok(false)
        );
        assert_eq!(on.routes_room(&spec(Some(IngestExpose::Gateway))), Ok(true));
        assert!(off.routes_room(&spec(Some(IngestExpose::Gateway))).is_err());
    }
}
