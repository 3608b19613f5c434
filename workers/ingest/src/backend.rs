//! The gateway's side towards a room: an RTMP client session (rml_rtmp's `ClientSession`) to the
//! room's media worker that connects to `live` and publishes with the publisher's own key, so
//! the media worker checks the key itself. [`Backend::open`] does the handshake, connect and
//! publish; afterwards the relay turns the publisher's messages into this session's bytes with
//! [`Backend::metadata`], [`Backend::video`], [`Backend::audio`].

use std::time::Duration;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::rml_amf0::Amf0Value;
use rml_rtmp::sessions::{
    ClientSession, ClientSessionConfig, ClientSessionError, ClientSessionEvent,
    ClientSessionResult, PublishRequestType, StreamMetadata,
};
use rml_rtmp::time::RtmpTimestamp;
use roomcast_rtmp::RTMP_APP;
use roomcast_rtmp::key::PresentedKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::error::{Error, Result};

/// Connect, handshake, connect `live` and publish, all within this (the media worker answers
/// in a few round trips inside the cluster).
pub const BACKEND_SETUP_TIMEOUT: Duration = Duration::from_secs(10);

/// A publishing session to a room's media worker.
pub struct Backend {
    pub stream: TcpStream,
    session: ClientSession,
    addr: String,
}

/// What the media worker said to a publish.
enum Answer {
    Accepted,
    Refused(String),
}

impl Backend {
    /// Open a publishing session for `key` at `addr`. The error's reason says whether the
    /// worker could not be reached (`backend_unreachable`), refused the publish
    /// (`backend_refused`, with its status code), or spoke no RTMP we understand
    /// (`backend_protocol`).
    pub async fn open(addr: &str, key: &PresentedKey, timeout: Duration) -> Result<Backend> {
        tokio::time::timeout(timeout, Self::setup(addr, key))
            .await
            .unwrap_or_else(|_| {
                Err(Error::backend(
                    addr,
                    "backend_unreachable",
                    "no publish answer in time",
                ))
            })
    }

    async fn setup(addr: &str, key: &PresentedKey) -> Result<Backend> {
        let unreachable =
            |e: std::io::Error| Error::backend(addr, "backend_unreachable", e.to_string());
        let protocol = |e: String| Error::backend(addr, "backend_protocol", e);
        let mut stream = TcpStream::connect(addr).await.map_err(unreachable)?;
        let _ = stream.set_nodelay(true);
        let mut handshake = Handshake::new(PeerType::Client);
        let p0p1 = handshake
            .generate_outbound_p0_and_p1()
            .map_err(|e| protocol(e.to_string()))?;
        stream.write_all(&p0p1).await.map_err(unreachable)?;
        let mut buf = vec![0u8; 16 * 1024];
        let remaining = loop {
            let n = stream.read(&mut buf).await.map_err(unreachable)?;
            if n == 0 {
                return Err(protocol("closed during the handshake".into()));
            }
            match handshake
                .process_bytes(&buf[..n])
                .map_err(|e| protocol(e.to_string()))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => stream
                    .write_all(&response_bytes)
                    .await
                    .map_err(unreachable)?,
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    stream
                        .write_all(&response_bytes)
                        .await
                        .map_err(unreachable)?;
                    break remaining_bytes;
                }
            }
        };
        let mut config = ClientSessionConfig::new();
        config.tc_url = Some(format!("rtmp://{addr}/{RTMP_APP}"));
        let (session, _) = ClientSession::new(config).map_err(|e| protocol(e.to_string()))?;
        let mut backend = Backend {
            stream,
            session,
            addr: addr.to_owned(),
        };
        let connect = backend
            .session
            .request_connection(RTMP_APP.to_owned())
            .map_err(|e| protocol(e.to_string()))?;
        backend.send(vec![connect]).await?;
        let mut input = remaining;
        loop {
            if !input.is_empty() {
                let results = backend
                    .session
                    .handle_input(&input)
                    .map_err(|e| protocol(e.to_string()))?;
                if let Some(answer) = backend.answer(results, key).await? {
                    return match answer {
                        Answer::Accepted => Ok(backend),
                        Answer::Refused(why) => Err(Error::backend(addr, "backend_refused", why)),
                    };
                }
            }
            let n = backend.stream.read(&mut buf).await.map_err(unreachable)?;
            if n == 0 {
                return Err(Error::backend(
                    addr,
                    "backend_refused",
                    "closed the connection before accepting the publish",
                ));
            }
            input = buf[..n].to_vec();
        }
    }

    /// Send what the session says to send; act on its events until the publish is answered.
    async fn answer(
        &mut self,
        results: Vec<ClientSessionResult>,
        key: &PresentedKey,
    ) -> Result<Option<Answer>> {
        let mut outbound = Vec::new();
        let mut answer = None;
        for result in results {
            match result {
                ClientSessionResult::OutboundResponse(p) => outbound.push(p.bytes),
                ClientSessionResult::RaisedEvent(ClientSessionEvent::ConnectionRequestAccepted) => {
                    let publish = self
                        .session
                        .request_publishing(key.expose().to_owned(), PublishRequestType::Live)
                        .map_err(|e| self.protocol(e))?;
                    if let ClientSessionResult::OutboundResponse(p) = publish {
                        outbound.push(p.bytes);
                    }
                }
                ClientSessionResult::RaisedEvent(ClientSessionEvent::PublishRequestAccepted) => {
                    answer = Some(Answer::Accepted)
                }
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::ConnectionRequestRejected { description },
                ) => answer = Some(Answer::Refused(format!("connect refused: {description}"))),
                // rml_rtmp reports a refused publish (NetStream.Publish.BadName & co) as a status
                // code it does not handle.
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::UnhandleableOnStatusCode { code },
                ) if code.starts_with("NetStream.Publish.") => answer = Some(Answer::Refused(code)),
                // rml_rtmp's servers (the media worker) refuse a publish with an `_error` of
                // transaction 0, which the client reports as an unknown transaction.
                ClientSessionResult::RaisedEvent(
                    ClientSessionEvent::UnknownTransactionResultReceived {
                        additional_values, ..
                    },
                ) => {
                    if let Some(why) = publish_refusal(&additional_values) {
                        answer = Some(Answer::Refused(why));
                    }
                }
                ClientSessionResult::RaisedEvent(event) => {
                    tracing::debug!(?event, "backend event during setup")
                }
                ClientSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        for bytes in outbound {
            self.stream
                .write_all(&bytes)
                .await
                .map_err(|e| Error::backend(&self.addr, "backend_unreachable", e.to_string()))?;
        }
        Ok(answer)
    }

    async fn send(&mut self, results: Vec<ClientSessionResult>) -> Result<()> {
        for result in results {
            if let ClientSessionResult::OutboundResponse(p) = result {
                self.stream.write_all(&p.bytes).await.map_err(|e| {
                    Error::backend(&self.addr, "backend_unreachable", e.to_string())
                })?;
            }
        }
        Ok(())
    }

    fn protocol(&self, e: ClientSessionError) -> Error {
        Error::backend(&self.addr, "backend_protocol", e.to_string())
    }

    fn bytes(&self, result: Result<ClientSessionResult, ClientSessionError>) -> Result<Vec<u8>> {
        match result.map_err(|e| self.protocol(e))? {
            ClientSessionResult::OutboundResponse(p) => Ok(p.bytes),
            _ => Ok(Vec::new()),
        }
    }

    pub fn metadata(&mut self, metadata: &StreamMetadata) -> Result<Vec<u8>> {
        let r = self.session.publish_metadata(metadata);
        self.bytes(r)
    }

    pub fn video(&mut self, timestamp_ms: u32, data: Bytes) -> Result<Vec<u8>> {
        let r = self
            .session
            .publish_video_data(data, RtmpTimestamp::new(timestamp_ms), false);
        self.bytes(r)
    }

    pub fn audio(&mut self, timestamp_ms: u32, data: Bytes) -> Result<Vec<u8>> {
        let r = self
            .session
            .publish_audio_data(data, RtmpTimestamp::new(timestamp_ms), false);
        self.bytes(r)
    }

    /// The publisher is done: tell the worker, so it ends the publish at once.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        let results = self
            .session
            .stop_publishing()
            .map_err(|e| self.protocol(e))?;
        Ok(outbound(results))
    }

    /// Bytes the worker sent (acknowledgements, pings): what to answer.
    pub fn input(&mut self, bytes: &[u8]) -> Result<Vec<u8>> {
        let results = self
            .session
            .handle_input(bytes)
            .map_err(|e| self.protocol(e))?;
        for r in &results {
            if let ClientSessionResult::RaisedEvent(event) = r {
                tracing::debug!(?event, "backend event");
            }
        }
        Ok(outbound(results))
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }
}

/// `<code>: <description>` of a status object refusing a publish.
fn publish_refusal(values: &[Amf0Value]) -> Option<String> {
    let Some(Amf0Value::Object(status)) = values.first() else {
        return None;
    };
    let text = |name: &str| match status.get(name) {
        Some(Amf0Value::Utf8String(s)) => s.as_str(),
        _ => "",
    };
    let code = text("code");
    code.starts_with("NetStream.Publish.")
        .then(|| format!("{code}: {}", text("description")))
}

fn outbound(results: Vec<ClientSessionResult>) -> Vec<u8> {
    results
        .into_iter()
        .filter_map(|r| match r {
            ClientSessionResult::OutboundResponse(p) => Some(p.bytes),
            _ => None,
        })
        .flatten()
        .collect()
}
