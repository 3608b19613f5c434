//! Which address a socket is counted under (the per-address connection cap), sans-I/O: the
//! socket peer, unless that peer is a configured proxy.
//!
//! ```text
//!  X-Forwarded-For: spoofed, 203.0.113.7, 10.0.3.9      peer 10.0.0.5 (the Ingress)
//!                   ^ ignored  ^ client    ^ trusted hop       ^ trusted: read the header
//! ```
//!
//! With no trusted networks (the default) the header is never read. When the peer is inside a
//! trusted network, the header is walked right to left past trusted hops; the first address
//! outside every trusted network is the client. Whatever lies left of it was written by the
//! client and is ignored. When the walk runs out (every hop trusted), meets an entry that is
//! not an address, or exceeds [`MAX_HOPS`], the left-most trusted hop seen is used: it is the
//! nearest address a trusted proxy vouched for.

use std::{fmt, net::IpAddr, str::FromStr};

use axum::http::HeaderMap;
use ipnet::IpNet;

/// Entries of `X-Forwarded-For` looked at from the right, at most.
pub const MAX_HOPS: usize = 16;

/// The networks whose `X-Forwarded-For` is believed. Empty: nobody's.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    networks: Vec<IpNet>,
    /// The deprecated `--trust-forwarded-for=true`: anyone's header, right-most entry.
    everyone: bool,
}

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> Self {
        Self {
            networks,
            everyone: false,
        }
    }

    /// Anyone's header is believed and its right-most address used: the behaviour of the
    /// deprecated `--trust-forwarded-for=true`, kept for one release.
    pub fn everyone() -> Self {
        Self {
            networks: Vec::new(),
            everyone: true,
        }
    }

    /// True when no header is ever read.
    pub fn is_empty(&self) -> bool {
        self.networks.is_empty() && !self.everyone
    }

    /// Whether `ip` lies in one of the trusted networks (never true for [`Self::everyone`]:
    /// believing anyone's header says nothing about who is a proxy).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.networks.iter().any(|net| net.contains(&ip))
    }

    /// The address to count a socket from `peer` under, given the request's headers.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        let entries = headers
            .get_all("x-forwarded-for")
            .iter()
            .rev()
            .flat_map(|v| v.as_bytes().rsplit(|&b| b == b','));
        if self.everyone {
            return entries.take(MAX_HOPS).find_map(parse_entry).unwrap_or(peer);
        }
        if !self.trusts(peer) {
            return peer;
        }
        let mut nearest_trusted = peer;
        for entry in entries.take(MAX_HOPS) {
            let Some(ip) = parse_entry(entry) else {
                return nearest_trusted;
            };
            if !self.trusts(ip) {
                return ip;
            }
            nearest_trusted = ip;
        }
        nearest_trusted
    }
}

impl fmt::Display for TrustedProxies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.everyone {
            return f.write_str("everyone (deprecated)");
        }
        let list: Vec<String> = self.networks.iter().map(ToString::to_string).collect();
        f.write_str(&list.join(","))
    }
}

/// IPv6 clients are counted by this prefix: one subscriber usually gets a whole /64 (or
/// more), so counting single addresses would let one host take 2^64 identities.
pub const IPV6_LIMIT_PREFIX: u8 = 64;

/// The identity every per-address limit counts a client under (connection caps, key-attempt
/// budgets, log throttles): IPv4 as is, an IPv4-mapped IPv6 address (`::ffff:1.2.3.4`, what a
/// dual-stack socket reports for an IPv4 peer) as the IPv4 address it carries, and any other
/// IPv6 address by its /64. One function for every limit, so no limit can be dodged by
/// switching address families or walking through one's own /64.
pub fn limit_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & (u128::MAX << (128 - u32::from(IPV6_LIMIT_PREFIX)));
            IpAddr::V6(bits.into())
        }
        v4 => v4,
    }
}

/// One network: `10.0.0.0/8`, `fd00::/8`, or a single address (`10.0.0.5`, `::1`).
pub fn parse_network(s: &str) -> Result<IpNet, String> {
    let s = s.trim();
    if let Ok(net) = IpNet::from_str(s) {
        return Ok(net.trunc());
    }
    IpAddr::from_str(s)
        .map(|ip| IpNet::from(ip.to_canonical()))
        .map_err(|_| format!("{s:?} is not an address or a CIDR network like 10.0.0.0/8"))
}

/// An `X-Forwarded-For` entry: an address, optionally `[v6]`, `[v6]:port` or `v4:port` (some
/// proxies add the port). Anything else is not an address.
fn parse_entry(raw: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    if s.len() > 64 {
        return None;
    }
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = s.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return std::net::Ipv6Addr::from_str(inner)
            .ok()
            .map(|ip| IpAddr::V6(ip).to_canonical());
    }
    let (host, port) = s.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    std::net::Ipv4Addr::from_str(host).ok().map(IpAddr::V4)
}

fn is_port(s: &str) -> bool {
    !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn nets(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(
            list.iter()
                .map(|s| parse_network(s).expect("net"))
                .collect(),
        )
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(
                "x-forwarded-for",
                HeaderValue::from_bytes(v.as_bytes()).expect("header"),
            );
        }
        h
    }

    #[test]
    fn limit_keys_group_an_ipv6_64_and_unmap_ipv4() {
        let key = |s: &str| limit_key(ip(s));
        // Two addresses of one /64, however far apart, are one client.
        assert_eq!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:2:ffff:ffff:ffff:ffff")
        );
        assert_eq!(key("2001:db8:1:2:dead:beef::7"), ip("2001:db8:1:2::"));
        // The next /64, and one differing only in the top bits, are not.
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_ne!(key("2001:db8:1:2::1"), key("3001:db8:1:2::1"));
        // A dual-stack socket's view of an IPv4 peer is that IPv4 peer, not the /64 ::ffff:0:0.
        assert_eq!(key("::ffff:1.2.3.4"), ip("1.2.3.4"));
        assert_ne!(key("::ffff:1.2.3.4"), key("::ffff:1.2.3.5"));
        assert_eq!(key("1.2.3.4"), ip("1.2.3.4"));
        // Not mapped: IPv4-compatible (deprecated) and NAT64 addresses stay IPv6 /64s.
        assert_eq!(key("64:ff9b::1.2.3.4"), ip("64:ff9b::"));
        assert_eq!(key("::1"), ip("::"));
    }

    #[test]
    fn without_trusted_networks_the_header_is_never_read() {
        let none = TrustedProxies::default();
        let spoofed = xff(&["1.2.3.4"]);
        assert_eq!(none.client_ip(ip("10.0.0.5"), &spoofed), ip("10.0.0.5"));
    }

    #[test]
    fn a_spoofed_header_from_an_untrusted_peer_is_ignored() {
        let trusted = nets(&["10.0.0.0/8"]);
        let spoofed = xff(&["10.0.0.1, 10.9.9.9"]);
        assert_eq!(
            trusted.client_ip(ip("203.0.113.7"), &spoofed),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let trusted = nets(&["10.0.0.0/8"]);
        // The client prepended two fake entries; the Ingress appended the real peer.
        let h = xff(&["6.6.6.6, 7.7.7.7, 198.51.100.2, 10.0.3.9"]);
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.2"));
        // The same chain split across several header lines.
        let h = xff(&["6.6.6.6", "7.7.7.7, 198.51.100.2", "10.0.3.9"]);
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.2"));
    }

    #[test]
    fn garbage_entries_never_become_an_identity() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        // Garbage left of the client is never looked at.
        let h = xff(&["not-an-ip, <script>, 198.51.100.2"]);
        assert_eq!(trusted.client_ip(peer, &h), ip("198.51.100.2"));
        // Garbage right after trusted hops: the left-most trusted hop is the client.
        for chain in [
            "garbage, 10.0.3.9",
            ", 10.0.3.9",
            "1.2.3.4.5, 10.0.3.9",
            "999.1.1.1, 10.0.3.9",
            "1.2.3.4:99999999, 10.0.3.9",
            "[::1]x, 10.0.3.9",
            "unknown, 10.0.3.9",
            "1.2.3.4 5.6.7.8, 10.0.3.9",
        ] {
            assert_eq!(
                trusted.client_ip(peer, &xff(&[chain])),
                ip("10.0.3.9"),
                "{chain:?}"
            );
        }
        // An empty header or only garbage: the peer.
        assert_eq!(trusted.client_ip(peer, &xff(&[""])), peer);
        assert_eq!(trusted.client_ip(peer, &xff(&["%%%"])), peer);
        assert_eq!(trusted.client_ip(peer, &HeaderMap::new()), peer);
        // Non-UTF-8 bytes.
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff\xfe, 198.51.100.2").expect("header"),
        );
        assert_eq!(trusted.client_ip(peer, &h), ip("198.51.100.2"));
        let mut h = HeaderMap::new();
        h.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"198.51.100.2, \xff\xfe").expect("header"),
        );
        assert_eq!(trusted.client_ip(peer, &h), peer);
    }

    #[test]
    fn ipv6_networks_entries_and_mapped_addresses() {
        let trusted = nets(&["fd00::/8", "10.0.0.0/8"]);
        let h = xff(&["2001:db8::1, fd00::9"]);
        assert_eq!(trusted.client_ip(ip("fd00::5"), &h), ip("2001:db8::1"));
        let h = xff(&["[2001:db8::2]:4711"]);
        assert_eq!(trusted.client_ip(ip("fd00::5"), &h), ip("2001:db8::2"));
        let h = xff(&["198.51.100.3:8080"]);
        assert_eq!(trusted.client_ip(ip("fd00::5"), &h), ip("198.51.100.3"));
        // An IPv4-mapped peer is the IPv4 address, trusted by the IPv4 network.
        let h = xff(&["198.51.100.4"]);
        assert_eq!(
            trusted.client_ip(ip("::ffff:10.0.0.5"), &h),
            ip("198.51.100.4")
        );
        // A mapped entry counts under its IPv4 address.
        let h = xff(&["::ffff:198.51.100.5"]);
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &h), ip("198.51.100.5"));
        // A mapped trusted-looking entry stays trusted (cannot pose as a fresh client).
        let h = xff(&["::ffff:10.1.1.1"]);
        assert_eq!(trusted.client_ip(ip("10.0.0.5"), &h), ip("10.1.1.1"));
    }

    #[test]
    fn very_long_headers_are_walked_at_most_max_hops_from_the_right() {
        let trusted = nets(&["10.0.0.0/8"]);
        let peer = ip("10.0.0.5");
        // 10,000 trusted-looking hops after the real client: the walk stops at MAX_HOPS.
        let hops = vec!["10.0.0.7"; 10_000].join(",");
        let h = xff(&[&format!("198.51.100.2,{hops}")]);
        assert_eq!(trusted.client_ip(peer, &h), ip("10.0.0.7"));
        // 10,000 spoofed addresses before the real one cost nothing and change nothing.
        let spoofed = vec!["6.6.6.6"; 10_000].join(",");
        let h = xff(&[&format!("{spoofed},198.51.100.2")]);
        assert_eq!(trusted.client_ip(peer, &h), ip("198.51.100.2"));
        // One huge entry is not an address.
        let h = xff(&[&format!("{}, 10.0.0.8", "1".repeat(100_000))]);
        assert_eq!(trusted.client_ip(peer, &h), ip("10.0.0.8"));
    }

    #[test]
    fn everyone_trusts_the_right_most_entry_like_the_old_flag() {
        let all = TrustedProxies::everyone();
        assert!(!all.is_empty());
        let h = xff(&["1.1.1.1, 2.2.2.2"]);
        assert_eq!(all.client_ip(ip("10.0.0.5"), &h), ip("2.2.2.2"));
        let h = xff(&["1.1.1.1, garbage"]);
        assert_eq!(all.client_ip(ip("10.0.0.5"), &h), ip("1.1.1.1"));
        assert_eq!(
            all.client_ip(ip("10.0.0.5"), &HeaderMap::new()),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn networks_parse_from_cidrs_and_single_addresses_only() {
        assert_eq!(
            parse_network("10.1.2.3/8").expect("cidr").to_string(),
            "10.0.0.0/8"
        );
        assert_eq!(
            parse_network(" 10.0.0.5 ").expect("ip").to_string(),
            "10.0.0.5/32"
        );
        assert_eq!(parse_network("::1").expect("v6").to_string(), "::1/128");
        assert_eq!(
            parse_network("fd00::/8").expect("v6 net").to_string(),
            "fd00::/8"
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "ten",
            "10.0.0.0/8/8",
            "*",
            "10.0.0.0/-1",
        ] {
            let err = parse_network(bad).expect_err(bad);
            assert!(err.contains("CIDR"), "{err}");
        }
    }
}
