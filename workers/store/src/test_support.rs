//! Test servers started by tests themselves: the MongoDB-compatible `secantusd-py`
//! (PyPI `secantusdb`, installed by `scripts/install-deps.sh`) on a free loopback port, in
//! memory, stopped when dropped. `ROOMCAST_TEST_MONGODB_URI` names a real MongoDB instead.
//! Where neither is there, the test skips with a notice, and fails under `CI`
//! ([`roomcast_runtime::skip::missing`]).

use std::{process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};

use crate::{Error, Result, mongo::MongoUri};

/// Environment variable naming a real MongoDB for the shared store tests.
pub const TEST_MONGODB_URI_ENV: &str = "ROOMCAST_TEST_MONGODB_URI";
const START_TIMEOUT: Duration = Duration::from_secs(30);
const SERVER: &str = "secantusd-py";
const INSTALL: &str = "pip install secantusdb==0.7.0b3; see scripts/install-deps.sh";

/// A running `secantusd-py`; killed on drop.
pub struct MongoTestServer {
    pub uri: MongoUri,
    _child: Child,
}

impl MongoTestServer {
    /// Start `secantusd-py --host 127.0.0.1 --port 0 --storage-path :memory:` and wait for the
    /// line naming the port it chose. `None` when it is not installed (after
    /// [`roomcast_runtime::skip::missing`], which fails the test under `CI`).
    pub async fn start() -> Result<Option<Self>> {
        let spawned = Command::new(SERVER)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--storage-path",
                ":memory:",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                roomcast_runtime::skip::missing(SERVER, INSTALL);
                return Ok(None);
            }
            Err(e) => {
                return Err(Error::TestServer(format!(
                    "starting {SERVER} ({INSTALL}): {e}"
                )));
            }
        };
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| Error::TestServer("secantusd-py stderr not captured".into()))?;
        let mut lines = BufReader::new(stderr).lines();
        let addr = tokio::time::timeout(START_TIMEOUT, async {
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(rest) = line.split("listening on ").nth(1) {
                    return Some(rest.trim().to_owned());
                }
            }
            None
        })
        .await
        .map_err(|_| Error::TestServer("secantusd-py did not report its port in 30 s".into()))?
        .ok_or_else(|| Error::TestServer("secantusd-py exited before listening".into()))?;
        // Keep draining its log so a full pipe never blocks it.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(Some(Self {
            uri: MongoUri::new(format!(
                "mongodb://{addr}/roomcast_test?directConnection=true"
            )),
            _child: child,
        }))
    }
}

/// A MongoDB for tests: `ROOMCAST_TEST_MONGODB_URI` if set (nothing to stop), else a fresh
/// `secantusd-py`. `None` when neither is there: the caller returns (the test is skipped, or
/// has already failed under `CI`).
pub async fn mongo_for_tests() -> Result<Option<(MongoUri, Option<MongoTestServer>)>> {
    match std::env::var(TEST_MONGODB_URI_ENV) {
        Ok(uri) if !uri.trim().is_empty() => Ok(Some((MongoUri::new(uri.trim()), None))),
        _ => Ok(MongoTestServer::start()
            .await?
            .map(|server| (server.uri.clone(), Some(server)))),
    }
}
