//! What the muxers hand on: a closed segment of one rendition ([`ClosedFragment`]) and what the
//! rendition looks like ([`RenditionInfo`]), delivered to a [`FragmentSink`] (the session). Both
//! producers, the passthrough muxer of the source and the GStreamer graph of the encoded rungs,
//! speak this; the session does not know which one cut a segment. Low-latency rooms get CMAF
//! init segments and parts as well ([`FragmentSink::cmaf`]).

use std::time::Duration;

use bytes::Bytes;

use crate::mux::parts::PartOutput;

/// What a rendition looks like, read from the negotiated caps.
#[derive(Clone, Debug, PartialEq)]
pub struct RenditionInfo {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
    /// RFC 6381 codecs string, e.g. `avc1.64001f,mp4a.40.2`.
    pub codecs: String,
}

/// A closed segment of one rendition.
#[derive(Clone, Debug)]
pub struct ClosedFragment {
    pub rendition: usize,
    /// MPEG-TS bytes starting with PAT/PMT and a keyframe, or CMAF fragments starting with one.
    pub bytes: Bytes,
    /// Start and end, relative to the ingest's first video frame.
    pub start: Duration,
    pub end: Duration,
}

/// Where fragments go (the session).
pub trait FragmentSink: Send + Sync + 'static {
    /// An MPEG-TS segment closed (standard latency).
    fn fragment_closed(&self, fragment: ClosedFragment, info: Option<RenditionInfo>);
    /// An init segment, part or segment of a CMAF rendition closed (low latency).
    fn cmaf(&self, rendition: usize, output: PartOutput, info: Option<RenditionInfo>);
}

/// Hand what a part segmenter closed to `sink`, for each of `renditions`.
pub fn deliver_parts(
    sink: &dyn FragmentSink,
    renditions: &[usize],
    outputs: Vec<PartOutput>,
    info: Option<&RenditionInfo>,
) {
    for output in outputs {
        for &rendition in renditions {
            sink.cmaf(rendition, output.clone(), info.cloned());
        }
    }
}
