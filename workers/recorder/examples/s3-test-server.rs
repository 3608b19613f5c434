//! The recorder tests' S3 server (`s3s` + `s3s-fs`, SigV4 checked) as a process, for suites
//! written in other languages: the cluster-in-a-box test records a room's session into it from
//! a real media container.
//!
//! ```text
//! cargo run -p roomcast-recorder --features test-support --example s3-test-server -- 10.213.0.1:0
//! ```
//! It prints one JSON line (`endpoint`, `bucket`, `accessKeyId`, `secretAccessKey`, `dir`: the
//! directory holding the bucket's objects as files) and serves until stdin closes or it is
//! killed; the directory goes with it.

use std::io::Read;
use std::net::SocketAddr;

use roomcast_recorder::testing::{ACCESS_KEY, BUCKET, S3TestServer, SECRET_KEY};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into())
        .parse()?;
    let server = S3TestServer::start_on(addr).await;
    println!(
        "{}",
        serde_json::json!({
            "endpoint": server.endpoint(),
            "bucket": BUCKET,
            "accessKeyId": ACCESS_KEY,
            "secretAccessKey": SECRET_KEY,
            "dir": server.dir.path().join(BUCKET),
        })
    );
    // The parent holds stdin open for as long as it wants the server.
    tokio::task::spawn_blocking(|| {
        let _ = std::io::stdin().read(&mut [0u8; 1]);
    })
    .await?;
    drop(server);
    Ok(())
}
