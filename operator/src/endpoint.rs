//! Which S3 endpoints a room may name. The media worker sends signed requests to
//! `spec.recording.s3.endpoint` with the room's credentials and serves the answers back
//! through the recordings API, so a free-form endpoint would let a tenant probe internal
//! addresses. The rule:
//!
//! - `https://` on a public address: allowed.
//! - an origin listed in `--s3-allowed-endpoints` (scheme, host and port equal): allowed, even
//!   `http://` or private (an in-cluster MinIO).
//! - `--s3-allow-http-endpoint`: every `http://` and private or loopback address (the older,
//!   broader switch; the list is the narrower way).
//! - link-local and cloud metadata addresses: never, not even when listed.
//!
//! Host names are checked as written: one that resolves to a private address is not caught
//! here; the room's egress NetworkPolicy is the second line (`build/network_policy.rs`).

use std::net::IpAddr;

/// Host names that reach cloud instance metadata (credentials!) from inside a pod.
const METADATA_HOSTS: &[&str] = &[
    "metadata",
    "metadata.google.internal",
    "metadata.goog",
    "instance-data",
    "instance-data.ec2.internal",
    "metadata.azure.internal",
    "169.254.169.254",
    "fd00:ec2::254",
    // Alibaba Cloud, outside the link-local range.
    "100.100.100.200",
];

/// Scheme, host and port of an endpoint, normalized: lower case, no trailing dot, no
/// brackets around IPv6, the scheme's default port filled in. Two endpoints reach the same
/// server exactly when their origins are equal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme, self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
        }
    }
}

/// What kind of address an origin's host is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Reach {
    Public,
    /// RFC 1918, unique-local, loopback, `localhost`.
    Private,
    /// Link-local, unspecified, broadcast or a cloud metadata name: never a store.
    Forbidden,
}

/// Parse an `http(s)://` URL into its origin. Refuses what could hide the real target:
/// credentials before `@`, numeric hosts that resolvers read as IPv4 in odd notations.
pub fn parse_origin(endpoint: &str) -> Result<Origin, &'static str> {
    let uri = endpoint.parse::<http::Uri>().map_err(|_| "is not a URL")?;
    let scheme = match uri.scheme_str().map(str::to_ascii_lowercase).as_deref() {
        Some("https") => "https",
        Some("http") => "http",
        _ => return Err("must be an https:// URL"),
    };
    let authority = uri.authority().ok_or("has no host")?;
    if authority.as_str().contains('@') {
        return Err("must not carry credentials (use spec.recording.s3.credentialsSecretRef)");
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if host.is_empty() {
        return Err("has no host");
    }
    // Resolvers read `2852039166`, `0xa9fea9fe`, `0251.0376.0251.0376` or `127.1` as IPv4
    // addresses (169.254.169.254, 127.0.0.1) that the checks here would not recognise. No
    // DNS name ends in a numeric label, so anything numeric must be a plain dotted quad.
    let last_label = host.rsplit('.').next().unwrap_or_default();
    let numeric = last_label.bytes().all(|b| b.is_ascii_digit()) || last_label.starts_with("0x");
    if numeric && host.parse::<IpAddr>().is_err() {
        return Err("has a numeric host that is not a plain IPv4 address");
    }
    // `http::Uri` accepts `host:9000.evil.example` as host `host` with no port; another
    // client may read that authority differently. Only `host` or `host:<digits>` pass.
    let after_host = authority
        .as_str()
        .get(authority.host().len()..)
        .unwrap_or_default();
    let port = match (after_host.strip_prefix(':'), authority.port_u16()) {
        (None, _) if !after_host.is_empty() => return Err("has a malformed host or port"),
        (None, _) if scheme == "https" => 443,
        (None, _) => 80,
        (Some(digits), Some(port)) if digits.bytes().all(|b| b.is_ascii_digit()) => port,
        (Some(_), _) => return Err("has a malformed host or port"),
    };
    Ok(Origin {
        scheme: scheme.to_owned(),
        host,
        port,
    })
}

fn reach(host: &str) -> Reach {
    let ip = host.parse::<IpAddr>().ok();
    let forbidden = match ip {
        Some(IpAddr::V4(v4)) => v4.is_link_local() || v4.is_unspecified() || v4.is_broadcast(),
        Some(IpAddr::V6(v6)) => {
            v6.is_unicast_link_local()
                || v6.is_unspecified()
                || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_link_local())
        }
        None => false,
    };
    if forbidden || METADATA_HOSTS.contains(&host) {
        return Reach::Forbidden;
    }
    let private = match ip {
        Some(IpAddr::V4(v4)) => v4.is_private() || v4.is_loopback(),
        Some(IpAddr::V6(v6)) => {
            v6.is_loopback()
                || v6.is_unique_local()
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| v4.is_private() || v4.is_loopback())
        }
        None => host == "localhost" || host.ends_with(".localhost"),
    };
    if private {
        Reach::Private
    } else {
        Reach::Public
    }
}

/// An entry of `--s3-allowed-endpoints`: an origin (`scheme://host[:port]`, no path), never
/// a link-local or metadata address. Checked at start so a typo fails loudly.
pub fn parse_allowed_origin(entry: &str) -> Result<Origin, String> {
    let entry = entry.trim();
    let origin = parse_origin(entry).map_err(|why| format!("{entry:?} {why}"))?;
    let path = entry
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| u.path_and_query().map(|p| p.as_str().to_owned()))
        .unwrap_or_default();
    if !(path.is_empty() || path == "/") {
        return Err(format!(
            "{entry:?} must be an origin (scheme://host[:port]) without a path"
        ));
    }
    if reach(&origin.host) == Reach::Forbidden {
        return Err(format!(
            "{entry:?} is a link-local or cloud metadata address and can never be allowed"
        ));
    }
    Ok(origin)
}

/// `Ok` when a room may send its recordings to `endpoint` (empty means AWS): `allow_http` is
/// `--s3-allow-http-endpoint`, `allowed` the origins of `--s3-allowed-endpoints`. On
/// refusal: the endpoint (cut to 80 characters for the message) and why.
pub fn check(
    endpoint: &str,
    allow_http: bool,
    allowed: &[Origin],
) -> Result<(), (String, &'static str)> {
    if endpoint.is_empty() {
        return Ok(());
    }
    let refuse = |why| Err((endpoint.chars().take(80).collect(), why));
    let origin = match parse_origin(endpoint) {
        Ok(origin) => origin,
        Err(why) => return refuse(why),
    };
    let reach = reach(&origin.host);
    if reach == Reach::Forbidden {
        return refuse("is a link-local or cloud metadata address");
    }
    if allow_http || allowed.contains(&origin) {
        return Ok(());
    }
    if origin.scheme == "http" {
        return refuse(
            "must be https:// (plain http only for an origin listed in the operator flag --s3-allowed-endpoints)",
        );
    }
    if reach == Reach::Private {
        return refuse(
            "is a private or loopback address (in-cluster stores must be listed in the operator flag --s3-allowed-endpoints)",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strict(endpoint: &str) -> Result<(), (String, &'static str)> {
        check(endpoint, false, &[])
    }

    fn origins(entries: &[&str]) -> Vec<Origin> {
        entries
            .iter()
            .map(|e| parse_allowed_origin(e).expect("allowed entry parses"))
            .collect()
    }

    #[test]
    fn public_https_endpoints_pass() {
        for endpoint in [
            "",
            "https://s3.example.com",
            "https://s3.eu-west-1.amazonaws.com:443/",
            "https://8.8.8.8",
            "HTTPS://S3.Example.COM",
        ] {
            assert_eq!(strict(endpoint), Ok(()), "{endpoint}");
        }
    }

    #[test]
    fn hostile_endpoints_are_refused_without_a_listing() {
        for endpoint in [
            "http://s3.example.com",
            "HTTP://s3.example.com",
            "ftp://s3.example.com",
            "file:///etc/passwd",
            "s3.example.com",
            "https://",
            "https://user:pass@s3.example.com",
            "https://s3.example.com@169.254.169.254",
            "https://127.0.0.1:9000",
            "https://localhost",
            "https://minio.localhost.",
            "https://10.0.0.5",
            "https://172.16.3.4",
            "https://192.168.1.1",
            "https://[::1]",
            "https://[fd00::1]",
            "https://[::ffff:10.0.0.1]",
            "https://169.254.169.254/latest/meta-data/",
            "https://[fe80::1]",
            "https://metadata.google.internal",
            "https://METADATA.GOOGLE.INTERNAL.",
            "https://0.0.0.0",
            "https://2852039166",
            "https://0xa9fea9fe",
            "https://0251.0376.0251.0376",
            "https://169.254.43518",
            "https://127.1",
            "https://010.0.0.1",
            "https://\u{0}",
            "not a url at all",
        ] {
            strict(endpoint).expect_err(endpoint);
        }
    }

    #[test]
    fn a_listed_origin_passes_with_its_exact_scheme_host_and_port_only() {
        let allowed = origins(&["http://minio.minio.svc:9000", "https://[fd00::1]"]);
        for endpoint in [
            "http://minio.minio.svc:9000",
            "http://minio.minio.svc:9000/",
            "HTTP://MINIO.minio.svc.:9000",
            "https://[fd00::1]",
            "https://[fd00::1]:443/bucket",
        ] {
            assert_eq!(check(endpoint, false, &allowed), Ok(()), "{endpoint}");
        }
        for endpoint in [
            // Another port, scheme or host of the same store is another origin.
            "http://minio.minio.svc:9001",
            "http://minio.minio.svc",
            "https://minio.minio.svc:9000.evil.example",
            "http://minio.minio.svc.evil.example:9000",
            "http://[fd00::1]",
            "https://[fd00::2]",
            // Userinfo tricks: what the list names is not where the request goes.
            "http://minio.minio.svc:9000@10.0.0.9:9000",
            "http://user@minio.minio.svc:9000",
            "http://10.0.0.5:9000",
            "http://minio.minio.svc:",
            "http://minio.minio.svc:+9000",
            "http://minio.minio.svc:09000x",
        ] {
            check(endpoint, false, &allowed).expect_err(endpoint);
        }
    }

    #[test]
    fn metadata_and_link_local_are_refused_even_when_listed_or_all_http_is_allowed() {
        for entry in [
            "http://169.254.169.254",
            "http://[fe80::1]:9000",
            "http://metadata.google.internal",
            "http://METADATA.",
            "http://[fd00:ec2::254]",
        ] {
            let err = parse_allowed_origin(entry).expect_err(entry);
            assert!(err.contains("never be allowed"), "{err}");
        }
        for endpoint in [
            "http://169.254.169.254",
            "https://[fe80::1]",
            "http://metadata.google.internal",
            "http://[fd00:ec2::254]",
            "http://100.100.100.200/latest/meta-data/",
            "http://[::ffff:169.254.169.254]",
            "http://2852039166",
            "gopher://minio:9000",
        ] {
            check(endpoint, true, &[]).expect_err(endpoint);
        }
        for endpoint in [
            "http://minio.minio.svc:9000",
            "http://10.0.0.5:9000",
            "https://[fd00::1]",
            "http://127.0.0.1:9000",
        ] {
            assert_eq!(check(endpoint, true, &[]), Ok(()), "{endpoint}");
        }
    }

    #[test]
    fn allowed_entries_must_be_plain_origins() {
        for entry in [
            "minio:9000",
            "http://minio:9000/bucket",
            "http://user@minio:9000",
            "ftp://minio",
            "http://2852039166",
            "",
        ] {
            parse_allowed_origin(entry).expect_err(entry);
        }
        assert_eq!(
            parse_allowed_origin(" http://MinIO.minio.svc.:9000/ ").map(|o| o.to_string()),
            Ok("http://minio.minio.svc:9000".to_owned())
        );
    }

    #[test]
    fn long_endpoints_are_cut_in_the_message() {
        let endpoint = format!("http://{}.example.com", "a".repeat(2000));
        let (shown, _) = strict(&endpoint).expect_err("http");
        assert_eq!(shown.chars().count(), 80);
    }
}
