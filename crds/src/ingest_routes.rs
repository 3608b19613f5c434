//! The ingest gateway's routing table: which room a stream key publishes to, published by the
//! operator so that the gateway never reads a tenant's Secret.
//!
//! The operator already reads every room's stream key (it generates them). It writes one
//! ConfigMap in its own namespace whose `routes.json` maps a keyed hash of each room's current
//! key to that room and its media Service. The gateway watches that ConfigMap, hashes the stream
//! name a publisher presents with the same routing key (a Secret only the operator and the
//! gateway mount), and relays the session to the room it finds. A leaked routing table names
//! rooms but gives no key away: without the routing key the hashes cannot even be tested
//! offline. The media worker still checks the key itself; the gateway only routes.
//!
//! ```json
//! {"version": 1, "routes": [
//!   {"keyHash": "<64 hex>", "room": "team-a/lobby",
//!    "backend": "lobby-rtmp.team-a.svc.cluster.local.:1935"}]}
//! ```

use std::collections::HashMap;
use std::fmt;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// Key of the routing table inside its ConfigMap.
pub const ROUTES_DATA_KEY: &str = "routes.json";
/// Key of the routing key inside its Secret.
pub const ROUTING_KEY_DATA_KEY: &str = "key";
/// The only format version this build reads and writes.
pub const ROUTES_FORMAT_VERSION: u32 = 1;
/// A routing key shorter than this is refused: it is what keeps the hashes from being tested
/// offline, so it gets the strength of an HMAC-SHA256 key.
pub const MIN_ROUTING_KEY_BYTES: usize = 32;
/// The shortest stream key the operator routes, in characters after trimming. Generated keys
/// are 40; a shorter key a tenant chose could be guessed, and a room's `DuplicateStreamKey`
/// condition would confirm each guess that matched another room's key.
pub const MIN_STREAM_KEY_CHARS: usize = 32;
/// A ConfigMap holds at most 1 MiB; a table bigger than that was not written by the operator.
pub const MAX_ROUTES_JSON_BYTES: usize = 1024 * 1024;

/// Why a routing table or key was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteTableError {
    #[error("routing key is {0} bytes; at least {MIN_ROUTING_KEY_BYTES} are required")]
    ShortRoutingKey(usize),
    #[error(
        "routing table is {0} bytes; more than the {MAX_ROUTES_JSON_BYTES} a ConfigMap can hold"
    )]
    TooLarge(usize),
    #[error("routing table is not valid JSON: {0}")]
    Json(String),
    #[error(
        "routing table version {0} is not supported (this build reads version {ROUTES_FORMAT_VERSION})"
    )]
    Version(u32),
    #[error("route {index}: keyHash must be 64 lowercase hex digits")]
    KeyHash { index: usize },
    #[error("route {index}: room {room:?} is not <namespace>/<name>")]
    Room { index: usize, room: String },
    #[error("route {index}: backend {backend:?} is not <host>:<port>")]
    Backend { index: usize, backend: String },
    #[error("route {index}: keyHash also routes room {other}")]
    DuplicateKeyHash { index: usize, other: String },
}

/// The secret that keys the hashes. Never printed.
#[derive(Clone)]
pub struct RoutingKey(Vec<u8>);

impl RoutingKey {
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, RouteTableError> {
        let bytes = bytes.into();
        if bytes.len() < MIN_ROUTING_KEY_BYTES {
            return Err(RouteTableError::ShortRoutingKey(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// HMAC-SHA256 of the stream key, as 64 lowercase hex digits.
    pub fn hash(&self, stream_key: &str) -> KeyHash {
        // `new_from_slice` accepts keys of any length for HMAC; the length floor is ours.
        let mut mac =
            <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC accepts any key length");
        mac.update(stream_key.as_bytes());
        let digest = mac.finalize().into_bytes();
        KeyHash(digest.iter().map(|b| format!("{b:02x}")).collect())
    }
}

impl fmt::Debug for RoutingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RoutingKey([redacted])")
    }
}

/// A keyed hash of a stream key, as it appears in the table.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KeyHash(String);

impl KeyHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn is_well_formed(&self) -> bool {
        self.0.len() == 64
            && self
                .0
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }
}

/// One room reachable through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Route {
    pub key_hash: KeyHash,
    /// `<namespace>/<name>` of the StreamRoom, for logs and metrics.
    pub room: String,
    /// `<host>:<port>` of the room's media RTMP Service.
    pub backend: String,
}

impl Route {
    /// Whether the backend's host is a DNS name without the trailing dot: a resolver looks it
    /// up through its search list first, where another namespace may answer. Only an operator
    /// older than the fully qualified names writes these (IP addresses are not names).
    pub fn backend_is_relative_name(&self) -> bool {
        let host = self
            .backend
            .rsplit_once(':')
            .map_or(self.backend.as_str(), |(host, _)| host);
        !host.ends_with('.') && host.parse::<std::net::Ipv4Addr>().is_err()
    }
}

/// The whole table, as the operator writes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub version: u32,
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// A table of the current version; routes are sorted by room so that the operator's
    /// writes are stable and an unchanged table is not rewritten.
    pub fn new(mut routes: Vec<Route>) -> Self {
        routes.sort_by(|a, b| {
            a.room
                .cmp(&b.room)
                .then_with(|| a.key_hash.0.cmp(&b.key_hash.0))
        });
        Self {
            version: ROUTES_FORMAT_VERSION,
            routes,
        }
    }

    /// Read and check a table. Every route must be well formed: a table the gateway cannot
    /// trust whole is refused whole, and the gateway keeps its last good one.
    pub fn parse(json: &[u8]) -> Result<Self, RouteTableError> {
        if json.len() > MAX_ROUTES_JSON_BYTES {
            return Err(RouteTableError::TooLarge(json.len()));
        }
        let table: Self =
            serde_json::from_slice(json).map_err(|e| RouteTableError::Json(e.to_string()))?;
        table.validate()?;
        Ok(table)
    }

    pub fn validate(&self) -> Result<(), RouteTableError> {
        if self.version != ROUTES_FORMAT_VERSION {
            return Err(RouteTableError::Version(self.version));
        }
        let mut seen: HashMap<&KeyHash, &str> = HashMap::new();
        for (index, route) in self.routes.iter().enumerate() {
            if !route.key_hash.is_well_formed() {
                return Err(RouteTableError::KeyHash { index });
            }
            if !is_room_name(&route.room) {
                return Err(RouteTableError::Room {
                    index,
                    room: route.room.clone(),
                });
            }
            if !is_backend(&route.backend) {
                return Err(RouteTableError::Backend {
                    index,
                    backend: route.backend.clone(),
                });
            }
            if let Some(other) = seen.insert(&route.key_hash, &route.room) {
                return Err(RouteTableError::DuplicateKeyHash {
                    index,
                    other: other.to_owned(),
                });
            }
        }
        Ok(())
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a route table always serializes")
    }

    /// An index for lookups by key hash.
    pub fn index(&self) -> HashMap<KeyHash, Route> {
        self.routes
            .iter()
            .map(|r| (r.key_hash.clone(), r.clone()))
            .collect()
    }
}

/// DNS-1123 label: what namespaces and room names are.
fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_room_name(room: &str) -> bool {
    matches!(room.split_once('/'), Some((ns, name)) if is_dns_label(ns) && is_dns_label(name))
}

/// `<host>:<port>`, the host a DNS name. Fully qualified names with the trailing dot are what
/// the operator writes (no resolver search list is tried for them); relative names are still
/// read, because a table written by an older operator stays in use during an upgrade until
/// the new operator rewrites it, within a second of starting.
fn is_backend(backend: &str) -> bool {
    let Some((host, port)) = backend.rsplit_once(':') else {
        return false;
    };
    let host = host.strip_suffix('.').unwrap_or(host);
    let port_ok = port.parse::<u16>().is_ok_and(|p| p != 0);
    let host_ok = !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    port_ok && host_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> RoutingKey {
        RoutingKey::new(vec![7u8; 32]).expect("32 bytes")
    }

    fn route(key_hash: KeyHash, room: &str) -> Route {
        Route {
            key_hash,
            room: room.into(),
            backend: "lobby-rtmp.team-a.svc.cluster.local.:1935".into(),
        }
    }

    #[test]
    fn hashes_are_keyed_and_stable() {
        let a = key().hash("live_abc");
        assert_eq!(a, key().hash("live_abc"));
        assert_ne!(a, key().hash("live_abd"));
        let other = RoutingKey::new(vec![8u8; 32]).expect("32 bytes");
        assert_ne!(
            a,
            other.hash("live_abc"),
            "another routing key gives another hash"
        );
        assert!(a.is_well_formed(), "{}", a.as_str());
        // Known answer (Python: hmac.new(key, b"key", hashlib.sha256), so the operator and the gateway agree across versions.
        let known = RoutingKey::new(*b"0123456789abcdef0123456789abcdef")
            .expect("32 bytes")
            .hash("key");
        assert_eq!(
            known.as_str(),
            "68d6d73080fbe4ed3f787b415bd537b07182ba063d20fc01bb24f5b6df4875fc"
        );
    }

    #[test]
    fn short_routing_keys_are_refused() {
        assert_eq!(
            RoutingKey::new(vec![1u8; 31]).err(),
            Some(RouteTableError::ShortRoutingKey(31))
        );
        assert_eq!(format!("{:?}", key()), "RoutingKey([redacted])");
    }

    #[test]
    fn round_trips_and_sorts() {
        let table = RouteTable::new(vec![
            route(key().hash("b"), "team-b/room"),
            route(key().hash("a"), "team-a/lobby"),
        ]);
        assert_eq!(table.routes[0].room, "team-a/lobby");
        let parsed = RouteTable::parse(table.to_json().as_bytes()).expect("valid");
        assert_eq!(parsed, table);
        assert_eq!(parsed.index()[&key().hash("b")].room, "team-b/room");
    }

    #[test]
    fn fully_qualified_and_older_relative_backends_are_read_and_malformed_ones_are_not() {
        for good in [
            "lobby-rtmp.team-a.svc.cluster.local.:1935",
            "lobby-rtmp.team-a.svc.corp.example.:1935",
            // Written by an operator before the fully qualified names.
            "lobby-rtmp.team-a.svc:1935",
        ] {
            assert!(is_backend(good), "{good}");
        }
        for bad in [
            ".:1935",
            ":1935",
            "lobby-rtmp.team-a.svc..:1935",
            "lobby-rtmp..team-a.svc.:1935",
            ".lobby-rtmp.team-a.svc:1935",
            "lobby-rtmp.team-a.svc.cluster.local.:0",
            "lobby-rtmp.team-a.svc.cluster.local.",
            "lobby-rtmp.team-a.svc.cluster.local.:1935.",
            "lobby rtmp.team-a.svc.cluster.local.:1935",
            "lobby-rtmp.team-a.svc.clüster.local.:1935",
        ] {
            assert!(!is_backend(bad), "{bad}");
        }
        let long_label = format!("{}.svc.:1935", "a".repeat(64));
        assert!(!is_backend(&long_label));
        let relative = |backend: &str| {
            Route {
                backend: backend.into(),
                ..route(key().hash("a"), "a/b")
            }
            .backend_is_relative_name()
        };
        assert!(relative("lobby-rtmp.team-a.svc:1935"));
        assert!(!relative("lobby-rtmp.team-a.svc.cluster.local.:1935"));
        assert!(
            !relative("127.0.0.1:1935"),
            "roomcast dev routes to addresses"
        );
    }

    #[test]
    fn hostile_tables_are_refused_whole() {
        let good = key().hash("a");
        let cases: Vec<(String, RouteTableError)> = vec![
            (
                r#"{"version":2,"routes":[]}"#.to_string(),
                RouteTableError::Version(2),
            ),
            (
                r#"{"version":1,"routes":[{"keyHash":"ZZ","room":"a/b","backend":"h:1"}]}"#.into(),
                RouteTableError::KeyHash { index: 0 },
            ),
            (
                format!(
                    r#"{{"version":1,"routes":[{{"keyHash":"{}","room":"../etc","backend":"h:1"}}]}}"#,
                    good.as_str()
                ),
                RouteTableError::Room {
                    index: 0,
                    room: "../etc".into(),
                },
            ),
            (
                format!(
                    r#"{{"version":1,"routes":[{{"keyHash":"{}","room":"a/b","backend":"h:0"}}]}}"#,
                    good.as_str()
                ),
                RouteTableError::Backend {
                    index: 0,
                    backend: "h:0".into(),
                },
            ),
            (
                format!(
                    r#"{{"version":1,"routes":[{{"keyHash":"{}","room":"a/b","backend":"evil host:1935"}}]}}"#,
                    good.as_str()
                ),
                RouteTableError::Backend {
                    index: 0,
                    backend: "evil host:1935".into(),
                },
            ),
            (
                format!(
                    r#"{{"version":1,"routes":[{{"keyHash":"{g}","room":"a/b","backend":"h:1"}},{{"keyHash":"{g}","room":"c/d","backend":"h:1"}}]}}"#,
                    g = good.as_str()
                ),
                RouteTableError::DuplicateKeyHash {
                    index: 1,
                    other: "a/b".into(),
                },
            ),
        ];
        for (json, expected) in cases {
            assert_eq!(RouteTable::parse(json.as_bytes()), Err(expected), "{json}");
        }
        assert!(matches!(
            RouteTable::parse(b"{\"version\":1}"),
            Err(RouteTableError::Json(_))
        ));
        assert!(matches!(
            RouteTable::parse(br#"{"version":1,"routes":[],"extra":1}"#),
            Err(RouteTableError::Json(_))
        ));
        let huge = vec![b' '; MAX_ROUTES_JSON_BYTES + 1];
        assert_eq!(
            RouteTable::parse(&huge),
            Err(RouteTableError::TooLarge(MAX_ROUTES_JSON_BYTES + 1))
        );
    }
}
