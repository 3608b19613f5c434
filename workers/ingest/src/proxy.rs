//! PROXY protocol (v2, and v1 which costs nothing more with `ppp`): a load balancer in front of
//! the gateway prepends the client's real address to every connection. With `--proxy-protocol`
//! every connection must start with one; the limits and the logs then see the client, not the
//! balancer. The header is read byte-exact (v2 says its length, v1 ends at CRLF), so nothing of
//! the TLS or RTMP bytes after it is consumed here.

use std::net::SocketAddr;

use ppp::HeaderResult;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::error::{Error, Result};

/// v2's fixed part: 12-byte signature, version/command, family/protocol, 2-byte length.
const V2_FIXED: usize = 16;
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Longest v1 line (the spec's worst case, TCP6 with both addresses and ports).
const V1_MAX: usize = 107;
/// Largest v2 header the gateway takes: addresses plus the TLVs cloud balancers add (a few
/// hundred bytes). The protocol allows 64 KiB, which no balancer sends.
const V2_MAX: usize = 4096;

/// Read one PROXY header from `stream`; the client address it names, or `peer` when it names
/// none (a v2 LOCAL command or v1 UNKNOWN: the balancer's own health check).
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    peer: SocketAddr,
) -> Result<SocketAddr> {
    let bad = |m: &str| Error::ProxyHeader(m.to_owned());
    let mut buf = vec![0u8; V2_FIXED];
    stream.read_exact(&mut buf[..1]).await?;
    if buf[0] == V2_SIGNATURE[0] {
        stream.read_exact(&mut buf[1..]).await?;
        if &buf[..12] != V2_SIGNATURE {
            return Err(bad("neither a v2 signature nor a v1 line"));
        }
        let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
        if V2_FIXED + len > V2_MAX {
            return Err(bad("v2 header longer than the limit"));
        }
        buf.resize(V2_FIXED + len, 0);
        stream.read_exact(&mut buf[V2_FIXED..]).await?;
    } else if buf[0] == b'P' {
        buf.truncate(1);
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(bad("v1 line longer than 107 bytes"));
            }
            buf.push(stream.read_u8().await?);
        }
    } else {
        return Err(bad("connection does not start with a PROXY header"));
    }
    client_address(&buf, peer)
}

/// The client address of a whole header (what [`read_header`] read; public for the fuzz
/// target).
pub fn client_address(header: &[u8], peer: SocketAddr) -> Result<SocketAddr> {
    let bad = |e: String| Error::ProxyHeader(e);
    match HeaderResult::parse(header) {
        HeaderResult::V2(Ok(h)) => Ok(match (h.command, h.addresses) {
            (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv4(a)) => {
                SocketAddr::from((a.source_address, a.source_port))
            }
            (ppp::v2::Command::Proxy, ppp::v2::Addresses::IPv6(a)) => {
                SocketAddr::from((a.source_address, a.source_port))
            }
            _ => peer,
        }),
        HeaderResult::V1(Ok(h)) => Ok(match h.addresses {
            ppp::v1::Addresses::Tcp4(a) => SocketAddr::from((a.source_address, a.source_port)),
            ppp::v1::Addresses::Tcp6(a) => SocketAddr::from((a.source_address, a.source_port)),
            ppp::v1::Addresses::Unknown => peer,
        }),
        HeaderResult::V2(Err(e)) => Err(bad(format!("v2: {e}"))),
        HeaderResult::V1(Err(e)) => Err(bad(format!("v1: {e}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.0.0.1:5000".parse().expect("addr")
    }

    async fn read(bytes: &[u8]) -> (Result<SocketAddr>, Vec<u8>) {
        let mut cursor = std::io::Cursor::new(bytes.to_vec());
        let r = read_header(&mut cursor, peer()).await;
        let mut rest = Vec::new();
        let _ = cursor.read_to_end(&mut rest).await;
        (r, rest)
    }

    fn v2(client: SocketAddr) -> Vec<u8> {
        let server: SocketAddr = if client.is_ipv4() {
            "10.0.0.2:1935"
        } else {
            "[2001:db8::2]:1935"
        }
        .parse()
        .expect("addr");
        ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (client, server),
        )
        .write_tlv(ppp::v2::Type::NoOp, &[0u8; 8])
        .expect("tlv")
        .build()
        .expect("header")
    }

    #[tokio::test]
    async fn a_v2_header_names_the_client_and_leaves_the_rest_unread() {
        let client: SocketAddr = "203.0.113.7:41000".parse().expect("addr");
        let mut bytes = v2(client);
        bytes.extend_from_slice(b"\x03rtmp");
        let (r, rest) = read(&bytes).await;
        assert_eq!(r.expect("parsed"), client);
        assert_eq!(rest, b"\x03rtmp");
        let six: SocketAddr = "[2001:db8::1]:443".parse().expect("addr");
        assert_eq!(read(&v2(six)).await.0.expect("v6"), six);
    }

    #[tokio::test]
    async fn a_v1_line_names_the_client_and_unknown_means_the_peer() {
        let (r, rest) = read(b"PROXY TCP4 198.51.100.9 10.0.0.2 40000 1935\r\n\x03").await;
        assert_eq!(r.expect("v1"), "198.51.100.9:40000".parse().expect("addr"));
        assert_eq!(rest, b"\x03");
        let (r, _) = read(b"PROXY UNKNOWN\r\n").await;
        assert_eq!(r.expect("unknown"), peer());
    }

    #[tokio::test]
    async fn garbage_and_oversized_headers_are_refused() {
        let handshake_first = [3u8; 1537];
        assert!(
            read(&handshake_first).await.0.is_err(),
            "RTMP without a header"
        );
        assert!(
            read(b"PROXY TCP4 999.1.1.1 10.0.0.2 1 2\r\n")
                .await
                .0
                .is_err()
        );
        let long_v1 = [b"PROXY ".as_slice(), &[b'1'; 200]].concat();
        assert!(read(&long_v1).await.0.is_err(), "endless v1 line");
        let mut huge_v2 = V2_SIGNATURE.to_vec();
        huge_v2.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(read(&huge_v2).await.0.is_err(), "64 KiB v2 header");
        let mut bad_sig = V2_SIGNATURE.to_vec();
        bad_sig[5] = b'X';
        bad_sig.extend_from_slice(&[0x21, 0x11, 0, 0]);
        assert!(read(&bad_sig).await.0.is_err());
        let mut truncated = v2("1.2.3.4:5".parse().expect("addr"));
        truncated.truncate(20);
        assert!(
            read(&truncated).await.0.is_err(),
            "connection closed mid-header"
        );
    }
}
