//! The recorder seam: session and segment events of [`crate::MediaServer`], handed to
//! `roomcast-recorder` one for one. Recording never slows ingest: `Recorder::record` only
//! queues, and a forwarder that falls behind the broadcast channel loses events from the
//! recording (counted by the recorder as missing segments), never from the live stream.

use std::{collections::BTreeSet, sync::Arc};

use roomcast_recorder::{RecordEvent, Recorder};
use tokio::{sync::broadcast::error::RecvError, task::JoinHandle};

use crate::{MediaEvent, MediaServer};

/// The recorder's view of a media event.
pub fn record_event(event: &MediaEvent) -> RecordEvent {
    match event.clone() {
        MediaEvent::SessionStarted {
            session_id,
            room,
            renditions,
            started_at,
        } => RecordEvent::SessionStarted {
            session_id,
            room,
            renditions,
            started_at: started_at.into(),
        },
        MediaEvent::SegmentClosed {
            session_id,
            room,
            rendition,
            seq,
            duration,
            discontinuity,
            program_date_time,
            bytes,
        } => RecordEvent::SegmentClosed {
            session_id,
            room,
            rendition,
            seq,
            duration,
            discontinuity,
            program_date_time: program_date_time.into(),
            bytes,
        },
        MediaEvent::SessionEnded {
            session_id,
            room,
            started_at,
            ended_at,
            segments,
            clean,
        } => RecordEvent::SessionEnded {
            session_id,
            room,
            started_at: started_at.into(),
            ended_at: ended_at.into(),
            segments,
            clean,
        },
    }
}

/// Forward the events of `rooms` (`namespace/name`) to `recorder` until the server's event
/// channel closes.
pub fn forward(
    server: &MediaServer,
    recorder: Arc<Recorder>,
    rooms: BTreeSet<String>,
) -> JoinHandle<()> {
    let mut events = server.subscribe();
    tokio::spawn(async move {
        loop {
            match events.recv().await {
                Ok(event) => {
                    let record = record_event(&event);
                    if rooms.contains(record.room()) {
                        recorder.record(record);
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::warn!(
                        missed,
                        "recording fell behind the media events; segments are missing from the recording"
                    );
                }
                Err(RecvError::Closed) => break,
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;
    use chrono::{TimeZone, Utc};

    use super::*;

    #[test]
    fn segment_events_map_field_for_field() {
        let at = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
        let event = MediaEvent::SegmentClosed {
            session_id: "s1".into(),
            room: "shows/lobby".into(),
            rendition: "720p".into(),
            seq: 7,
            duration: Duration::from_millis(2000),
            discontinuity: true,
            program_date_time: at,
            bytes: Bytes::from_static(b"ts"),
        };
        match record_event(&event) {
            RecordEvent::SegmentClosed {
                session_id,
                room,
                rendition,
                seq,
                duration,
                discontinuity,
                program_date_time,
                bytes,
            } => {
                assert_eq!(
                    (session_id.as_str(), room.as_str(), rendition.as_str()),
                    ("s1", "shows/lobby", "720p")
                );
                assert_eq!(
                    (seq, duration, discontinuity),
                    (7, Duration::from_millis(2000), true)
                );
                assert_eq!(program_date_time, std::time::SystemTime::from(at));
                assert_eq!(bytes, Bytes::from_static(b"ts"));
            }
            other => panic!("mapped to {other:?}"),
        }
    }

    #[test]
    fn an_unclean_end_stays_unclean() {
        let at = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
        let event = MediaEvent::SessionEnded {
            session_id: "s1".into(),
            room: "shows/lobby".into(),
            started_at: at,
            ended_at: at,
            segments: 3,
            clean: false,
        };
        assert!(matches!(
            record_event(&event),
            RecordEvent::SessionEnded {
                clean: false,
                segments: 3,
                ..
            }
        ));
    }
}
