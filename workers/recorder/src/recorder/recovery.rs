//! Stage 4, recovery, at start: sessions a previous process left in the spool (crash,
//! SIGKILL) are queued for upload again and finalised, as `interrupted` unless they had ended;
//! `live` catalog entries whose spool was lost with their node are finalised from what the
//! store holds ([`finalise_orphans`]).

use std::{
    collections::{HashMap, HashSet},
    time::{Duration, Instant},
};

use tokio::sync::mpsc;
use tracing::{Instrument, debug, error, info_span, warn};

use super::{
    finaliser,
    state::Shared,
    uploader::{Job, UploadJob},
};
use crate::{
    RecordingStatus, Result,
    catalog::MAX_PAGE,
    events::{SegmentFormat, init_file_name, parse_init_file_name, parse_segment_file_name},
    parse_room, rendition_key,
    spool::{MANIFEST, Manifest, SegmentEntry},
};

/// Queue what a previous run left in the spool.
pub(super) async fn recover(shared: &Shared, jobs: &mpsc::UnboundedSender<Job>) -> Result<()> {
    for session_id in shared.spool.sessions()? {
        let span = info_span!("recover", session = %session_id);
        let _enter = span.enter();
        let mut m = match shared.spool.read_manifest(&session_id) {
            Ok(m) => m,
            Err(e) => {
                error!(error = %e, "unreadable session manifest; session left in the spool");
                continue;
            }
        };
        let room = match parse_room(&m.room) {
            Ok(room) => room,
            Err(e) => {
                error!(error = %e, "invalid room in the session manifest; session left in the spool");
                continue;
            }
        };
        let log = shared.spool.read_log(&session_id)?;
        for p in shared.spool.remove_unlogged(&session_id, &m, &log) {
            debug!(path = %p.display(), "removed a segment that was never logged");
        }
        let sid = session_id.as_str();
        let key = &|rendition: &str, file: &str| {
            rendition_key(&shared.cfg.prefix, &room, sid, rendition, file)
        };
        // Inits first: a player that finds a segment in the store finds its init there too.
        let inits = m.inits.iter().flat_map(|(rendition, ids)| {
            ids.iter().map(move |id| {
                (
                    shared.spool.init_path(sid, rendition, *id),
                    key(rendition, &init_file_name(*id)),
                    true,
                )
            })
        });
        let mut seen = HashSet::new();
        let segments = log
            .iter()
            .filter(|e| seen.insert((e.rendition.clone(), e.seq)))
            .map(|e| {
                (
                    shared.spool.segment_path(sid, e),
                    key(&e.rendition, &e.file_name()),
                    false,
                )
            });
        let mut queued = 0;
        for (path, key, init) in inits.chain(segments).collect::<Vec<_>>() {
            // No file: it was stored before the crash.
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            // Init segments are outside the spool budget, as when they were first spooled.
            let bytes = if init { 0 } else { meta.len() };
            shared.hold_recovered(bytes);
            queued += 1;
            let _ = jobs.send(Job::Upload(UploadJob {
                room: room.clone(),
                session_id: session_id.clone(),
                key,
                path,
                bytes,
                closed_at: Instant::now(),
                init,
            }));
        }
        if m.clean.is_none() {
            // It was live when the previous process died.
            m.clean = Some(false);
            m.ended_at = log
                .iter()
                .map(|e| e.program_date_time + (e.duration * 1000.0) as i64)
                .max();
            shared.spool.write_manifest(&m).await?;
        }
        shared.metrics.room(&room).sessions_recovered.inc();
        warn!(room = %m.room, queued, logged = log.len(), "recovering a session from the spool");
        let _ = jobs.send(Job::Finalize(session_id));
    }
    Ok(())
}

/// [`super::Recorder::finalise_orphans`]: each segment found in the store is taken to last
/// `nominal`, timed from the first sequence number of its rendition.
pub(super) async fn finalise_orphans(
    shared: &Shared,
    room: &str,
    nominal: Duration,
) -> Result<u64> {
    let mut finalised = 0;
    for rec in shared.catalog.list(room, MAX_PAGE, None).await? {
        // Asked per entry, after the catalog answered: this may run while sessions record
        // (retried until the store is reachable), and a session's manifest is spooled before
        // its `live` entry is written, so a session recording now is always found here.
        let spooled = shared
            .spool
            .session_dir(&rec.session_id)
            .join(MANIFEST)
            .is_file();
        if rec.status != RecordingStatus::Live || spooled {
            continue;
        }
        let mut log = Vec::new();
        // The lowest init id stored per rendition: which segment followed which init went
        // with the spool, and a session without a reconnect has only the one.
        let mut inits: HashMap<String, u32> = HashMap::new();
        for key in shared.store.list(&rec.prefix).await? {
            let rest = key.strip_prefix(&rec.prefix).unwrap_or_default();
            let Some((rendition, file)) = rest.split_once('/') else {
                continue;
            };
            if let Some(id) = parse_init_file_name(file) {
                let lowest = inits.entry(rendition.to_owned()).or_insert(id);
                *lowest = (*lowest).min(id);
                continue;
            }
            let Some((seq, format)) = parse_segment_file_name(file) else {
                continue;
            };
            log.push(SegmentEntry {
                rendition: rendition.to_owned(),
                seq,
                duration: nominal.as_secs_f64(),
                discontinuity: false,
                program_date_time: 0,
                bytes: 0,
                // Placeholder, set from `inits` once the listing is read.
                init: (format == SegmentFormat::Cmaf).then_some(0),
            });
        }
        // A CMAF segment without any init in the store plays nowhere: left out.
        log.retain_mut(|e| match e.init {
            Some(_) => inits
                .get(&e.rendition)
                .map(|id| e.init = Some(*id))
                .is_some(),
            None => true,
        });
        // Time from the first sequence number of each rendition.
        let mut first: HashMap<String, u64> = HashMap::new();
        for e in &log {
            let f = first.entry(e.rendition.clone()).or_insert(e.seq);
            *f = (*f).min(e.seq);
        }
        let nominal_ms = i64::try_from(nominal.as_millis()).unwrap_or(i64::MAX);
        for e in &mut log {
            let index = e.seq - first.get(&e.rendition).copied().unwrap_or(e.seq);
            e.program_date_time = rec.started_at + index as i64 * nominal_ms;
        }
        let m = Manifest {
            room: rec.room.clone(),
            session_id: rec.session_id.clone(),
            renditions: rec.renditions.clone(),
            started_at: rec.started_at,
            ended_at: None,
            clean: Some(false),
            dropped_segments: 0,
            attributes: Default::default(),
            inits: Default::default(),
        };
        let span = info_span!("orphan", room = %rec.room, session = %rec.session_id);
        warn!(parent: &span, segments = log.len(), "live session without a spool; finalising as interrupted");
        let room = finaliser::write_session(shared, &m, &log)
            .instrument(span)
            .await?;
        shared.metrics.room(&room).sessions_recovered.inc();
        finalised += 1;
    }
    Ok(finalised)
}
