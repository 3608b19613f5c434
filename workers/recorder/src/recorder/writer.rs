//! Stage 1, the writer: takes [`RecordEvent`]s in order, spools each segment (manifest, segment
//! log, file) and hands the remote work (uploads, catalog writes, finalisation) to the
//! uploader. It never waits on the network.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Instant,
};

use tokio::sync::{mpsc, oneshot};
use tracing::{error, info, info_span, warn};

use super::{
    state::Shared,
    uploader::{Job, UploadJob},
};
use crate::{
    Recording, RecordingStatus, RoomIdentity, check_name,
    events::{RecordEvent, init_file_name},
    parse_room,
    playlist::StreamAttributes,
    rendition_key, session_prefix,
    spool::{Manifest, SegmentEntry},
    unix_ms,
};

/// Ended sessions the writer remembers to refuse late segments.
const ENDED_REMEMBERED: usize = 64;

/// What [`super::Recorder`] sends the writer.
pub(super) enum Cmd {
    /// Boxed: an event is large, the flush that shares the channel is a pointer.
    Event(Box<RecordEvent>, Instant),
    Flush(oneshot::Sender<()>),
}

fn manifest_of(room: &str, session_id: &str, renditions: Vec<String>, started_at: i64) -> Manifest {
    Manifest {
        room: room.to_owned(),
        session_id: session_id.to_owned(),
        renditions,
        started_at,
        ended_at: None,
        clean: None,
        dropped_segments: 0,
        attributes: Default::default(),
        inits: Default::default(),
    }
}

fn live_recording(shared: &Shared, room: &RoomIdentity, m: &Manifest) -> Recording {
    Recording {
        room: m.room.clone(),
        session_id: m.session_id.clone(),
        started_at: m.started_at,
        ended_at: None,
        duration_seconds: None,
        status: RecordingStatus::Live,
        renditions: m.renditions.clone(),
        prefix: session_prefix(&shared.cfg.prefix, room, &m.session_id),
        poster: None,
        bytes: 0,
        segments: 0,
        dropped_segments: 0,
    }
}

/// A segment the spool could not take (or whose init it could not take): its reservation goes
/// back and it is left out of the recording.
fn not_spooled(
    shared: &Shared,
    reserved: u64,
    room: &RoomIdentity,
    session_id: &str,
    rendition: &str,
    seq: u64,
) {
    shared.release(reserved);
    shared.drop_segment(room, session_id, rendition, seq, "spool_write_failed");
}

/// Spools events in order and hands the remote work to the uploader.
pub(super) async fn run(
    shared: Arc<Shared>,
    mut rx: mpsc::UnboundedReceiver<Cmd>,
    jobs: mpsc::UnboundedSender<Job>,
) {
    let mut sessions: HashMap<String, Manifest> = HashMap::new();
    // Recently ended sessions: a late segment must not reopen (and later overwrite) one.
    let mut ended: VecDeque<String> = VecDeque::new();
    while let Some(cmd) = rx.recv().await {
        let (event, closed_at) = match cmd {
            Cmd::Flush(tx) => {
                let _ = jobs.send(Job::Flush(tx));
                continue;
            }
            Cmd::Event(e, at) => (*e, at),
        };
        let span = info_span!("session", room = %event.room(), session = %event.session_id());
        let reserved = match &event {
            RecordEvent::SegmentClosed { bytes, .. } => bytes.len() as u64,
            _ => 0,
        };
        let valid =
            parse_room(event.room()).and_then(|room| check_name(event.session_id()).map(|_| room));
        let room_id = match valid {
            Ok(room) => room,
            Err(e) => {
                span.in_scope(|| error!(error = %e, "event ignored"));
                shared.release(reserved);
                continue;
            }
        };
        match event {
            RecordEvent::SessionStarted {
                session_id,
                room,
                renditions,
                started_at,
            } => {
                let renditions: Vec<String> = renditions
                    .into_iter()
                    .filter(|r| shared.cfg.records(r) && check_name(r).is_ok())
                    .collect();
                let m = manifest_of(&room, &session_id, renditions, unix_ms(started_at));
                if let Err(e) = shared.spool.write_manifest(&m).await {
                    span.in_scope(|| error!(error = %e, "writing the session manifest"));
                }
                span.in_scope(|| info!(renditions = ?m.renditions, "session recording"));
                // Every series of the room exists from its first session on: zeros on dashboards.
                shared.metrics.room(&room_id);
                let _ = jobs.send(Job::Catalog(live_recording(&shared, &room_id, &m)));
                sessions.insert(session_id, m);
            }
            RecordEvent::SegmentClosed {
                session_id,
                room,
                rendition,
                seq,
                duration,
                discontinuity,
                program_date_time,
                bytes,
                init,
                attributes,
            } => {
                if ended.contains(&session_id) {
                    span.in_scope(|| {
                        warn!(rendition, seq, "segment after the session ended; ignored")
                    });
                    shared.release(reserved);
                    continue;
                }
                if check_name(&rendition).is_err() {
                    shared.release(reserved);
                    shared.drop_segment(
                        &room_id,
                        &session_id,
                        &rendition,
                        seq,
                        "invalid_rendition",
                    );
                    continue;
                }
                let m = sessions.entry(session_id.clone()).or_insert_with(|| {
                    // The recorder started mid-session: the session starts here.
                    let m = manifest_of(&room, &session_id, Vec::new(), unix_ms(program_date_time));
                    let _ = jobs.send(Job::Catalog(live_recording(&shared, &room_id, &m)));
                    m
                });
                let new_rendition = !m.renditions.contains(&rendition);
                if new_rendition {
                    m.renditions.push(rendition.clone());
                }
                // Rewritten only when a stream's description changes: once per rendition, and
                // again when a reconnect brings another source.
                let described = attributes != StreamAttributes::default()
                    && m.attributes.get(&rendition) != Some(&attributes);
                if described {
                    m.attributes.insert(rendition.clone(), attributes);
                }
                // A CMAF init is spooled (and uploaded) once, before the first segment that
                // needs it; the manifest names it so recovery keeps and uploads it.
                let new_init = init.as_ref().filter(|i| {
                    !m.inits
                        .get(&rendition)
                        .is_some_and(|ids| ids.contains(&i.id))
                });
                let mut init_failed = false;
                if let Some(i) = new_init {
                    match shared
                        .spool
                        .write_init(&session_id, &rendition, i.id, &i.bytes)
                        .await
                    {
                        Ok(path) => {
                            m.inits.entry(rendition.clone()).or_default().insert(i.id);
                            let _ = jobs.send(Job::Upload(UploadJob {
                                room: room_id.clone(),
                                session_id: session_id.clone(),
                                key: rendition_key(
                                    &shared.cfg.prefix,
                                    &room_id,
                                    &session_id,
                                    &rendition,
                                    &init_file_name(i.id),
                                ),
                                path,
                                bytes: 0,
                                closed_at,
                                init: true,
                            }));
                        }
                        Err(e) => {
                            span.in_scope(
                                || error!(error = %e, init = i.id, "spooling an init segment"),
                            );
                            init_failed = true;
                        }
                    }
                }
                if (new_rendition || described || (new_init.is_some() && !init_failed))
                    && let Err(e) = shared.spool.write_manifest(m).await
                {
                    span.in_scope(|| error!(error = %e, "writing the session manifest"));
                }
                if init_failed {
                    // Without its init the segment plays nowhere: leave it out.
                    not_spooled(&shared, reserved, &room_id, &session_id, &rendition, seq);
                    continue;
                }
                let entry = SegmentEntry {
                    rendition: rendition.clone(),
                    seq,
                    duration: duration.as_secs_f64(),
                    discontinuity,
                    program_date_time: unix_ms(program_date_time),
                    bytes: reserved,
                    init: init.map(|i| i.id),
                };
                match shared
                    .spool
                    .write_segment(&session_id, &entry, &bytes)
                    .await
                {
                    Ok(path) => {
                        shared.metrics.room(&room_id).segments_spooled.inc();
                        let key = rendition_key(
                            &shared.cfg.prefix,
                            &room_id,
                            &session_id,
                            &rendition,
                            &entry.file_name(),
                        );
                        let _ = jobs.send(Job::Upload(UploadJob {
                            room: room_id,
                            session_id,
                            key,
                            path,
                            bytes: reserved,
                            closed_at,
                            init: false,
                        }));
                    }
                    Err(e) => {
                        span.in_scope(|| error!(error = %e, "spooling a segment"));
                        not_spooled(&shared, reserved, &room_id, &session_id, &rendition, seq);
                    }
                }
            }
            RecordEvent::SessionEnded {
                session_id,
                room,
                started_at,
                ended_at,
                clean,
                ..
            } => {
                if ended.contains(&session_id) {
                    span.in_scope(|| warn!("session ended twice; ignored"));
                    continue;
                }
                let mut m = sessions
                    .remove(&session_id)
                    .or_else(|| shared.spool.read_manifest(&session_id).ok())
                    .unwrap_or_else(|| {
                        manifest_of(&room, &session_id, Vec::new(), unix_ms(started_at))
                    });
                m.ended_at = Some(unix_ms(ended_at));
                m.clean = Some(clean);
                m.dropped_segments = shared
                    .dropped
                    .lock()
                    .ok()
                    .and_then(|mut d| d.remove(&session_id))
                    .unwrap_or(0);
                if let Err(e) = shared.spool.write_manifest(&m).await {
                    span.in_scope(|| error!(error = %e, "writing the session manifest"));
                }
                span.in_scope(|| info!(clean, "session ended; finalising after its uploads"));
                if ended.len() >= ENDED_REMEMBERED {
                    ended.pop_front();
                }
                ended.push_back(session_id.clone());
                let _ = jobs.send(Job::Finalize(session_id));
            }
        }
    }
}
