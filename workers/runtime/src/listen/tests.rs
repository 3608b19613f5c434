use std::sync::atomic::{AtomicUsize, Ordering};

use axum::routing::{get, post};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

fn ip(last: u8) -> IpAddr {
    IpAddr::from([10, 0, 0, last])
}

fn addr(text: &str) -> IpAddr {
    text.parse().expect("an address")
}

impl ConnectionGate {
    fn admit_now(self: &Arc<Self>, ip: IpAddr) -> Result<Admitted, Refusal> {
        self.admit(ip, Instant::now())
    }
}

/// Whether the connection was told to end, without waiting.
fn was_evicted(slot: &Admitted) -> bool {
    use futures::FutureExt;
    slot.evicted().now_or_never().is_some()
}

#[test]
fn at_the_cap_the_oldest_connection_that_has_not_settled_gives_way() {
    let grace = Duration::from_secs(3);
    let gate = ConnectionGate::with_eviction(3, 3, grace);
    let t0 = Instant::now();
    let oldest = gate.admit(ip(1), t0).expect("a");
    let publisher = gate.admit(ip(2), t0).expect("b");
    publisher.settle();
    let newer = gate.admit(ip(3), t0 + Duration::from_secs(1)).expect("c");
    // Within the grace nobody gives way: the cap refuses.
    assert_eq!(
        gate.admit(ip(4), t0 + Duration::from_secs(2)).err(),
        Some(Refusal::ConnectionsTotal)
    );
    let honest = gate
        .admit(ip(4), t0 + Duration::from_secs(3))
        .expect("the oldest idle connection gives way");
    assert!(
        was_evicted(&oldest),
        "the oldest unsettled one is told to end"
    );
    assert!(!was_evicted(&publisher) && !was_evicted(&newer) && !was_evicted(&honest));
    assert_eq!(gate.open(), 3);
    // Its drop does not free a second slot.
    drop(oldest);
    assert_eq!(gate.open(), 3);
    // The settled one is never evicted, whatever its age; the next oldest idle one is.
    let _next = gate
        .admit(ip(5), t0 + Duration::from_secs(60))
        .expect("admit");
    assert!(was_evicted(&newer) && !was_evicted(&publisher));
}

#[test]
fn at_the_cap_the_address_holding_most_unsettled_connections_gives_one_up_whatever_its_age() {
    let gate = ConnectionGate::with_eviction(4, 8, Duration::from_secs(3));
    let t0 = Instant::now();
    let honest_elder = gate
        .admit(ip(1), t0)
        .expect("an honest client, alone on its address");
    // A churning attacker: three young connections from one address.
    let attacker: Vec<Admitted> = (0..3)
        .map(|i| {
            gate.admit(ip(9), t0 + Duration::from_secs(10 + i))
                .expect("attacker")
        })
        .collect();
    // A newcomer from a third address, a moment later: the attacker's oldest gives way, even
    // though every attacker connection is younger than the grace and the honest one is older.
    let newcomer = gate
        .admit(ip(2), t0 + Duration::from_millis(12_500))
        .expect("admitted");
    assert!(was_evicted(&attacker[0]));
    assert!(!was_evicted(&attacker[1]) && !was_evicted(&honest_elder) && !was_evicted(&newcomer));
    // The attacker's own next connection replaces its own sibling.
    let _again = gate
        .admit(ip(9), t0 + Duration::from_millis(12_600))
        .expect("attacker again");
    assert!(was_evicted(&attacker[1]));
    assert!(!was_evicted(&honest_elder) && !was_evicted(&newcomer));
}

#[test]
fn without_eviction_the_cap_refuses() {
    let gate = ConnectionGate::new(1, 1);
    let t0 = Instant::now();
    let _a = gate.admit(ip(1), t0).expect("a");
    assert_eq!(
        gate.admit(ip(2), t0 + Duration::from_secs(3600)).err(),
        Some(Refusal::ConnectionsTotal)
    );
}

#[test]
fn a_full_address_does_not_evict_others() {
    let gate = ConnectionGate::with_eviction(2, 1, Duration::ZERO);
    let t0 = Instant::now();
    let a = gate.admit(ip(1), t0).expect("a");
    let _b = gate.admit(ip(2), t0).expect("b");
    assert_eq!(gate.admit(ip(1), t0).err(), Some(Refusal::ConnectionsPerIp));
    assert!(!was_evicted(&a));
}

#[test]
fn the_per_ip_cap_refuses_only_that_address() {
    let gate = ConnectionGate::new(10, 2);
    let a = gate.admit_now(ip(1)).expect("first");
    let _b = gate.admit_now(ip(1)).expect("second");
    assert_eq!(gate.admit_now(ip(1)).err(), Some(Refusal::ConnectionsPerIp));
    let _c = gate.admit_now(ip(2)).expect("other address");
    drop(a);
    assert!(
        gate.admit_now(ip(1)).is_ok(),
        "a closed connection frees its slot"
    );
}

#[test]
fn the_per_ip_cap_counts_an_ipv6_64_as_one_client_and_mapped_ipv4_as_ipv4() {
    let gate = ConnectionGate::new(100, 2);
    // Two of one /64 (far apart), the next /64, and one IPv4 client seen both ways.
    let _held: Vec<Admitted> = [
        "2001:db8:1:2::1",
        "2001:db8:1:2:8000::2",
        "2001:db8:1:3::1",
        "198.51.100.7",
        "::ffff:198.51.100.7",
    ]
    .into_iter()
    .map(|a| gate.admit_now(addr(a)).expect(a))
    .collect();
    for (over, why) in [
        (
            "2001:db8:1:2:ffff:ffff:ffff:ffff",
            "a fresh address of a full /64",
        ),
        ("198.51.100.7", "mapped and plain IPv4 share one budget"),
        ("::ffff:198.51.100.7", "and the other way round"),
    ] {
        assert_eq!(
            gate.admit_now(addr(over)).err(),
            Some(Refusal::ConnectionsPerIp),
            "{why}"
        );
    }
    assert!(
        gate.admit_now(addr("2001:db8:1:3::2")).is_ok(),
        "the next /64 has room"
    );
}

#[test]
fn eviction_picks_the_heaviest_64_not_the_heaviest_address() {
    let gate = ConnectionGate::with_eviction(3, 10, Duration::from_secs(3600));
    let t0 = Instant::now();
    let honest = gate.admit(ip(1), t0).expect("honest");
    let squat_a = gate
        .admit(addr("2001:db8::a"), t0 + Duration::from_secs(1))
        .expect("a");
    let _squat_b = gate
        .admit(addr("2001:db8::b"), t0 + Duration::from_secs(2))
        .expect("b");
    // Two distinct addresses of one /64 hold two slots: that /64 gives way, not the older
    // connection alone on its address.
    let _new = gate
        .admit(ip(2), t0 + Duration::from_secs(3))
        .expect("newcomer");
    assert!(was_evicted(&squat_a));
    assert!(!was_evicted(&honest));
}

#[test]
fn offenders_in_one_64_are_logged_once() {
    let log = OffenderLog::default();
    let t0 = Instant::now();
    assert!(log.should_log(addr("2001:db8::1"), t0));
    assert!(!log.should_log(addr("2001:db8::2"), t0));
    assert!(!log.should_log(addr("2001:db8::ffff:1"), t0));
    assert!(log.should_log(addr("2001:db8:0:1::1"), t0));
    assert_eq!(log.len(), 2);
}

#[test]
fn trusted_proxies_are_held_only_to_the_total_cap() {
    let proxies = TrustedProxies::new(vec![
        crate::clientip::parse_network("10.0.0.0/24").expect("net"),
    ]);
    let limits = HttpLimits {
        http_max_connections: 4,
        http_max_connections_per_ip: 1,
        ..HttpLimits::default()
    };
    let gate = limits.gate_exempting(proxies);
    let _a = gate.admit_now(ip(1)).expect("proxy");
    let _b = gate
        .admit_now(ip(1))
        .expect("proxy again: exempt from the per-IP cap");
    let outsider = IpAddr::from([192, 0, 2, 1]);
    let _c = gate.admit_now(outsider).expect("outsider");
    assert_eq!(
        gate.admit_now(outsider).err(),
        Some(Refusal::ConnectionsPerIp)
    );
    let _d = gate.admit_now(ip(1)).expect("fourth");
    assert_eq!(gate.admit_now(ip(1)).err(), Some(Refusal::ConnectionsTotal));
}

#[test]
fn the_total_cap_refuses_every_address() {
    let gate = ConnectionGate::new(2, 2);
    let _a = gate.admit_now(ip(1)).expect("a");
    let _b = gate.admit_now(ip(2)).expect("b");
    assert_eq!(gate.admit_now(ip(3)).err(), Some(Refusal::ConnectionsTotal));
    assert_eq!(gate.open(), 2);
}

#[test]
fn the_gate_forgets_addresses_without_connections() {
    let gate = ConnectionGate::new(100_000, 1);
    for i in 0..=255 {
        drop(gate.admit_now(ip(i)).expect("admit"));
    }
    assert_eq!(gate.open(), 0);
    let counts = lock(&gate.counts);
    assert!(counts.per_ip.is_empty() && counts.slots.is_empty());
}

#[test]
fn an_offender_is_logged_once_a_minute() {
    let log = OffenderLog::default();
    let t0 = Instant::now();
    assert!(log.should_log(ip(1), t0));
    for s in 1..60 {
        assert!(!log.should_log(ip(1), t0 + Duration::from_secs(s)));
    }
    assert!(log.should_log(ip(2), t0), "another address is logged");
    assert!(log.should_log(ip(1), t0 + Duration::from_secs(61)));
}

#[test]
fn the_offender_log_stays_bounded_under_a_flood_of_addresses() {
    let log = OffenderLog::default();
    let t0 = Instant::now();
    for i in 0..(OFFENDERS_REMEMBERED as u32 * 5) {
        log.should_log(IpAddr::from(i.to_be_bytes()), t0);
        assert!(log.len() <= OFFENDERS_REMEMBERED);
    }
}

#[test]
fn limits_that_cannot_work_are_refused_naming_the_flag() {
    assert_eq!(HttpLimits::default().problem(), None);
    let zero = HttpLimits {
        http_body_timeout_seconds: 0,
        ..HttpLimits::default()
    };
    assert_eq!(
        zero.problem().map(|p| p.0),
        Some("--http-body-timeout-seconds")
    );
    let tiny = HttpLimits {
        http_max_header_bytes: 100,
        ..HttpLimits::default()
    };
    let (flag, why) = tiny.problem().expect("refused");
    assert_eq!(flag, "--http-max-header-bytes");
    assert!(why.contains("8192"), "{why}");
}

/// A server on a free port with `limits` in `workers` mode; what it refused, by reason.
struct Running {
    addr: SocketAddr,
    gate: Arc<ConnectionGate>,
    refused: Arc<Mutex<Vec<Refusal>>>,
    _stop: watch::Sender<bool>,
}

impl Running {
    fn refused(&self) -> Vec<Refusal> {
        lock(&self.refused).clone()
    }

    async fn wait_refused(&self, refusal: Refusal) {
        for _ in 0..100 {
            if self.refused().contains(&refusal) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("{refusal:?} never reported; got {:?}", self.refused());
    }
}

async fn start(limits: HttpLimits, workers: Workers) -> Running {
    let router = Router::new()
        .route("/", get(|| async { "ok" }))
        .route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        )
        .route("/upgrade", get(upgrade));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let refused = Arc::new(Mutex::new(Vec::new()));
    let gate = limits.gate();
    let server = HttpServer {
        name: "test-http",
        gate: gate.clone(),
        limits,
        on_refused: {
            let refused = refused.clone();
            Arc::new(move |_, r| lock(&refused).push(r))
        },
        workers,
    };
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(serve_http(listener, router, server, stop));
    Running {
        addr,
        gate,
        refused,
        _stop: stop_tx,
    }
}

/// Answers 101 and keeps the upgraded socket open until the client closes it.
async fn upgrade(mut req: axum::extract::Request) -> axum::response::Response {
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = on_upgrade.await {
            let mut io = hyper_util::rt::TokioIo::new(upgraded);
            let mut buf = [0u8; 64];
            while matches!(io.read(&mut buf).await, Ok(n) if n > 0) {}
        }
    });
    axum::response::Response::builder()
        .status(101)
        .header("connection", "upgrade")
        .header("upgrade", "test")
        .body(Body::empty())
        .expect("response")
}

async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut sock = TcpStream::connect(addr).await.expect("connect");
    sock.write_all(request).await.expect("write");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), sock.read_to_end(&mut answer)).await;
    String::from_utf8_lossy(&answer).into_owned()
}

fn short_limits() -> HttpLimits {
    HttpLimits {
        http_header_timeout_seconds: 1,
        http_body_timeout_seconds: 1,
        http_max_body_bytes: 1000,
        ..HttpLimits::default()
    }
}

#[tokio::test]
async fn a_request_head_that_never_ends_is_cut_and_reported() {
    let server = start(short_limits(), Workers::Current).await;
    let answer = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ").await;
    assert!(!answer.contains("200 OK"), "{answer}");
    server.wait_refused(Refusal::HeaderTimeout).await;
}

#[tokio::test]
async fn an_oversized_request_head_is_refused() {
    let server = start(short_limits(), Workers::Current).await;
    let mut request = b"GET / HTTP/1.1\r\nHost: x\r\n".to_vec();
    for i in 0..2000 {
        request.extend_from_slice(format!("X-Pad-{i}: {}\r\n", "a".repeat(40)).as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let answer = exchange(server.addr, &request).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer}");
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_before_it_is_read() {
    let server = start(short_limits(), Workers::Current).await;
    let answer = exchange(
        server.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(!answer.contains("200 OK"), "{answer}");
    server.wait_refused(Refusal::BodyTooLarge).await;
}

#[tokio::test]
async fn a_chunked_body_that_grows_over_the_limit_is_cut() {
    let server = start(short_limits(), Workers::Current).await;
    let mut request =
        b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..4 {
        request.extend_from_slice(format!("{:x}\r\n{}\r\n", 500, "b".repeat(500)).as_bytes());
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(server.addr, &request).await;
    assert!(!answer.contains("200 OK"), "{answer}");
    server.wait_refused(Refusal::BodyTooLarge).await;
}

#[tokio::test]
async fn a_body_trickled_past_the_deadline_is_cut() {
    let server = start(short_limits(), Workers::Current).await;
    let mut sock = TcpStream::connect(server.addr).await.expect("connect");
    sock.write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n")
        .await
        .expect("head");
    // A byte every 300 ms: each read is quick, the whole body is not.
    for _ in 0..5 {
        let _ = sock.write_all(b"x").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    server.wait_refused(Refusal::BodyTimeout).await;
}

#[tokio::test]
async fn a_body_under_the_limits_arrives_whole() {
    let server = start(short_limits(), Workers::PerCore(2)).await;
    let answer = exchange(
        server.addr,
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with('5'),
        "{answer}"
    );
    assert!(server.refused().is_empty(), "{:?}", server.refused());
}

#[tokio::test]
async fn an_upgraded_socket_keeps_its_slot_until_it_closes() {
    let limits = HttpLimits {
        http_max_connections_per_ip: 1,
        ..short_limits()
    };
    let server = start(limits, Workers::Current).await;
    let mut sock = TcpStream::connect(server.addr).await.expect("connect");
    sock.write_all(
        b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: test\r\n\r\n",
    )
    .await
    .expect("write");
    let mut head = [0u8; 12];
    sock.read_exact(&mut head).await.expect("answer");
    assert_eq!(&head, b"HTTP/1.1 101");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        server.gate.open(),
        1,
        "the upgraded socket still holds its slot"
    );
    // So a second connection from the same address is over the per-IP cap.
    let answer = exchange(server.addr, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert!(answer.is_empty(), "{answer}");
    server.wait_refused(Refusal::ConnectionsPerIp).await;
    drop(sock);
    for _ in 0..100 {
        if server.gate.open() == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        server.gate.open(),
        0,
        "closing the upgraded socket frees its slot"
    );
}

#[tokio::test]
async fn every_request_knows_its_peer() {
    let served = Arc::new(AtomicUsize::new(0));
    let router = Router::new().route(
        "/peer",
        get({
            let served = served.clone();
            move |axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<SocketAddr>| {
                served.fetch_add(1, Ordering::SeqCst);
                async move { peer.ip().to_string() }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (_stop_tx, stop) = watch::channel(false);
    let server = HttpServer {
        name: "peer",
        gate: HttpLimits::default().gate(),
        limits: HttpLimits::default(),
        on_refused: Arc::new(|_, _| {}),
        workers: Workers::Current,
    };
    tokio::spawn(serve_http(listener, router, server, stop));
    let answer = exchange(
        addr,
        b"GET /peer HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(answer.ends_with("127.0.0.1"), "{answer}");
    assert_eq!(served.load(Ordering::SeqCst), 1);
}
