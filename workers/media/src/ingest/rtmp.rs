//! Sans-I/O RTMP ingest core: bytes from the publisher in, bytes to send back and
//! [`IngestEvent`]s out. Built on rml_rtmp's `Handshake` and `ServerSession`; the socket loop
//! in [`crate::ingest::connection`] only moves bytes, so this is tested without sockets or sleeps.

use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult, StreamMetadata,
};

use crate::config::RTMP_APP;
use crate::error::{Error, Result};
use crate::ingest::key::PresentedKey;

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
}

impl Default for RtmpCore {
    fn default() -> Self {
        Self::new()
    }
}

impl RtmpCore {
    pub fn new() -> Self {
        RtmpCore {
            state: State::Handshaking(Box::new(Handshake::new(PeerType::Server))),
        }
    }

    /// Feed bytes read from the socket.
    pub fn handle_input(&mut self, bytes: &[u8]) -> Result<Vec<Output>> {
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
                    let (session, results) =
                        ServerSession::new(config).map_err(|e| Error::Rtmp(e.to_string()))?;
                    self.state = State::Session(Box::new(session));
                    self.absorb(results, &mut out)?;
                    if !remaining_bytes.is_empty() {
                        out.extend(self.handle_input(&remaining_bytes)?);
                    }
                }
            },
            State::Session(session) => {
                let results = session
                    .handle_input(bytes)
                    .map_err(|e| Error::Rtmp(e.to_string()))?;
                self.absorb(results, &mut out)?;
            }
            State::Closed => {}
        }
        Ok(out)
    }

    /// Accept a publish request raised as [`IngestEvent::PublishRequested`].
    pub fn accept_publish(&mut self, request_id: u32) -> Result<Vec<Output>> {
        let State::Session(session) = &mut self.state else {
            return Err(Error::Rtmp("no session".into()));
        };
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
                let results = if app_name.trim_end_matches('/') == RTMP_APP {
                    session.accept_request(request_id)
                } else {
                    tracing::warn!(app = %app_name, "RTMP connect to an unknown application refused; use /{RTMP_APP}");
                    session.reject_request(
                        request_id,
                        "NetConnection.Connect.Rejected",
                        "unknown application",
                    )
                }
                .map_err(|e| Error::Rtmp(e.to_string()))?;
                self.absorb(results, out)?;
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
        server: RtmpCore,
        client: ClientSession,
        events: Vec<IngestEvent>,
        client_events: Vec<ClientSessionEvent>,
    }

    impl Pair {
        fn new() -> Self {
            let mut client_hs = Handshake::new(PeerType::Client);
            let mut server = RtmpCore::new();
            let c0c1 = client_hs.generate_outbound_p0_and_p1().expect("p0p1");
            let mut to_client = Vec::new();
            for o in server.handle_input(&c0c1).expect("server hs") {
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
            let outs = self.server.handle_input(&bytes).expect("server input");
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
        let outs = pair.server.accept_publish(id).expect("accept");
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
}
