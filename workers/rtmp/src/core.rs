//! Sans-I/O RTMP ingest core: bytes from the publisher in, bytes to send back and
//! [`IngestEvent`]s out. Built on rml_rtmp's `Handshake` and `ServerSession`; the socket loop
//! of each listener (the media worker's ingest, the gateway's relay) only moves bytes, so this is tested without sockets or sleeps.
//! The core also keeps the connection's deadlines ([`SessionLimits`]): time is passed in, and
//! [`RtmpCore::deadline`] says when the loop must look again and which limit it would cut for.

use std::time::Instant;

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};

use crate::RTMP_APP;
use crate::error::{Error, Result};
use crate::key::PresentedKey;
use crate::limits::{Limit, SessionLimits};

/// Something the connection loop must act on.
#[derive(Debug)]
pub enum IngestEvent {
    /// The publisher asks to publish; answer with [`RtmpCore::accept_publish`] or
    /// [`RtmpCore::reject_publish`].
    PublishRequested {
        request_id: u32,
        app: String,
        key: PresentedKey,
    },
    Metadata(Box<StreamMetadata>),
    Video {
        timestamp_ms: u32,
        data: Bytes,
    },
    Audio {
        timestamp_ms: u32,
        data: Bytes,
    },
    /// The publisher said it is done (FCUnpublish / deleteStream).
    PublishFinished,
}

/// Output of the core, in order.
#[derive(Debug)]
pub enum Output {
    Send(Vec<u8>),
    Event(IngestEvent),
}

enum State {
    Handshaking(Box<Handshake>),
    Session(Box<ServerSession>),
    Closed,
}

/// One publisher connection's protocol state.
pub struct RtmpCore {
    state: State,
    limits: SessionLimits,
    /// When the TCP connection was accepted.
    opened: Instant,
    /// Whether a publish was accepted.
    publishing: bool,
    /// The last audio or video payload (or the accepted publish).
    last_media: Instant,
}

impl RtmpCore {
    /// A connection accepted at `opened`.
    pub fn new(limits: SessionLimits, opened: Instant) -> Self {
        RtmpCore {
            state: State::Handshaking(Box::new(Handshake::new(PeerType::Server))),
            limits,
            opened,
            publishing: false,
            last_media: opened,
        }
    }

    /// When the connection is cut unless something happens first, and for which limit: the
    /// handshake deadline, then the publish deadline (both from accept), then the idle
    /// deadline, which only audio or video bytes push back.
    pub fn deadline(&self) -> (Instant, Limit) {
        match (&self.state, self.publishing) {
            (State::Handshaking(_), _) => {
                (self.opened + self.limits.handshake, Limit::HandshakeTimeout)
            }
            (_, false) => (self.opened + self.limits.publish, Limit::PublishTimeout),
            (_, true) => (self.last_media + self.limits.idle, Limit::IdleTimeout),
        }
    }

    /// The limit the connection is over at `now`, if any.
    pub fn expired(&self, now: Instant) -> Option<Limit> {
        let (at, limit) = self.deadline();
        (at <= now).then_some(limit)
    }

    /// Feed bytes read from the socket at `now`.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) -> Result<Vec<Output>> {
        let out = self.input(bytes)?;
        let media = out.iter().any(|o| {
            matches!(o, Output::Event(IngestEvent::Video { data, .. } | IngestEvent::Audio { data, .. }) if !data.is_empty())
        });
        if media {
            self.last_media = now;
        }
        Ok(out)
    }

    fn input(&mut self, bytes: &[u8]) -> Result<Vec<Output>> {
        let mut out = Vec::new();
        match &mut self.state {
            State::Handshaking(hs) => match hs
                .process_bytes(bytes)
                .map_err(|e| Error::Handshake(e.to_string()))?
            {
                HandshakeProcessResult::InProgress { response_bytes } => {
                    if !response_bytes.is_empty() {
                        out.push(Output::Send(response_bytes));
                    }
                }
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => {
                    if !response_bytes.is_empty() {
                        out.push(Output::Send(response_bytes));
                    }
                    let mut config = ServerSessionConfig::new();
                    config.send_on_bw_done_message_on_start = false;
                    config.max_message_length = self.limits.max_message_bytes;
                    let (session, results) =
                        ServerSession::new(config).map_err(|e| Error::Rtmp(e.to_string()))?;
                    self.state = State::Session(Box::new(session));
                    self.absorb(results, &mut out)?;
                    if !remaining_bytes.is_empty() {
                        out.extend(self.input(&remaining_bytes)?);
                    }
                }
            },
            State::Session(session) => {
                let results = session.handle_input(bytes).map_err(session_error)?;
                self.absorb(results, &mut out)?;
            }
            State::Closed => {}
        }
        Ok(out)
    }

    /// Accept a publish request raised as [`IngestEvent::PublishRequested`] at `now`; the idle
    /// deadline starts here.
    pub fn accept_publish(&mut self, request_id: u32, now: Instant) -> Result<Vec<Output>> {
        let State::Session(session) = &mut self.state else {
            return Err(Error::Rtmp("no session".into()));
        };
        self.publishing = true;
        self.last_media = now;
        let results = session
            .accept_request(request_id)
            .map_err(|e| Error::Rtmp(e.to_string()))?;
        let mut out = Vec::new();
        self.absorb(results, &mut out)?;
        Ok(out)
    }

    /// Refuse a publish request; the caller sends the bytes and closes the connection.
    pub fn reject_publish(&mut self, request_id: u32, description: &str) -> Result<Vec<Output>> {
        let State::Session(session) = &mut self.state else {
            return Err(Error::Rtmp("no session".into()));
        };
        let results = session
            .reject_request(request_id, "NetStream.Publish.BadName", description)
            .map_err(|e| Error::Rtmp(e.to_string()))?;
        let mut out = Vec::new();
        self.absorb(results, &mut out)?;
        self.state = State::Closed;
        Ok(out)
    }

    fn absorb(&mut self, results: Vec<ServerSessionResult>, out: &mut Vec<Output>) -> Result<()> {
        for result in results {
            match result {
                ServerSessionResult::OutboundResponse(packet) => {
                    out.push(Output::Send(packet.bytes))
                }
                ServerSessionResult::RaisedEvent(event) => self.on_event(event, out)?,
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
        Ok(())
    }

    fn on_event(&mut self, event: ServerSessionEvent, out: &mut Vec<Output>) -> Result<()> {
        let State::Session(session) = &mut self.state else {
            return Ok(());
        };
        match event {
            ServerSessionEvent::ConnectionRequested {
                request_id,
                app_name,
            } => {
                let known = app_name.trim_end_matches('/') == RTMP_APP;
                let results = if known {
                    session.accept_request(request_id)
                } else {
                    // The name is the peer's: escaped (`?`) and cut, so it can neither forge
                    // log lines nor fill the log.
                    let app: String = app_name.chars().take(64).collect();
                    tracing::warn!(app = ?app, "RTMP connect to an unknown application refused; use /{RTMP_APP}");
                    session.reject_request(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        "unknown application",
                    )
                }
                .map_err(|e| Error::Rtmp(e.to_string()))?;
                self.absorb(results, out)?;
                if !known {
                    // Nothing more is read from a refused connection: one warning per connection.
                    self.state = State::Closed;
                }
            }
            ServerSessionEvent::PublishStreamRequested {
                request_id,
                app_name,
                stream_key,
                ..
            } => out.push(Output::Event(IngestEvent::PublishRequested {
                request_id,
                app: app_name,
                key: PresentedKey::new(stream_key),
            })),
            ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                let results = session
                    .reject_request(
                        request_id,
                        "NetStream.Play.Failed",
                        "playback over RTMP is not offered; use HLS",
                    )
                    .map_err(|e| Error::Rtmp(e.to_string()))?;
                self.absorb(results, out)?;
            }
            ServerSessionEvent::PublishStreamFinished { .. } => {
                out.push(Output::Event(IngestEvent::PublishFinished))
            }
            ServerSessionEvent::StreamMetadataChanged { metadata, .. } => {
                out.push(Output::Event(IngestEvent::Metadata(Box::new(metadata))))
            }
            ServerSessionEvent::VideoDataReceived {
                data, timestamp, ..
            } => out.push(Output::Event(IngestEvent::Video {
                timestamp_ms: timestamp.value,
                data,
            })),
            ServerSessionEvent::AudioDataReceived {
                data, timestamp, ..
            } => out.push(Output::Event(IngestEvent::Audio {
                timestamp_ms: timestamp.value,
                data,
            })),
            // releaseStream, FCPublish, FCUnpublish and _checkbw (OBS, ffmpeg) need no answer
            // for publishing to proceed; nginx-rtmp answers only some of them too.
            ServerSessionEvent::UnhandleableAmf0Command { command_name, .. } => {
                tracing::debug!(command = %command_name, "ignored AMF0 command");
            }
            other => tracing::debug!(event = ?other, "ignored RTMP event"),
        }
        Ok(())
    }
}

/// A message over the size limit is [`Limit::MessageTooLarge`]; anything else is a session error.
fn session_error(e: rml_rtmp::sessions::ServerSessionError) -> Error {
    use rml_rtmp::chunk_io::ChunkDeserializationError as Chunk;
    use rml_rtmp::sessions::ServerSessionError as Session;
    match e {
        Session::ChunkDeserializationError(
            Chunk::MessageTooLarge { .. } | Chunk::BufferedTooMuch { .. },
        ) => Error::Limit(Limit::MessageTooLarge),
        e => Error::Rtmp(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rml_rtmp::sessions::{
        ClientSession, ClientSessionConfig, ClientSessionEvent, ClientSessionResult,
        PublishRequestType,
    };
    use rml_rtmp::time::RtmpTimestamp;

    /// Drives a real rml_rtmp client against the core, in memory.
    struct Pair {
        /// The test's clock: every input happens at this instant.
        now: Instant,
        server: RtmpCore,
        client: ClientSession,
        events: Vec<IngestEvent>,
        client_events: Vec<ClientSessionEvent>,
    }

    impl Pair {
        fn new() -> Self {
            Self::with_limits(SessionLimits::default())
        }

        fn with_limits(limits: SessionLimits) -> Self {
            let now = Instant::now();
            let mut client_hs = Handshake::new(PeerType::Client);
            let mut server = RtmpCore::new(limits, now);
            let c0c1 = client_hs.generate_outbound_p0_and_p1().expect("p0p1");
            let mut to_client = Vec::new();
            for o in server.handle_input(&c0c1, now).expect("server hs") {
                if let Output::Send(b) = o {
                    to_client.extend(b);
                }
            }
            let (c2, leftover) = match client_hs.process_bytes(&to_client).expect("client hs") {
                HandshakeProcessResult::Completed {
                    response_bytes,
                    remaining_bytes,
                } => (response_bytes, remaining_bytes),
                HandshakeProcessResult::InProgress { .. } => panic!("client handshake incomplete"),
            };
            let (client, results) = ClientSession::new(ClientSessionConfig::new()).expect("client");
            let mut pair = Pair {
                now,
                server,
                client,
                events: Vec::new(),
                client_events: Vec::new(),
            };
            pair.send_to_server(c2);
            if !leftover.is_empty() {
                pair.send_to_client(leftover);
            }
            pair.client_results(results);
            pair
        }

        fn send_to_server(&mut self, bytes: Vec<u8>) {
            let outs = self
                .server
                .handle_input(&bytes, self.now)
                .expect("server input");
            self.server_outputs(outs);
        }

        fn server_outputs(&mut self, outs: Vec<Output>) {
            for o in outs {
                match o {
                    Output::Send(b) => self.send_to_client(b),
                    Output::Event(e) => self.events.push(e),
                }
            }
        }

        fn send_to_client(&mut self, bytes: Vec<u8>) {
            let results = self.client.handle_input(&bytes).expect("client input");
            self.client_results(results);
        }

        fn client_results(&mut self, results: Vec<ClientSessionResult>) {
            for r in results {
                match r {
                    ClientSessionResult::OutboundResponse(p) => self.send_to_server(p.bytes),
                    ClientSessionResult::RaisedEvent(e) => self.client_events.push(e),
                    ClientSessionResult::UnhandleableMessageReceived(_) => {}
                }
            }
        }

        fn client_call(&mut self, r: ClientSessionResult) {
            self.client_results(vec![r]);
        }
    }

    fn publish_request(pair: &mut Pair, app: &str, key: &str) -> Option<u32> {
        let r = pair.client.request_connection(app.into()).expect("connect");
        pair.client_call(r);
        if !pair
            .client_events
            .iter()
            .any(|e| matches!(e, ClientSessionEvent::ConnectionRequestAccepted))
        {
            return None;
        }
        let r = pair
            .client
            .request_publishing(key.into(), PublishRequestType::Live)
            .expect("publish");
        pair.client_call(r);
        pair.events.iter().find_map(|e| match e {
            IngestEvent::PublishRequested { request_id, .. } => Some(*request_id),
            _ => None,
        })
    }

    #[test]
    fn accepted_publish_delivers_video_with_timestamps() {
        let mut pair = Pair::new();
        let id = publish_request(&mut pair, "live", "key123").expect("publish requested");
        let outs = pair.server.accept_publish(id, pair.now).expect("accept");
        pair.server_outputs(outs);
        assert!(
            pair.client_events
                .iter()
                .any(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
        );
        let r = pair
            .client
            .publish_video_data(
                Bytes::from_static(&[0x17, 0, 0, 0, 0]),
                RtmpTimestamp::new(40),
                false,
            )
            .expect("video");
        pair.client_call(r);
        assert!(pair.events.iter().any(|e| matches!(
            e,
            IngestEvent::Video {
                timestamp_ms: 40,
                ..
            }
        )));
    }

    #[test]
    fn rejected_publish_is_not_accepted_by_the_client() {
        let mut pair = Pair::new();
        let id = publish_request(&mut pair, "live", "wrong").expect("publish requested");
        let outs = pair.server.reject_publish(id, "bad key").expect("reject");
        pair.server_outputs(outs);
        assert!(
            !pair
                .client_events
                .iter()
                .any(|e| matches!(e, ClientSessionEvent::PublishRequestAccepted))
        );
    }

    #[test]
    fn unknown_application_is_refused_at_connect() {
        let mut pair = Pair::new();
        assert!(publish_request(&mut pair, "other", "key").is_none());
        assert!(
            pair.client_events
                .iter()
                .any(|e| matches!(e, ClientSessionEvent::ConnectionRequestRejected { .. }))
        );
    }

    #[test]
    fn the_key_never_appears_in_debug_output() {
        let mut pair = Pair::new();
        publish_request(&mut pair, "live", "supersecretkey").expect("publish requested");
        let printed = format!("{:?}", pair.events);
        assert!(!printed.contains("supersecretkey"), "{printed}");
    }

    /// A `tracing` writer into a shared buffer, to read what a test logged.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn hostile_application_names_cost_one_escaped_log_line_per_connection() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .compact()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let forged = "2026-01-01T00:00:00Z  INFO forged: publish accepted";
        let app = format!("x\n{forged}\n{}", "A".repeat(60_000));
        tracing::subscriber::with_default(subscriber, || {
            let mut pair = Pair::new();
            assert!(publish_request(&mut pair, &app, "key").is_none());
            // The same connection asks again and again (a fresh client session each time: one
            // rml_rtmp client connects only once).
            for _ in 0..50 {
                let (mut again, _) =
                    ClientSession::new(ClientSessionConfig::new()).expect("client");
                let ClientSessionResult::OutboundResponse(packet) =
                    again.request_connection(app.clone()).expect("connect")
                else {
                    panic!("expected bytes for the server");
                };
                let _ = pair.server.handle_input(&packet.bytes, pair.now);
            }
        });
        let logs = String::from_utf8_lossy(&captured.0.lock().expect("logs")).into_owned();
        assert!(
            !logs.lines().any(|l| l.starts_with(forged)),
            "a peer wrote its own log line"
        );
        assert!(logs.lines().count() <= 1, "{} lines", logs.lines().count());
        assert!(logs.len() < 1024, "{} bytes logged", logs.len());
    }

    fn secs(n: u64) -> std::time::Duration {
        std::time::Duration::from_secs(n)
    }

    fn publishing(limits: SessionLimits) -> Pair {
        let mut pair = Pair::with_limits(limits);
        let id = publish_request(&mut pair, "live", "key").expect("publish requested");
        let outs = pair.server.accept_publish(id, pair.now).expect("accept");
        pair.server_outputs(outs);
        pair
    }

    #[test]
    fn a_peer_that_never_finishes_the_handshake_is_cut_at_the_handshake_deadline() {
        let t0 = Instant::now();
        let mut core = RtmpCore::new(SessionLimits::default(), t0);
        // Half a C0+C1: the handshake stays in progress.
        core.handle_input(&[3u8; 700], t0 + secs(5))
            .expect("partial");
        assert_eq!(core.expired(t0 + secs(9)), None);
        assert_eq!(core.expired(t0 + secs(10)), Some(Limit::HandshakeTimeout));
    }

    #[test]
    fn a_connection_without_publish_is_cut_at_the_publish_deadline_counted_from_accept() {
        let mut pair = Pair::new();
        let t0 = pair.now;
        assert_eq!(
            pair.server.deadline(),
            (t0 + secs(30), Limit::PublishTimeout)
        );
        // connect, then nothing: talking does not push the deadline back.
        pair.now = t0 + secs(20);
        let r = pair
            .client
            .request_connection("live".into())
            .expect("connect");
        pair.client_call(r);
        assert_eq!(pair.server.expired(t0 + secs(29)), None);
        assert_eq!(
            pair.server.expired(t0 + secs(30)),
            Some(Limit::PublishTimeout)
        );
    }

    #[test]
    fn only_audio_or_video_pushes_the_idle_deadline_back() {
        let mut pair = publishing(SessionLimits::default());
        let t0 = pair.now;
        assert_eq!(pair.server.deadline(), (t0 + secs(30), Limit::IdleTimeout));
        // Metadata and other non-media messages are not progress.
        pair.now = t0 + secs(20);
        let r = pair
            .client
            .publish_metadata(&StreamMetadata::new())
            .expect("metadata");
        pair.client_call(r);
        assert_eq!(pair.server.expired(t0 + secs(30)), Some(Limit::IdleTimeout));
        // Video is.
        let r = pair
            .client
            .publish_video_data(
                Bytes::from_static(&[0x17, 1, 0, 0, 0, 1]),
                RtmpTimestamp::new(40),
                false,
            )
            .expect("video");
        pair.client_call(r);
        assert_eq!(pair.server.expired(t0 + secs(49)), None);
        assert_eq!(pair.server.expired(t0 + secs(50)), Some(Limit::IdleTimeout));
    }

    #[test]
    fn a_message_over_the_size_limit_is_refused_with_its_reason() {
        let limits = SessionLimits {
            max_message_bytes: 1000,
            ..SessionLimits::default()
        };
        let mut pair = publishing(limits);
        let r = pair
            .client
            .publish_video_data(Bytes::from(vec![0x17; 4000]), RtmpTimestamp::new(40), false)
            .expect("video");
        let ClientSessionResult::OutboundResponse(packet) = r else {
            panic!("expected bytes for the server");
        };
        let err = pair
            .server
            .handle_input(&packet.bytes, pair.now)
            .expect_err("too large");
        assert!(matches!(err, Error::Limit(Limit::MessageTooLarge)), "{err}");
    }
}
