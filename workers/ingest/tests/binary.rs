//! The `roomcast-ingest` binary as the chart runs it: flags, readiness that follows the routing
//! table, a refused table keeping the gateway unready, start-up errors that name the flag, and
//! SIGTERM ending in a drain and a clean exit.

#[path = "../../media/tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::http_request;
use roomcast_crds::ingest_routes::{Route, RouteTable, RoutingKey};
use tokio::process::{Child, Command};

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

fn ingest(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_roomcast-ingest"));
    cmd.args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

/// `/readyz` status and body, or 0 while nothing listens.
async fn readyz(ops: SocketAddr) -> (u16, String) {
    if tokio::net::TcpStream::connect(ops).await.is_err() {
        return (0, String::new());
    }
    let r = http_request(ops, "GET", "/readyz", &[]).await;
    (r.status, r.text())
}

async fn readyz_becomes(ops: SocketAddr, status: u16) -> String {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        let (s, body) = readyz(ops).await;
        if s == status {
            return body;
        }
        assert!(Instant::now() < until, "/readyz stayed {s} {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn exit_output(child: Child) -> (bool, String) {
    let out = tokio::time::timeout(Duration::from_secs(30), child.wait_with_output())
        .await
        .expect("exits")
        .expect("output");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn ready_only_with_a_good_table_and_sigterm_drains_to_a_clean_exit() {
    let dir = tempfile::tempdir().expect("dir");
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, "a-routing-key-of-at-least-32-bytes!!\n").expect("key");
    let routes = dir.path().join("routes.json");
    std::fs::write(&routes, "{ not json").expect("routes");
    let (rtmp, ops) = (free_port(), free_port());
    let child = ingest(&[
        "--rtmp-listen",
        &rtmp.to_string(),
        "--ops-listen",
        &ops.to_string(),
        "--routing-key-file",
        key_file.to_str().expect("utf-8"),
        "--routes-file",
        routes.to_str().expect("utf-8"),
        "--drain-seconds",
        "2",
    ])
    .spawn()
    .expect("start");
    let body = readyz_becomes(ops, 503).await;
    assert!(body.contains("routing table"), "{body}");
    let metrics = http_request(ops, "GET", "/metrics", &[]).await.text();
    assert!(
        metrics.contains("roomcast_ingest_route_errors_total 1"),
        "{metrics}"
    );
    // The operator writes a good table: ready, and the route works at once.
    let key = RoutingKey::new(b"a-routing-key-of-at-least-32-bytes!!".to_vec()).expect("key");
    let table = RouteTable::new(vec![Route {
        key_hash: key.hash("k"),
        room: "shows/lobby".into(),
        backend: "127.0.0.1:9".into(),
    }]);
    std::fs::write(&routes, table.to_json()).expect("routes");
    readyz_becomes(ops, 200).await;
    assert!(tokio::net::TcpStream::connect(rtmp).await.is_ok());
    // SIGTERM: not ready, not accepting, then a clean exit within the drain.
    let pid = child.id().expect("pid");
    let started = Instant::now();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let (ok, stderr) = exit_output(child).await;
    assert!(ok, "exit after SIGTERM: {stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(
        tokio::net::TcpStream::connect(rtmp).await.is_err(),
        "still listening"
    );
}

#[tokio::test]
async fn start_up_errors_name_the_flag() {
    let dir = tempfile::tempdir().expect("dir");
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "-----BEGIN CERTIFICATE-----\nnot base64\n").expect("pem");
    let ops = free_port().to_string();
    let cases: [(Vec<&str>, &str); 4] = [
        (vec!["--rtmp-listen", "127.0.0.1:0"], "--routes-configmap"),
        (vec!["--routes-configmap", "routes"], "--namespace"),
        (
            vec![
                "--routes-file",
                "/nonexistent",
                "--tls-cert-file",
                garbage.to_str().expect("utf-8"),
                "--tls-key-file",
                garbage.to_str().expect("utf-8"),
            ],
            "tls",
        ),
        (
            vec![
                "--routes-file",
                "/nonexistent",
                "--key-attempts-per-minute",
                "0",
            ],
            "--key-attempts-per-minute",
        ),
    ];
    for (args, named) in cases {
        let mut all = vec!["--ops-listen", &ops];
        all.extend(args.iter().copied());
        let (ok, stderr) = exit_output(
            ingest(&all)
                .env_remove("POD_NAMESPACE")
                .spawn()
                .expect("start"),
        )
        .await;
        assert!(!ok, "{args:?} started");
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}
