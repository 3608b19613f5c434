//! The CMAF output of an encoded rung in a low-latency room: the rung's encoded H.264 (AVC
//! format, from `h264parse`) and AAC (raw, from `avenc_aac`) end in fakesinks whose probes feed
//! a [`PartSegmenter`], the one the passthrough source uses. Segments open on the keyframe
//! behind each force-key-unit event (the boundaries the source's keyframes decide, see
//! [`super::pipeline`]), so rungs and source cut segments at the same instants and parts at the
//! same frame times.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer_video as gst_video;

use super::cutter::{rendition_info, running_time};
use crate::mux::codec::{AacConfig, AvcConfig};
use crate::mux::fragment::{FragmentSink, deliver_parts};
use crate::mux::parts::{PartSegmenter, ns_to_ticks};

struct State {
    parts: PartSegmenter,
    /// A force-key-unit event passed: the next keyframe opens a segment.
    boundary_pending: bool,
    video_done: bool,
    audio_done: bool,
}

/// The CMAF muxing of one rung; cloned into its two probes.
#[derive(Clone)]
pub(super) struct CmafRung {
    rendition: usize,
    state: Arc<Mutex<State>>,
    sink: Arc<dyn FragmentSink>,
    video_caps_from: gst::Pad,
}

/// The codec configuration a caps event carries in `codec_data`, parsed by `parse`.
fn configuration<T>(
    caps: &gst::CapsRef,
    parse: impl FnOnce(&[u8]) -> crate::Result<T>,
) -> Option<T> {
    let buffer = caps.structure(0)?.get::<gst::Buffer>("codec_data").ok()?;
    let map = buffer.map_readable().ok()?;
    parse(map.as_slice())
        .inspect_err(
            |e| tracing::error!(error = %e, "a rung's encoder configuration cannot be muxed"),
        )
        .ok()
}

fn bytes_of(buffer: &gst::BufferRef) -> Option<Bytes> {
    let map = buffer.map_readable().ok()?;
    Some(Bytes::copy_from_slice(map.as_slice()))
}

impl CmafRung {
    pub(super) fn new(
        rendition: usize,
        part_target: Duration,
        has_audio: bool,
        sink: Arc<dyn FragmentSink>,
        video_caps_from: gst::Pad,
    ) -> Self {
        CmafRung {
            rendition,
            state: Arc::new(Mutex::new(State {
                parts: PartSegmenter::new(part_target),
                boundary_pending: false,
                video_done: false,
                audio_done: !has_audio,
            })),
            sink,
            video_caps_from,
        }
    }

    fn with_state(&self, f: impl FnOnce(&mut State)) {
        let outputs = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            f(&mut st);
            if st.video_done && st.audio_done {
                st.parts.finish();
            }
            st.parts.drain()
        };
        if !outputs.is_empty() {
            let info = rendition_info(&self.video_caps_from);
            deliver_parts(&*self.sink, &[self.rendition], outputs, info.as_ref());
        }
    }

    /// Probe of the video fakesink's sink pad: buffers, caps, force-key-unit events, EOS.
    pub(super) fn on_video(&self, pad: &gst::Pad, info: &gst::PadProbeInfo) {
        match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                let Some(pts) = running_time(pad, buffer.pts()) else {
                    return;
                };
                let dts = running_time(pad, buffer.dts()).unwrap_or(pts);
                let Some(data) = bytes_of(buffer) else {
                    return;
                };
                let keyframe = !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT);
                let (dts, pts) = (ns_to_ticks(dts.nseconds()), ns_to_ticks(pts.nseconds()));
                let cts = i32::try_from(pts as i64 - dts as i64).unwrap_or(0);
                self.with_state(|st| {
                    let opens = keyframe && std::mem::take(&mut st.boundary_pending);
                    st.parts.push_video(dts, cts, keyframe, opens, data);
                });
            }
            Some(gst::PadProbeData::Event(event)) => match event.view() {
                gst::EventView::Caps(caps) => {
                    if let Some(avc) = configuration(caps.caps(), AvcConfig::parse) {
                        self.with_state(|st| st.parts.set_avc(avc));
                    }
                }
                gst::EventView::Eos(_) => self.with_state(|st| st.video_done = true),
                _ if gst_video::DownstreamForceKeyUnitEvent::parse(event).is_ok() => {
                    self.with_state(|st| st.boundary_pending = true);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// Probe of the audio fakesink's sink pad.
    pub(super) fn on_audio(&self, pad: &gst::Pad, info: &gst::PadProbeInfo) {
        match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => {
                let (Some(pts), Some(data)) = (running_time(pad, buffer.pts()), bytes_of(buffer))
                else {
                    return;
                };
                self.with_state(|st| st.parts.push_audio(ns_to_ticks(pts.nseconds()), data));
            }
            Some(gst::PadProbeData::Event(event)) => match event.view() {
                gst::EventView::Caps(caps) => {
                    if let Some(aac) = configuration(caps.caps(), AacConfig::parse) {
                        self.with_state(|st| st.parts.set_aac(aac));
                    }
                }
                gst::EventView::Eos(_) => self.with_state(|st| st.audio_done = true),
                _ => {}
            },
            _ => {}
        }
    }
}
