//! Stage 3, the finaliser: once every segment of a session is stored, its VOD playlists
//! (`<rendition>/index.m3u8` and the master `index.m3u8`), the optional poster, `session.json`,
//! then the completed catalog entry; last, the session leaves the spool.

use bytes::Bytes;
use serde::Serialize;
use tracing::{info, warn};

use super::state::Shared;
use crate::{
    Error, Recording, RecordingStatus, Result, RoomIdentity,
    events::init_file_name,
    parse_room,
    playlist::{self, Variant},
    session_prefix,
    spool::{Manifest, SegmentEntry},
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RenditionSummary {
    name: String,
    playlist: String,
    segments: u64,
    bytes: u64,
    duration_seconds: f64,
    bandwidth: u64,
}

/// `session.json`, next to the master playlist.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SessionJson {
    room: String,
    session_id: String,
    status: RecordingStatus,
    started_at: String,
    ended_at: String,
    duration_seconds: f64,
    playlist: String,
    renditions: Vec<RenditionSummary>,
    bytes: u64,
    segments: u64,
    dropped_segments: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    poster: Option<String>,
}

/// `poster.jpg` from the first segment of the first rendition (with its init segment, for
/// CMAF), when a poster maker is set.
/// Failures only cost the poster.
async fn make_poster(
    shared: &Shared,
    room: &RoomIdentity,
    prefix: &str,
    log: &[SegmentEntry],
    rendition: Option<&str>,
) -> Option<String> {
    let maker = shared.cfg.poster.as_ref()?;
    let rendition = rendition?;
    let first = playlist::ordered(log, rendition).into_iter().next()?;
    let made = async {
        let get = |file: String| async move {
            let key = format!("{prefix}{rendition}/{file}");
            shared
                .store
                .get(&key)
                .await?
                .ok_or_else(|| Error::Poster(format!("{key} not in the store")))
        };
        let media = get(first.file_name()).await?;
        // A CMAF segment decodes only after its init segment: the demuxer gets both at once.
        let segment = match first.init {
            Some(id) => {
                let init = get(init_file_name(id)).await?;
                let mut both = Vec::with_capacity(init.len() + media.len());
                both.extend_from_slice(&init);
                both.extend_from_slice(&media);
                Bytes::from(both)
            }
            None => media,
        };
        let jpeg = maker.poster(segment, first.format()).await?;
        shared
            .put_retrying(
                room,
                &format!("{prefix}{}", crate::poster::POSTER_KEY),
                jpeg,
            )
            .await
    };
    match made.await {
        Ok(()) => Some(crate::poster::POSTER_KEY.to_owned()),
        Err(e) => {
            warn!(error = %e, "no poster for this session");
            None
        }
    }
}

/// Playlists, session.json, catalog, then the spool directory goes. Runs after every segment of
/// the session was stored.
pub(super) async fn finalize(shared: &Shared, session_id: &str) -> Result<()> {
    let m = shared.spool.read_manifest(session_id)?;
    let log = shared.spool.read_log(session_id)?;
    let room = write_session(shared, &m, &log).await?;
    shared.spool.remove_session(session_id).await?;
    shared.metrics.room(&room).sessions_finalized.inc();
    Ok(())
}

/// Playlists, poster, session.json and the catalog entry of a session whose segments are all
/// stored. Returns the session's room, parsed from its manifest.
pub(super) async fn write_session(
    shared: &Shared,
    m: &Manifest,
    log: &[SegmentEntry],
) -> Result<RoomIdentity> {
    let session_id = m.session_id.as_str();
    let log = log.to_vec();
    let status = if m.clean == Some(true) {
        RecordingStatus::Complete
    } else {
        RecordingStatus::Interrupted
    };
    let room = parse_room(&m.room)?;
    let prefix = session_prefix(&shared.cfg.prefix, &room, session_id);
    let mut names = m.renditions.clone();
    for e in &log {
        if !names.contains(&e.rendition) {
            names.push(e.rendition.clone());
        }
    }
    let mut renditions = Vec::new();
    let mut variants = Vec::new();
    for name in names {
        let segs = playlist::ordered(&log, &name);
        if segs.is_empty() {
            continue;
        }
        let playlist_key = format!("{prefix}{name}/index.m3u8");
        shared
            .put_retrying(
                &room,
                &playlist_key,
                Bytes::from(playlist::media_playlist(&segs)),
            )
            .await?;
        let bandwidth = playlist::peak_bandwidth(&segs);
        variants.push(Variant {
            average_bandwidth: Some(playlist::average_bandwidth(&segs)),
            ..Variant::of_rendition(
                &name,
                bandwidth,
                m.attributes.get(&name).cloned().unwrap_or_default(),
            )
        });
        renditions.push(RenditionSummary {
            playlist: format!("{name}/index.m3u8"),
            segments: segs.len() as u64,
            bytes: segs.iter().map(|s| s.bytes).sum(),
            duration_seconds: segs.iter().map(|s| s.duration).sum(),
            bandwidth,
            name,
        });
    }
    let first = renditions.first().map(|r| r.name.as_str());
    let poster = make_poster(shared, &room, &prefix, &log, first).await;
    if !variants.is_empty() {
        shared
            .put_retrying(
                &room,
                &format!("{prefix}index.m3u8"),
                Bytes::from(playlist::render_master(&variants)),
            )
            .await?;
    }
    let last_frame_end = log
        .iter()
        .map(|e| e.program_date_time + (e.duration * 1000.0) as i64)
        .max();
    let ended_at = m
        .ended_at
        .or(last_frame_end)
        .unwrap_or(m.started_at)
        .max(m.started_at);
    let duration_seconds = (ended_at - m.started_at) as f64 / 1000.0;
    let bytes = renditions.iter().map(|r| r.bytes).sum();
    let segments = renditions.iter().map(|r| r.segments).sum();
    let summary = SessionJson {
        room: m.room.clone(),
        session_id: session_id.to_owned(),
        status,
        started_at: crate::rfc3339(m.started_at),
        ended_at: crate::rfc3339(ended_at),
        duration_seconds,
        playlist: "index.m3u8".into(),
        bytes,
        segments,
        dropped_segments: m.dropped_segments,
        renditions,
        poster: poster.clone(),
    };
    let names: Vec<String> = summary.renditions.iter().map(|r| r.name.clone()).collect();
    shared
        .put_retrying(
            &room,
            &format!("{prefix}session.json"),
            Bytes::from(serde_json::to_vec_pretty(&summary)?),
        )
        .await?;
    shared
        .catalog_retrying(&Recording {
            room: m.room.clone(),
            session_id: session_id.to_owned(),
            started_at: m.started_at,
            ended_at: Some(ended_at),
            duration_seconds: Some(duration_seconds),
            status,
            renditions: names,
            prefix,
            poster,
            bytes,
            segments,
            dropped_segments: m.dropped_segments,
        })
        .await;
    info!(
        status = status.as_str(),
        segments, bytes, duration_seconds, "session finalised"
    );
    Ok(room)
}
