//! Poster images: one JPEG from the first segment of a session (segments start on a keyframe).
//! Behind a trait so the media worker can use the GStreamer it already links; [`FfmpegPoster`]
//! runs `ffmpeg` when it is installed.

use std::{path::PathBuf, process::Stdio, sync::Arc, time::Duration};

use async_trait::async_trait;
use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::{Error, Result, events::SegmentFormat};

/// Key of the poster, relative to the session's prefix.
pub const POSTER_KEY: &str = "poster.jpg";
const TIMEOUT: Duration = Duration::from_secs(20);

#[async_trait]
pub trait PosterMaker: Send + Sync + 'static {
    /// One JPEG frame from a segment: MPEG-TS, or for CMAF its init segment followed by the
    /// segment.
    async fn poster(&self, segment: Bytes, format: SegmentFormat) -> Result<Bytes>;
}

pub type DynPosterMaker = Arc<dyn PosterMaker>;

/// `ffmpeg -f mpegts|mp4 -i pipe:0 -frames:v 1 -f image2 -c:v mjpeg pipe:1`.
#[derive(Clone, Debug)]
pub struct FfmpegPoster {
    pub program: PathBuf,
}

impl Default for FfmpegPoster {
    fn default() -> Self {
        Self {
            program: "ffmpeg".into(),
        }
    }
}

impl FfmpegPoster {
    /// `Some` when the program runs.
    pub fn detect() -> Option<Self> {
        let me = Self::default();
        std::process::Command::new(&me.program)
            .arg("-version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .ok()
            .filter(|s| s.success())
            .map(|_| me)
    }
}

fn poster_err(message: impl Into<String>) -> Error {
    Error::Poster(message.into())
}

#[async_trait]
impl PosterMaker for FfmpegPoster {
    async fn poster(&self, segment: Bytes, format: SegmentFormat) -> Result<Bytes> {
        let demuxer = match format {
            SegmentFormat::MpegTs => "mpegts",
            SegmentFormat::Cmaf => "mp4",
        };
        let mut child = tokio::process::Command::new(&self.program)
            .args([
                "-v",
                "error",
                "-f",
                demuxer,
                "-i",
                "pipe:0",
                "-frames:v",
                "1",
            ])
            .args(["-q:v", "4", "-f", "image2", "-c:v", "mjpeg", "pipe:1"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| poster_err(format!("starting {}: {e}", self.program.display())))?;
        let mut stdin = child.stdin.take().ok_or_else(|| poster_err("no stdin"))?;
        let mut stdout = child.stdout.take().ok_or_else(|| poster_err("no stdout"))?;
        // Feed and read at once: ffmpeg may stop reading after the first frame.
        let feed = tokio::spawn(async move {
            let _ = stdin.write_all(&segment).await;
        });
        let mut jpeg = Vec::new();
        tokio::time::timeout(TIMEOUT, stdout.read_to_end(&mut jpeg))
            .await
            .map_err(|_| poster_err("ffmpeg timed out"))?
            .map_err(|e| poster_err(format!("reading ffmpeg's output: {e}")))?;
        feed.abort();
        let status = tokio::time::timeout(TIMEOUT, child.wait())
            .await
            .map_err(|_| poster_err("ffmpeg did not exit"))?
            .map_err(|e| poster_err(e.to_string()))?;
        if !status.success() || !jpeg.starts_with(&[0xFF, 0xD8]) {
            return Err(poster_err(format!("ffmpeg made no JPEG ({status})")));
        }
        Ok(Bytes::from(jpeg))
    }
}
