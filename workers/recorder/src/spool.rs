//! The on-disk spool: what has been recorded but not yet stored, plus what finalisation needs.
//!
//! ```text
//! <spool>/<session-id>/manifest.json          room, renditions, start; end + status once ended
//! <spool>/<session-id>/segments.log           one JSON line per accepted segment (append-only)
//! <spool>/<session-id>/<rendition>/<seq>.ts   segments not yet uploaded (deleted once stored);
//!                                             <seq>.m4s for CMAF, next to their init-<id>.mp4
//! ```
//!
//! A segment is written to a temporary file, renamed into place, then logged. So after a crash:
//! a logged entry whose file exists still has to be uploaded; a logged entry without a file was
//! stored; a file without a log entry was never accepted and is removed. The log is the list of
//! segments of the session's VOD playlist. A CMAF init segment is written, then named in the
//! manifest (`inits`), before the first segment that needs it is logged: an init file the manifest
//! does not name was never needed and is removed like an unlogged segment.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;

use crate::{
    Error, Result, check_name,
    events::{SegmentFormat, init_file_name},
    playlist::StreamAttributes,
};

pub const MANIFEST: &str = "manifest.json";
pub const LOG: &str = "segments.log";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    pub room: String,
    pub session_id: String,
    pub renditions: Vec<String>,
    /// Unix ms.
    pub started_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<i64>,
    /// Set when the session ended: whether it ended cleanly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clean: Option<bool>,
    /// Segments left out of the recording (spool full, write errors).
    #[serde(default)]
    pub dropped_segments: u64,
    /// What each rendition's stream looks like, for the VOD master; the latest the media
    /// worker described (a reconnect may change the source).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, StreamAttributes>,
    /// CMAF init segments spooled per rendition, by id (none for an MPEG-TS session): each is
    /// uploaded once, whatever the number of segments that need it.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inits: BTreeMap<String, BTreeSet<u32>>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SegmentEntry {
    pub rendition: String,
    pub seq: u64,
    /// Seconds.
    pub duration: f64,
    #[serde(default)]
    pub discontinuity: bool,
    /// Unix ms of the segment's first frame.
    pub program_date_time: i64,
    pub bytes: u64,
    /// The init segment a CMAF segment plays after; absent for MPEG-TS (and in logs written
    /// before CMAF was recorded, which were all MPEG-TS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<u32>,
}

impl SegmentEntry {
    pub fn format(&self) -> SegmentFormat {
        if self.init.is_some() {
            SegmentFormat::Cmaf
        } else {
            SegmentFormat::MpegTs
        }
    }

    /// Its file name in the rendition's directory, in the spool and in the store.
    pub fn file_name(&self) -> String {
        format!("{}.{}", self.seq, self.format().extension())
    }
}

#[derive(Clone, Debug)]
pub struct Spool {
    dir: PathBuf,
}

async fn write_atomic(path: &Path, body: &[u8]) -> Result<()> {
    let tmp = path.with_extension("tmp");
    tokio::fs::write(&tmp, body)
        .await
        .map_err(|e| Error::spool(&tmp, e))?;
    tokio::fs::rename(&tmp, path)
        .await
        .map_err(|e| Error::spool(path, e))
}

impl Spool {
    pub fn open(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|e| Error::spool(&dir, e))?;
        Ok(Self { dir })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Room for the spool on its filesystem: the space free to us (`statvfs` `f_bavail`) plus
    /// what the spool's files already take. `None` when the filesystem cannot say.
    pub fn room(&self) -> Option<u64> {
        let st = rustix::fs::statvfs(&self.dir).ok()?;
        let free = st.f_bavail.saturating_mul(st.f_frsize);
        Some(free.saturating_add(du(&self.dir)))
    }

    pub fn session_dir(&self, session_id: &str) -> PathBuf {
        self.dir.join(session_id)
    }

    pub fn segment_path(&self, session_id: &str, entry: &SegmentEntry) -> PathBuf {
        self.dir
            .join(session_id)
            .join(&entry.rendition)
            .join(entry.file_name())
    }

    pub fn init_path(&self, session_id: &str, rendition: &str, id: u32) -> PathBuf {
        self.dir
            .join(session_id)
            .join(rendition)
            .join(init_file_name(id))
    }

    /// Put a CMAF init segment in place (the manifest names it next). Returns the file's path.
    pub async fn write_init(
        &self,
        session_id: &str,
        rendition: &str,
        id: u32,
        body: &[u8],
    ) -> Result<PathBuf> {
        check_name(session_id)?;
        check_name(rendition)?;
        let path = self.init_path(session_id, rendition, id);
        create_parent(&path).await?;
        write_atomic(&path, body).await?;
        Ok(path)
    }

    pub async fn write_manifest(&self, m: &Manifest) -> Result<()> {
        check_name(&m.session_id)?;
        let dir = self.session_dir(&m.session_id);
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(|e| Error::spool(&dir, e))?;
        write_atomic(&dir.join(MANIFEST), &serde_json::to_vec_pretty(m)?).await
    }

    pub fn read_manifest(&self, session_id: &str) -> Result<Manifest> {
        let path = self.session_dir(session_id).join(MANIFEST);
        let text = std::fs::read(&path).map_err(|e| Error::spool(&path, e))?;
        Ok(serde_json::from_slice(&text)?)
    }

    /// Put the segment in place, then log it. Returns the file's path.
    pub async fn write_segment(
        &self,
        session_id: &str,
        entry: &SegmentEntry,
        body: &[u8],
    ) -> Result<PathBuf> {
        check_name(session_id)?;
        check_name(&entry.rendition)?;
        let path = self.segment_path(session_id, entry);
        create_parent(&path).await?;
        write_atomic(&path, body).await?;
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        let log = self.session_dir(session_id).join(LOG);
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .await
            .map_err(|e| Error::spool(&log, e))?;
        f.write_all(&line)
            .await
            .map_err(|e| Error::spool(&log, e))?;
        f.flush().await.map_err(|e| Error::spool(&log, e))?;
        Ok(path)
    }

    /// The logged segments, in log order; a torn last line (crash mid-append) is skipped.
    pub fn read_log(&self, session_id: &str) -> Result<Vec<SegmentEntry>> {
        let path = self.session_dir(session_id).join(LOG);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::spool(&path, e)),
        };
        Ok(text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect())
    }

    /// Session ids with a manifest, sorted.
    pub fn sessions(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let entries = std::fs::read_dir(&self.dir).map_err(|e| Error::spool(&self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_name(&name).is_ok() && entry.path().join(MANIFEST).is_file() {
                out.push(name);
            }
        }
        out.sort();
        Ok(out)
    }

    /// Files in the session's rendition directories that neither the log nor the manifest's
    /// `inits` name (accepted never, e.g. a crash between write and log): removed; returns
    /// their paths.
    pub fn remove_unlogged(
        &self,
        session_id: &str,
        m: &Manifest,
        log: &[SegmentEntry],
    ) -> Vec<PathBuf> {
        let inits = m.inits.iter().flat_map(|(rendition, ids)| {
            ids.iter()
                .map(|id| self.init_path(session_id, rendition, *id))
        });
        let logged: std::collections::HashSet<PathBuf> = log
            .iter()
            .map(|e| self.segment_path(session_id, e))
            .chain(inits)
            .collect();
        let mut removed = Vec::new();
        let Ok(dirs) = std::fs::read_dir(self.session_dir(session_id)) else {
            return removed;
        };
        for d in dirs.flatten().filter(|d| d.path().is_dir()) {
            for f in std::fs::read_dir(d.path()).into_iter().flatten().flatten() {
                let p = f.path();
                if !logged.contains(&p) && std::fs::remove_file(&p).is_ok() {
                    removed.push(p);
                }
            }
        }
        removed
    }

    pub async fn remove_session(&self, session_id: &str) -> Result<()> {
        check_name(session_id)?;
        let dir = self.session_dir(session_id);
        match tokio::fs::remove_dir_all(&dir).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::spool(&dir, e)),
            _ => Ok(()),
        }
    }
}

async fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(dir) => tokio::fs::create_dir_all(dir)
            .await
            .map_err(|e| Error::spool(dir, e)),
        None => Ok(()),
    }
}

/// Bytes of the files under `dir`.
fn du(dir: &Path) -> u64 {
    let mut total = 0u64;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            match entry.metadata() {
                Ok(m) if m.is_dir() => stack.push(entry.path()),
                Ok(m) => total = total.saturating_add(m.len()),
                Err(_) => {}
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> SegmentEntry {
        SegmentEntry {
            rendition: "720p".into(),
            seq,
            duration: 2.0,
            discontinuity: false,
            program_date_time: 1_800_000_000_000 + seq as i64 * 2000,
            bytes: 3,
            init: None,
        }
    }

    /// The manifest of live session `s1` of `shows/lobby`, one rendition.
    fn live_manifest() -> Manifest {
        Manifest {
            room: "shows/lobby".into(),
            session_id: "s1".into(),
            renditions: vec!["720p".into()],
            started_at: 1_800_000_000_000,
            ended_at: None,
            clean: None,
            dropped_segments: 0,
            attributes: BTreeMap::new(),
            inits: BTreeMap::new(),
        }
    }

    #[test]
    fn the_spools_room_counts_its_own_files_and_the_free_space() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path().join("spool")).expect("spool");
        let empty = spool.room().expect("statvfs answers on a tempdir");
        assert!(empty > 0);
        std::fs::create_dir_all(spool.dir().join("s1/720p")).expect("dir");
        std::fs::write(spool.dir().join("s1/720p/0.ts"), vec![0u8; 1 << 20]).expect("write");
        assert_eq!(du(spool.dir()), 1 << 20);
        // The file moved bytes from free to the spool: the room stays about the same.
        let after = spool.room().expect("room");
        assert!(after.abs_diff(empty) < 64 << 20, "{empty} vs {after}");
    }

    #[tokio::test]
    async fn a_torn_log_line_and_unlogged_files_are_ignored_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("spool");
        let m = live_manifest();
        spool.write_manifest(&m).await.expect("manifest");
        spool
            .write_segment("s1", &entry(0), b"abc")
            .await
            .expect("write");
        spool
            .write_segment("s1", &entry(1), b"def")
            .await
            .expect("write");
        // A crash: half a log line, and a segment file that was never logged.
        let log = spool.session_dir("s1").join(LOG);
        let mut text = std::fs::read_to_string(&log).expect("log");
        text.push_str("{\"rendition\":\"720p\",\"se");
        std::fs::write(&log, text).expect("tear");
        std::fs::write(spool.segment_path("s1", &entry(2)), b"ghi").expect("orphan");

        assert_eq!(spool.sessions().expect("sessions"), vec!["s1".to_owned()]);
        assert_eq!(spool.read_manifest("s1").expect("manifest"), m);
        let entries = spool.read_log("s1").expect("log");
        assert_eq!(entries, vec![entry(0), entry(1)]);
        let removed = spool.remove_unlogged("s1", &m, &entries);
        assert_eq!(removed, vec![spool.segment_path("s1", &entry(2))]);
        assert!(spool.segment_path("s1", &entry(1)).exists());
        spool.remove_session("s1").await.expect("remove");
        assert!(spool.sessions().expect("sessions").is_empty());
    }

    #[tokio::test]
    async fn a_cmaf_session_keeps_the_inits_its_manifest_names_after_a_crash() {
        let dir = tempfile::tempdir().expect("tempdir");
        let spool = Spool::open(dir.path()).expect("spool");
        let cmaf = |seq| SegmentEntry {
            init: Some(1),
            ..entry(seq)
        };
        let mut m = live_manifest();
        let init = spool
            .write_init("s1", "720p", 1, b"ftypmoov")
            .await
            .expect("init");
        assert!(init.ends_with("s1/720p/init-1.mp4"), "{}", init.display());
        m.inits.insert("720p".into(), BTreeSet::from([1]));
        spool.write_manifest(&m).await.expect("manifest");
        let segment = spool
            .write_segment("s1", &cmaf(0), b"moofmdat")
            .await
            .expect("segment");
        assert!(segment.ends_with("s1/720p/0.m4s"), "{}", segment.display());
        // A crash right after an init was written, before the manifest named it.
        let unnamed = spool
            .write_init("s1", "720p", 2, b"ftypmoov")
            .await
            .expect("init");

        let back = spool.read_manifest("s1").expect("manifest");
        assert_eq!(back, m);
        let log = spool.read_log("s1").expect("log");
        assert_eq!(log, vec![cmaf(0)]);
        assert_eq!(spool.remove_unlogged("s1", &back, &log), vec![unnamed]);
        assert!(init.exists() && segment.exists());
        // An entry from before CMAF was recorded (no `init`) reads as MPEG-TS.
        let old: SegmentEntry = serde_json::from_str(
            r#"{"rendition":"720p","seq":7,"duration":2.0,"programDateTime":0,"bytes":1}"#,
        )
        .expect("old entry");
        assert_eq!(old.file_name(), "7.ts");
    }
}
