//! The gateway against real components: the real media worker in-process (the media tests'
//! harness, shared by path), real ffmpeg and GStreamer publishers over RTMP and RTMPS, and
//! hostile peers on raw sockets.

#[path = "../../media/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use common::{
    Publisher, RoomSpec, TestServer, flood_unread_answers, media_tools_available, metric, source,
    wait_exit,
};
use roomcast_crds::ingest_routes::{Route, RouteTable, RoutingKey};
use roomcast_ingest::backend::Backend;
use roomcast_ingest::routes::watch_files;
use roomcast_ingest::tls::{SelfSigned, TlsFiles, ensure_self_signed};
use roomcast_ingest::{Error, Gateway, GatewayOptions, ListenerKind};
use roomcast_rtmp::key::PresentedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const LONG: Duration = Duration::from_secs(60);
/// The gateway's routes file is looked at this often in tests.
const RELOAD: Duration = Duration::from_millis(50);
const LOBBY_KEY: &str = "lobby-key-0123456789abcdef";
const STAGE_KEY: &str = "stage-key-0123456789abcdef";

/// A gateway on 127.0.0.1 with both listeners, following a routes file.
struct TestGateway {
    gw: Arc<Gateway>,
    rtmp: SocketAddr,
    rtmps: SocketAddr,
    dir: tempfile::TempDir,
    cert: SelfSigned,
    routing_key: RoutingKey,
    tasks: Vec<JoinHandle<()>>,
}

impl TestGateway {
    async fn start(options: GatewayOptions, routes: &[(&str, &str, SocketAddr)]) -> Self {
        Self::start_at(options, routes, "127.0.0.1:0".parse().expect("addr")).await
    }

    async fn start_at(
        options: GatewayOptions,
        routes: &[(&str, &str, SocketAddr)],
        rtmp_addr: SocketAddr,
    ) -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let routing_key = RoutingKey::new(vec![b'r'; 40]).expect("routing key");
        std::fs::write(dir.path().join("key"), vec![b'r'; 40]).expect("key file");
        let cert = ensure_self_signed(dir.path()).expect("certificate");
        let gw = Gateway::new(options).expect("gateway");
        let mut this = TestGateway {
            gw: gw.clone(),
            rtmp: rtmp_addr,
            rtmps: rtmp_addr,
            dir,
            cert,
            routing_key,
            tasks: Vec::new(),
        };
        this.write_routes(routes);
        this.tasks.push(tokio::spawn(watch_files(
            gw.routes.clone(),
            gw.metrics.clone(),
            this.dir.path().join("key"),
            Some(this.dir.path().join("routes.json")),
            RELOAD,
            gw.stopping(),
        )));
        let rtmp = TcpListener::bind(rtmp_addr).await.expect("bind rtmp");
        let rtmps = TcpListener::bind("127.0.0.1:0").await.expect("bind rtmps");
        this.rtmp = rtmp.local_addr().expect("addr");
        this.rtmps = rtmps.local_addr().expect("addr");
        let tls = TlsFiles::load(&this.cert.cert, &this.cert.key).expect("tls");
        this.tasks.push(tokio::spawn(tls.clone().watch(
            gw.metrics.clone(),
            RELOAD,
            gw.stopping(),
        )));
        this.tasks
            .push(tokio::spawn(gw.clone().serve(rtmp, ListenerKind::Rtmp)));
        this.tasks.push(tokio::spawn(
            gw.clone().serve(rtmps, ListenerKind::Rtmps(tls)),
        ));
        for _ in 0..100 {
            if gw.readiness().is_ok() {
                return this;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("gateway not ready: {:?}", gw.readiness());
    }

    /// Rewrite the routes file and wait until the gateway loaded it.
    fn write_routes(&self, routes: &[(&str, &str, SocketAddr)]) {
        let table = RouteTable::new(
            routes
                .iter()
                .map(|(key, room, backend)| Route {
                    key_hash: self.routing_key.hash(key),
                    room: (*room).to_owned(),
                    backend: backend.to_string(),
                })
                .collect(),
        );
        let tmp = self.dir.path().join("routes.json.tmp");
        std::fs::write(&tmp, table.to_json()).expect("routes");
        std::fs::rename(&tmp, self.dir.path().join("routes.json")).expect("rename");
    }

    async fn reload(&self, routes: &[(&str, &str, SocketAddr)]) {
        let before = self.gw.metrics.route_reloads.get();
        self.write_routes(routes);
        for _ in 0..200 {
            if self.gw.metrics.route_reloads.get() > before {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("routes not reloaded");
    }

    fn url(&self, scheme: &str, key: &str) -> String {
        let addr = if scheme == "rtmps" {
            self.rtmps
        } else {
            self.rtmp
        };
        format!("{scheme}://{addr}/live/{key}")
    }

    fn metric(&self, name: &str) -> f64 {
        metric(&self.gw.metrics.encode(), name)
    }

    /// Wait until a counter reaches `at_least` (the gateway counts after closing the socket).
    async fn metric_reaches(&self, name: &str, at_least: f64) -> f64 {
        for _ in 0..300 {
            let v = self.metric(name);
            if v >= at_least {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "{name} stayed at {}:\n{}",
            self.metric(name),
            self.gw.metrics.encode()
        );
    }

    /// Wait until `roomcast_ingest_refusals_total{listener, reason}` reaches `at_least`.
    async fn refusals_reach(&self, listener: &str, reason: &str, at_least: f64) -> f64 {
        self.metric_reaches(
            &format!(
                "roomcast_ingest_refusals_total{{listener=\"{listener}\",reason=\"{reason}\"}}"
            ),
            at_least,
        )
        .await
    }

    /// A publish attempt with an in-process RTMP client: Ok, or the refusal's text.
    async fn try_publish(&self, key: &str) -> Result<Backend, String> {
        Backend::open(
            &self.rtmp.to_string(),
            &PresentedKey::new(key),
            Duration::from_secs(10),
        )
        .await
        .map_err(|e| match e {
            Error::Backend { message, .. } => message,
            other => other.to_string(),
        })
    }

    /// Stop as on SIGTERM with no drain time: listeners close, relays are cut.
    async fn stop(self) {
        self.gw.drain(Duration::ZERO).await;
        for t in self.tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), t).await;
        }
    }
}

/// The media worker with room `shows/lobby` (key [`LOBBY_KEY`]) behind a gateway that routes
/// that key to it; `None` (skipped) without ffmpeg or GStreamer.
async fn lobby_behind_gateway() -> Option<(TestServer, TestGateway)> {
    if !media_tools_available() {
        return None;
    }
    let srv = TestServer::start(vec![room("lobby", LOBBY_KEY)]).await;
    let gw = TestGateway::start(
        GatewayOptions::default(),
        &[(LOBBY_KEY, "shows/lobby", srv.rtmp)],
    )
    .await;
    Some((srv, gw))
}

fn room(name: &'static str, key: &'static str) -> RoomSpec {
    let mut spec = RoomSpec::new(name, key);
    // The passthrough rendition alone: these tests are about the relay, not the ladder.
    spec.renditions = vec![source()];
    spec
}

/// ffprobe a live HLS playlist; the picture width of its video stream.
async fn probed_width(url: String) -> Option<u64> {
    let out = tokio::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            "v:0",
            "-show_streams",
            "-of",
            "json",
        ])
        .arg(&url)
        .output()
        .await
        .expect("ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    json["streams"][0]["width"].as_u64()
}

async fn wait_for_segments(srv: &TestServer, room: &str) -> String {
    srv.wait_for(&format!("/shows/{room}/hls/source/index.m3u8"), LONG, |t| {
        t.contains("#EXTINF")
    })
    .await
    .text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_rooms_publish_at_once_over_rtmp_and_rtmps_each_with_its_own_stream() {
    if !media_tools_available() {
        return;
    }
    let srv = TestServer::start(vec![room("lobby", LOBBY_KEY), room("stage", STAGE_KEY)]).await;
    let gw = TestGateway::start(
        GatewayOptions::default(),
        &[
            (LOBBY_KEY, "shows/lobby", srv.rtmp),
            (STAGE_KEY, "shows/stage", srv.rtmp),
        ],
    )
    .await;
    let lobby = Publisher {
        seconds: 4,
        size: "320x240",
        ..Default::default()
    }
    .spawn(&gw.url("rtmp", LOBBY_KEY));
    let stage = Publisher {
        seconds: 4,
        size: "176x144",
        ..Default::default()
    }
    .spawn(&gw.url("rtmps", STAGE_KEY));
    wait_for_segments(&srv, "lobby").await;
    wait_for_segments(&srv, "stage").await;
    assert_eq!(
        gw.metric("roomcast_ingest_active_relays"),
        2.0,
        "both live at once"
    );
    let base = format!("http://{}", srv.http);
    assert_eq!(
        probed_width(format!("{base}/shows/lobby/hls/source/index.m3u8")).await,
        Some(320)
    );
    assert_eq!(
        probed_width(format!("{base}/shows/stage/hls/source/index.m3u8")).await,
        Some(176)
    );
    assert!(wait_exit(lobby, LONG).await, "ffmpeg over rtmp failed");
    assert!(wait_exit(stage, LONG).await, "ffmpeg over rtmps failed");
    assert_eq!(
        gw.metric("roomcast_ingest_connections_total{listener=\"rtmps\"}"),
        1.0
    );
    assert_eq!(
        gw.metric("roomcast_ingest_connections_total{listener=\"rtmp\"}"),
        1.0
    );
    for room in ["shows/lobby", "shows/stage"] {
        let bytes = gw.metric(&format!(
            "roomcast_ingest_relayed_bytes_total{{room=\"{room}\"}}"
        ));
        assert!(bytes > 50_000.0, "{room}: {bytes} bytes relayed");
    }
    assert_eq!(
        gw.metric("roomcast_ingest_tls_handshake_failures_total"),
        0.0
    );
    gw.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gstreamer_rtmp2sink_publishes_over_rtmps() {
    let Some((srv, gw)) = lobby_behind_gateway().await else {
        return;
    };
    // The certificate is self-signed: validation off, as a streamer testing locally would.
    let pipeline = format!(
        "videotestsrc is-live=true num-buffers=90 ! video/x-raw,width=256,height=144,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max=30 speed-preset=ultrafast ! h264parse ! flvmux name=m streamable=true \
         ! rtmp2sink location={} tls-validation-flags=no-flags \
         audiotestsrc is-live=true num-buffers=141 ! audioconvert ! avenc_aac ! aacparse ! m.",
        gw.url("rtmps", LOBBY_KEY)
    );
    let child = tokio::process::Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("gst-launch-1.0");
    wait_for_segments(&srv, "lobby").await;
    let base = format!("http://{}", srv.http);
    assert_eq!(
        probed_width(format!("{base}/shows/lobby/hls/source/index.m3u8")).await,
        Some(256)
    );
    let _ = wait_exit(child, LONG).await;
    assert_eq!(
        gw.metric("roomcast_ingest_connections_total{listener=\"rtmps\"}"),
        1.0
    );
    gw.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_refused_at_the_gateway_with_its_reason() {
    let Some((srv, gw)) = lobby_behind_gateway().await else {
        return;
    };
    let ffmpeg = Publisher::default().spawn(&gw.url("rtmp", "not-the-key"));
    assert!(!wait_exit(ffmpeg, LONG).await, "ffmpeg must fail");
    gw.refusals_reach("rtmp", "unknown_key", 1.0).await;
    assert_eq!(gw.metric("roomcast_ingest_active_relays"), 0.0);
    let refusal = gw.try_publish("also-wrong").await.err().expect("refused");
    assert!(refusal.contains("NetStream.Publish.BadName"), "{refusal}");
    // The media worker never saw either attempt.
    let media = String::from_utf8_lossy(&srv.get("/metrics").await.body).into_owned();
    assert_eq!(
        metric(&media, "roomcast_media_publishes_refused_total"),
        0.0,
        "{media}"
    );
    gw.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_room_refusing_the_key_is_passed_back_to_the_publisher() {
    if !media_tools_available() {
        return;
    }
    // The table routes a key the room does not have (a stale table): the media worker's own
    // check refuses it, and the publisher hears so.
    let srv = TestServer::start(vec![room("lobby", LOBBY_KEY)]).await;
    let gw = TestGateway::start(
        GatewayOptions::default(),
        &[("stale-key", "shows/lobby", srv.rtmp)],
    )
    .await;
    let refusal = gw.try_publish("stale-key").await.err().expect("refused");
    assert!(refusal.contains("NetStream.Publish.BadName"), "{refusal}");
    gw.refusals_reach("rtmp", "backend_refused", 1.0).await;
    let media = String::from_utf8_lossy(&srv.get("/metrics").await.body).into_owned();
    assert_eq!(
        metric(
            &media,
            "roomcast_media_publishes_refused_total{room=\"\",reason=\"wrong_key\"}"
        ),
        1.0,
        "{media}"
    );
    gw.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_key_is_refused_at_once_and_the_new_key_works() {
    let Some((srv, gw)) = lobby_behind_gateway().await else {
        return;
    };
    let publish = gw
        .try_publish(LOBBY_KEY)
        .await
        .expect("old key works before the rotation");
    drop(publish);
    // The operator rotates the key: the room's key file and the table change together.
    let new_key = "lobby-key-rotated-0123456789";
    std::fs::write(srv.dir.path().join("lobby-key"), new_key).expect("media key");
    gw.reload(&[(new_key, "shows/lobby", srv.rtmp)]).await;
    let refusal = gw
        .try_publish(LOBBY_KEY)
        .await
        .err()
        .expect("old key refused at once");
    assert!(refusal.contains("BadName"), "{refusal}");
    gw.refusals_reach("rtmp", "unknown_key", 1.0).await;
    // The media worker re-reads its key file every few seconds; the gateway already routes.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        match gw.try_publish(new_key).await {
            Ok(_) => break,
            Err(e) => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "new key never worked: {e}"
                );
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
    gw.stop().await;
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_restart_mid_publish_continues_the_session_with_a_discontinuity() {
    if !media_tools_available() {
        return;
    }
    let mut spec = room("lobby", LOBBY_KEY);
    spec.grace_seconds = 15;
    let srv = TestServer::start(vec![spec]).await;
    let routes = [(LOBBY_KEY, "shows/lobby", srv.rtmp)];
    let first = TestGateway::start(GatewayOptions::default(), &routes).await;
    let addr = first.rtmp;
    let url = first.url("rtmp", LOBBY_KEY);
    let publisher = Publisher {
        seconds: 30,
        ..Default::default()
    }
    .spawn(&url);
    wait_for_segments(&srv, "lobby").await;
    let before: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/lobby/status").await.body).expect("json");
    // The replica goes away mid-publish (drain deadline 0: the relay is cut).
    first.stop().await;
    let _ = wait_exit(publisher, Duration::from_secs(10)).await;
    // The replacement on the same address; the publisher reconnects (OBS does on its own).
    let second = TestGateway::start_at(GatewayOptions::default(), &routes, addr).await;
    let again = Publisher {
        seconds: 3,
        ..Default::default()
    }
    .spawn(&url);
    let text = srv
        .wait_for("/shows/lobby/hls/source/index.m3u8", LONG, |t| {
            t.contains("#EXT-X-DISCONTINUITY")
        })
        .await
        .text();
    assert!(!text.contains("#EXT-X-ENDLIST"), "{text}");
    let after: serde_json::Value =
        serde_json::from_slice(&srv.get("/shows/lobby/status").await.body).expect("json");
    assert_eq!(before["sessionId"], after["sessionId"], "same session");
    assert!(wait_exit(again, LONG).await);
    second.stop().await;
    srv.stop().await;
}

/// Whether the server closed `stream` within `within` (EOF or reset).
async fn closed(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let until = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(until, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
}

/// A gateway whose routes point nowhere: the hostile tests never get past it.
async fn lone_gateway(options: GatewayOptions) -> TestGateway {
    TestGateway::start(
        options,
        &[(
            LOBBY_KEY,
            "shows/lobby",
            "127.0.0.1:9".parse().expect("addr"),
        )],
    )
    .await
}

#[tokio::test]
async fn garbage_before_and_after_the_handshake_closes_the_connection_and_the_gateway_serves_on() {
    let gw = lone_gateway(GatewayOptions::default()).await;
    // Before: a wrong RTMP version byte and noise.
    let mut before = TcpStream::connect(gw.rtmp).await.expect("connect");
    let mut noise = vec![0x55u8; 1537];
    noise[1..]
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = (i * 31) as u8);
    before.write_all(&noise).await.expect("write");
    assert!(
        closed(&mut before, Duration::from_secs(5)).await,
        "garbage handshake kept open"
    );
    // After: a valid C0+C1+C2, then chunk headers that make no sense.
    let mut after = TcpStream::connect(gw.rtmp).await.expect("connect");
    let mut hello = vec![3u8];
    hello.extend(std::iter::repeat_n(0u8, 1536 * 2));
    after.write_all(&hello).await.expect("handshake");
    let mut s0s1s2 = vec![0u8; 1 + 1536 * 2];
    after
        .read_exact(&mut s0s1s2)
        .await
        .expect("server handshake");
    let _ = after
        .write_all(&[
            0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x14, 0, 0, 0, 0, 0xff, 0xfe,
        ])
        .await;
    let _ = after.write_all(&[0xc3; 4096]).await;
    assert!(
        closed(&mut after, Duration::from_secs(5)).await,
        "garbage session kept open"
    );
    // The gateway still answers a good client.
    let refusal = gw
        .try_publish("whatever")
        .await
        .err()
        .expect("refused, but spoken to");
    assert!(refusal.contains("BadName"), "{refusal}");
    gw.stop().await;
}

#[tokio::test]
async fn tls_garbage_on_the_rtmps_listener_is_refused_and_counted() {
    let gw = lone_gateway(GatewayOptions::default()).await;
    // Plain RTMP to the RTMPS port, then a ClientHello-shaped record full of noise.
    for bytes in [
        vec![3u8; 1537],
        [&[0x16u8, 3, 1, 0x40, 0][..], &[0xaa; 0x4000]].concat(),
    ] {
        let mut s = TcpStream::connect(gw.rtmps).await.expect("connect");
        let _ = s.write_all(&bytes).await;
        assert!(closed(&mut s, Duration::from_secs(5)).await, "kept open");
    }
    gw.metric_reaches(
        "roomcast_ingest_tls_handshake_failures_total{listener=\"rtmps\"}",
        2.0,
    )
    .await;
    gw.refusals_reach("rtmps", "tls_handshake", 2.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn key_guessing_over_the_limit_is_refused_before_any_lookup() {
    let gw = lone_gateway(GatewayOptions {
        key_attempts_per_minute: 3,
        ..GatewayOptions::default()
    })
    .await;
    for i in 0..3 {
        let refusal = gw
            .try_publish(&format!("guess-{i}"))
            .await
            .err()
            .expect("refused");
        assert!(refusal.contains("BadName"), "{refusal}");
    }
    gw.refusals_reach("rtmp", "unknown_key", 3.0).await;
    // Over the limit even the right key is not looked up (its backend would be tried then).
    assert!(gw.try_publish(LOBBY_KEY).await.is_err());
    gw.refusals_reach("rtmp", "key_guessing", 1.0).await;
    assert_eq!(
        gw.metric("roomcast_ingest_relay_errors_total"),
        0.0,
        "no backend was tried"
    );
    gw.stop().await;
}

/// A stand-in load balancer: every connection to the returned address reaches `to` after a
/// PROXY v1 header that names `client` (`TCP4` or `TCP6` by its family) as the source.
async fn balancer_naming(client: std::net::IpAddr, to: SocketAddr) -> (SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(mut outbound) = TcpStream::connect(to).await else {
                    return;
                };
                let (family, dest) = match client {
                    std::net::IpAddr::V4(_) => ("TCP4", "10.0.0.1"),
                    std::net::IpAddr::V6(_) => ("TCP6", "2001:db8:ffff::1"),
                };
                let header = format!("PROXY {family} {client} {dest} 40000 1935\r\n");
                if outbound.write_all(header.as_bytes()).await.is_ok() {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn key_attempts_are_counted_per_ipv6_64_and_mapped_ipv4_counts_as_ipv4() {
    let gw = lone_gateway(GatewayOptions {
        proxy_protocol: true,
        key_attempts_per_minute: 2,
        ..GatewayOptions::default()
    })
    .await;
    let attempt = |client: &'static str| {
        let to = gw.rtmp;
        async move {
            let (balancer, task) = balancer_naming(client.parse().expect("ip"), to).await;
            let answer = Backend::open(
                &balancer.to_string(),
                &PresentedKey::new("a-guess"),
                Duration::from_secs(10),
            )
            .await
            .err()
            .map(|e| e.to_string())
            .expect("no guess is routed");
            task.abort();
            answer
        }
    };
    let guessing = |answer: &str| answer.contains("too many publish attempts");
    // Two addresses of one /64 spend one budget; a third address of it is over.
    assert!(!guessing(&attempt("2001:db8:1:2::1").await));
    assert!(!guessing(&attempt("2001:db8:1:2::2").await));
    let third = attempt("2001:db8:1:2:ffff:ffff:ffff:ffff").await;
    assert!(guessing(&third), "{third}");
    // Another /64 has its own budget.
    let other = attempt("2001:db8:1:3::1").await;
    assert!(!guessing(&other), "{other}");
    // An IPv4 client seen once as mapped IPv6 and once as IPv4 is one client.
    assert!(!guessing(&attempt("::ffff:198.51.100.9").await));
    assert!(!guessing(&attempt("198.51.100.9").await));
    let mapped = attempt("::ffff:198.51.100.9").await;
    assert!(guessing(&mapped), "{mapped}");
    gw.refusals_reach("rtmp", "key_guessing", 2.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn an_overlong_stream_name_is_refused_without_hashing_it() {
    let gw = lone_gateway(GatewayOptions::default()).await;
    let long = "k".repeat(8 * 1024);
    assert!(gw.try_publish(&long).await.is_err());
    gw.refusals_reach("rtmp", "key_too_long", 1.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn with_proxy_protocol_garbage_headers_are_refused_and_limits_see_the_named_client() {
    let gw = lone_gateway(GatewayOptions {
        proxy_protocol: true,
        limits: roomcast_rtmp::limits::RtmpLimits {
            rtmp_max_connections_per_ip: 1,
            ..Default::default()
        },
        ..GatewayOptions::default()
    })
    .await;
    for garbage in [
        &b"GET / HTTP/1.1\r\n\r\n"[..],
        &[3u8; 1537][..],
        b"PROXY TCP4 1.2.3.999 10.0.0.1 1 2\r\n",
    ] {
        let mut s = TcpStream::connect(gw.rtmp).await.expect("connect");
        let _ = s.write_all(garbage).await;
        assert!(
            closed(&mut s, Duration::from_secs(5)).await,
            "{garbage:?} kept open"
        );
    }
    gw.refusals_reach("rtmp", "proxy_header", 3.0).await;
    // Every connection comes from 127.0.0.1 (the "balancer"); the cap of one per client
    // applies to the addresses the headers name.
    let header = |client: &str| format!("PROXY TCP4 {client} 10.0.0.1 40000 1935\r\n");
    let mut a = TcpStream::connect(gw.rtmp).await.expect("connect");
    a.write_all(header("198.51.100.1").as_bytes())
        .await
        .expect("header");
    let mut b = TcpStream::connect(gw.rtmp).await.expect("connect");
    b.write_all(header("198.51.100.2").as_bytes())
        .await
        .expect("header");
    let mut c = TcpStream::connect(gw.rtmp).await.expect("connect");
    c.write_all(header("198.51.100.1").as_bytes())
        .await
        .expect("header");
    assert!(
        closed(&mut c, Duration::from_secs(5)).await,
        "second connection of one client"
    );
    assert!(!closed(&mut a, Duration::from_millis(300)).await);
    assert!(
        !closed(&mut b, Duration::from_millis(300)).await,
        "another client is not capped"
    );
    gw.refusals_reach("rtmp", "connections_per_ip", 1.0).await;
    gw.stop().await;
}

#[tokio::test]
async fn draining_stops_accepting_and_is_not_ready() {
    let gw = lone_gateway(GatewayOptions::default()).await;
    assert!(gw.gw.readiness().is_ok());
    let (gateway, addr) = (gw.gw.clone(), gw.rtmp);
    let drain = tokio::spawn(async move { gateway.drain(Duration::from_secs(1)).await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(gw.gw.readiness().is_err(), "ready while draining");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting while draining"
    );
    drain.await.expect("drain");
    gw.stop().await;
}

/// A TLS handshake with the RTMPS listener by a client that trusts only `cert_pem`.
async fn handshake_trusting(addr: SocketAddr, cert_pem: &[u8]) -> std::io::Result<()> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(cert_pem) {
        roots.add(cert.expect("pem")).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await.map(|_| ())
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_bad_one_is_not() {
    let gw = lone_gateway(GatewayOptions::default()).await;
    let old = std::fs::read(&gw.cert.cert).expect("cert");
    handshake_trusting(gw.rtmps, &old)
        .await
        .expect("the first certificate");
    // cert-manager renews: the kubelet swaps both files.
    let renewed = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    std::fs::write(&gw.cert.key, renewed.signing_key.serialize_pem()).expect("key");
    std::fs::write(&gw.cert.cert, renewed.cert.pem()).expect("cert");
    gw.metric_reaches("roomcast_ingest_tls_reloads_total", 1.0)
        .await;
    handshake_trusting(gw.rtmps, renewed.cert.pem().as_bytes())
        .await
        .expect("the renewed certificate is served");
    assert!(
        handshake_trusting(gw.rtmps, &old).await.is_err(),
        "the old certificate is still served"
    );
    // A broken write: refused, counted, and the renewed pair stays in use.
    std::fs::write(&gw.cert.cert, b"-----BEGIN CERTIFICATE-----\ntruncated").expect("cert");
    gw.metric_reaches("roomcast_ingest_tls_reload_errors_total", 1.0)
        .await;
    handshake_trusting(gw.rtmps, renewed.cert.pem().as_bytes())
        .await
        .expect("the last good certificate stays");
    gw.stop().await;
}

/// Stream keys never reach the logs, not even at debug level: the gateway's span names the
/// client and the room, never the key, whether the key is refused or relayed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_keys_never_reach_the_logs() {
    let captured = roomcast_recorder::testing::LogCapture::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("debug")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let Some((srv, gw)) = lobby_behind_gateway().await else {
        return;
    };
    let wrong = "wrong-key-8c1e7d2a";
    assert!(gw.try_publish(wrong).await.is_err());
    let right = Publisher {
        seconds: 2,
        ..Default::default()
    }
    .spawn(&gw.url("rtmps", LOBBY_KEY));
    assert!(wait_exit(right, LONG).await);
    gw.stop().await;
    srv.stop().await;
    let logs = captured.text();
    assert!(logs.contains("publish accepted; relaying"), "{logs}");
    assert!(
        logs.contains("room=shows/lobby") || logs.contains("room=\"shows/lobby\""),
        "{logs}"
    );
    assert!(logs.contains("unknown_key"), "{logs}");
    for secret in [LOBBY_KEY, wrong] {
        assert!(
            !logs.contains(secret),
            "{secret} leaked into the logs:\n{logs}"
        );
    }
}

/// A media worker that accepts the publish and then reads nothing more: the shared RTMP core
/// as a server, then a socket left unread.
async fn stalling_backend() -> (SocketAddr, JoinHandle<()>) {
    use roomcast_rtmp::core::{IngestEvent, Output, RtmpCore};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.expect("accept");
        let now = std::time::Instant::now();
        let mut core = RtmpCore::new(Default::default(), now);
        let mut buf = vec![0u8; 65536];
        loop {
            let n = socket.read(&mut buf).await.expect("read");
            let mut outputs: std::collections::VecDeque<Output> =
                core.handle_input(&buf[..n], now).expect("rtmp").into();
            let mut accepted = false;
            while let Some(out) = outputs.pop_front() {
                match out {
                    Output::Send(bytes) => socket.write_all(&bytes).await.expect("write"),
                    Output::Event(IngestEvent::PublishRequested { request_id, .. }) => {
                        outputs.extend(core.accept_publish(request_id, now).expect("accept"));
                        accepted = true;
                    }
                    Output::Event(_) => {}
                }
            }
            if accepted {
                // Hold the socket, read nothing: its buffers fill and the relay's writes stall.
                tokio::time::sleep(Duration::from_secs(120)).await;
                return;
            }
        }
    });
    (addr, task)
}

#[tokio::test]
async fn a_backend_that_stops_reading_ends_the_relay_with_bounded_memory() {
    let (backend, stall) = stalling_backend().await;
    let gw = TestGateway::start(
        GatewayOptions {
            backend_write_timeout: Duration::from_secs(1),
            ..GatewayOptions::default()
        },
        &[(LOBBY_KEY, "shows/lobby", backend)],
    )
    .await;
    let mut publisher = gw.try_publish(LOBBY_KEY).await.expect("relayed");
    assert_eq!(gw.metric("roomcast_ingest_active_relays"), 1.0);
    // Keyframe-sized messages as fast as the gateway takes them, until it hangs up.
    let frame = bytes::Bytes::from(vec![0x17u8; 60_000]);
    let started = std::time::Instant::now();
    let mut sent = 0usize;
    for ts in 0u32.. {
        let bytes = publisher.video(ts * 33, frame.clone()).expect("video");
        match tokio::time::timeout(Duration::from_secs(5), publisher.stream.write_all(&bytes)).await
        {
            Ok(Ok(())) => sent += bytes.len(),
            _ => break,
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the relay never ended"
        );
    }
    gw.metric_reaches(
        "roomcast_ingest_relay_errors_total{reason=\"backend_slow\"}",
        1.0,
    )
    .await;
    for _ in 0..100 {
        if gw.metric("roomcast_ingest_active_relays") == 0.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(gw.metric("roomcast_ingest_active_relays"), 0.0);
    // What the gateway took before stalling is what the sockets buffer, not the stream.
    assert!(sent < 64 * 1024 * 1024, "{sent} bytes taken");
    stall.abort();
    gw.stop().await;
}

#[tokio::test]
async fn a_client_that_stops_reading_is_still_cut_at_its_publish_deadline() {
    let gw = lone_gateway(GatewayOptions {
        limits: roomcast_rtmp::limits::RtmpLimits {
            rtmp_publish_timeout_seconds: 2,
            ..Default::default()
        },
        ..GatewayOptions::default()
    })
    .await;
    let (_read, writer) = flood_unread_answers(gw.rtmp).await;
    // The publish deadline (2 s) passes while the gateway's answers sit unread: the
    // connection must still be cut and its slot freed.
    tokio::time::sleep(Duration::from_secs(2)).await;
    gw.refusals_reach("rtmp", "publish_timeout", 1.0).await;
    writer.abort();
    gw.stop().await;
}

#[tokio::test]
async fn connections_that_send_no_proxy_header_cannot_lock_out_the_clients_that_do() {
    let gw = lone_gateway(GatewayOptions {
        proxy_protocol: true,
        limits: roomcast_rtmp::limits::RtmpLimits {
            rtmp_max_connections: 4,
            ..Default::default()
        },
        ..GatewayOptions::default()
    })
    .await;
    // One peer opens as many connections as the gateway takes in total and sends nothing.
    let mut silent = Vec::new();
    for _ in 0..4 {
        silent.push(TcpStream::connect(gw.rtmp).await.expect("connect"));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A client the balancer names at once is still served.
    let mut honest = TcpStream::connect(gw.rtmp).await.expect("connect");
    honest
        .write_all(b"PROXY TCP4 198.51.100.1 10.0.0.1 40000 1935\r\n")
        .await
        .expect("header");
    assert!(
        !closed(&mut honest, Duration::from_secs(1)).await,
        "refused while silent connections wait for their headers"
    );
    assert!(
        closed(&mut silent[0], Duration::from_secs(1)).await,
        "the oldest silent connection gave way"
    );
    gw.refusals_reach("rtmp", "evicted_at_capacity", 1.0).await;
    drop(silent);
    gw.stop().await;
}
