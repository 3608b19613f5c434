//! Timing and cutting on the GStreamer side: the source's media clock, the segment boundary of
//! the demuxer's timeline, and the [`Cutter`] that splits each rendition's muxed MPEG-TS into
//! [`ClosedFragment`]s where the force-key-unit events come out of `mpegtsmux`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

use crate::mux::fragment::{ClosedFragment, FragmentSink, RenditionInfo};

/// `flvdemux` starts its time segment at the first buffer's timestamp; start it at zero instead,
/// so running time is the publisher's timestamp, the timeline the passthrough muxer
/// ([`crate::mux::passthrough`]) uses.
pub(super) fn zero_based_segment(
    _: &gst::Pad,
    info: &mut gst::PadProbeInfo,
) -> gst::PadProbeReturn {
    let Some(gst::PadProbeData::Event(event)) = &info.data else {
        return gst::PadProbeReturn::Ok;
    };
    let gst::EventView::Segment(seg) = event.view() else {
        return gst::PadProbeReturn::Ok;
    };
    if let Some(time) = seg.segment().downcast_ref::<gst::ClockTime>()
        && time.start().is_some_and(|s| s > gst::ClockTime::ZERO)
    {
        let mut zero = time.clone();
        zero.set_start(gst::ClockTime::ZERO);
        zero.set_time(gst::ClockTime::ZERO);
        zero.set_position(gst::ClockTime::ZERO);
        let seqnum = event.seqnum();
        info.data = Some(gst::PadProbeData::Event(
            gst::event::Segment::builder(&zero).seqnum(seqnum).build(),
        ));
    }
    gst::PadProbeReturn::Ok
}

pub(super) fn running_time(pad: &gst::Pad, pts: Option<gst::ClockTime>) -> Option<gst::ClockTime> {
    let pts = pts?;
    let ev = pad.sticky_event::<gst::event::Segment>(0)?;
    let segment = ev.segment().downcast_ref::<gst::ClockTime>()?;
    segment.to_running_time(pts)
}

/// Source timeline shared by the boundary probe and the cutters.
#[derive(Default)]
pub(super) struct MediaClock {
    inner: Mutex<ClockState>,
}

#[derive(Default)]
struct ClockState {
    first: Option<gst::ClockTime>,
    video_end: Option<gst::ClockTime>,
}

impl MediaClock {
    pub(super) fn saw_video(&self, rt: gst::ClockTime, duration: Option<gst::ClockTime>) {
        if let Ok(mut c) = self.inner.lock() {
            c.first.get_or_insert(rt);
            let end = rt + duration.unwrap_or(gst::ClockTime::ZERO);
            c.video_end = Some(c.video_end.map_or(end, |e| e.max(end)));
        }
    }

    fn first(&self) -> gst::ClockTime {
        self.inner
            .lock()
            .ok()
            .and_then(|c| c.first)
            .unwrap_or(gst::ClockTime::ZERO)
    }

    fn video_end(&self) -> Option<gst::ClockTime> {
        self.inner.lock().ok().and_then(|c| c.video_end)
    }
}

#[derive(Default)]
struct CutState {
    start: Option<gst::ClockTime>,
    data: Vec<u8>,
}

/// Splits one rendition's muxed MPEG-TS at the force-key-unit events.
pub(super) struct Cutter {
    rendition: usize,
    video_caps_from: gst::Pad,
    clock: Arc<MediaClock>,
    sink: Arc<dyn FragmentSink>,
    state: Mutex<CutState>,
}

impl Cutter {
    pub(super) fn new(
        rendition: usize,
        video_caps_from: gst::Pad,
        clock: Arc<MediaClock>,
        sink: Arc<dyn FragmentSink>,
    ) -> Self {
        Cutter {
            rendition,
            video_caps_from,
            clock,
            sink,
            state: Mutex::new(CutState::default()),
        }
    }

    pub(super) fn on_probe(&self, info: &gst::PadProbeInfo) {
        match &info.data {
            Some(gst::PadProbeData::Buffer(buffer)) => self.append(buffer),
            Some(gst::PadProbeData::BufferList(list)) => {
                for buffer in list.iter() {
                    self.append(buffer);
                }
            }
            Some(gst::PadProbeData::Event(event)) => {
                if let Ok(fku) = gst_video::DownstreamForceKeyUnitEvent::parse(event) {
                    if let Some(rt) = fku.running_time {
                        self.cut(rt, Some(rt));
                    }
                } else if event.type_() == gst::EventType::Eos
                    && let Some(end) = self.clock.video_end()
                {
                    self.cut(end, None);
                }
            }
            _ => {}
        }
    }

    fn append(&self, buffer: &gst::BufferRef) {
        if let (Ok(map), Ok(mut st)) = (buffer.map_readable(), self.state.lock()) {
            st.data.extend_from_slice(map.as_slice());
        }
    }

    /// Close the open segment at `end`; the next one starts at `next`.
    fn cut(&self, end: gst::ClockTime, next: Option<gst::ClockTime>) {
        let (start, data) = {
            let Ok(mut st) = self.state.lock() else {
                return;
            };
            let start = st.start.unwrap_or_else(|| self.clock.first());
            st.start = next;
            (start, std::mem::take(&mut st.data))
        };
        if data.is_empty() || end <= start {
            return;
        }
        // Times relative to the ingest's first frame: publishers (OBS after a reconnect) do not
        // always start their timestamps at zero.
        let first = self.clock.first();
        let (start, end) = (start.saturating_sub(first), end.saturating_sub(first));
        self.sink.fragment_closed(
            ClosedFragment {
                rendition: self.rendition,
                bytes: Bytes::from(data),
                start: Duration::from_nanos(start.nseconds()),
                end: Duration::from_nanos(end.nseconds()),
            },
            rendition_info(&self.video_caps_from),
        );
    }
}

pub(super) fn rendition_info(pad: &gst::Pad) -> Option<RenditionInfo> {
    let caps = pad.current_caps()?;
    let s = caps.structure(0)?;
    let width = u32::try_from(s.get::<i32>("width").ok()?).ok()?;
    let height = u32::try_from(s.get::<i32>("height").ok()?).ok()?;
    let frame_rate = s
        .get::<gst::Fraction>("framerate")
        .ok()
        .filter(|f| f.numer() > 0 && f.denom() > 0)
        .map(|f| f64::from(f.numer()) / f64::from(f.denom()));
    let profile = s.get::<&str>("profile").unwrap_or("high");
    let level = s.get::<&str>("level").unwrap_or("3.1");
    Some(RenditionInfo {
        width,
        height,
        frame_rate,
        codecs: avc_codec_string(profile, level),
    })
}

/// RFC 6381 codec string of H.264 caps from h264parse (`profile`, `level` fields).
pub fn avc_codec_string(profile: &str, level: &str) -> String {
    let (idc, constraints) = match profile {
        "constrained-baseline" => (0x42, 0xe0),
        "baseline" => (0x42, 0x00),
        "main" => (0x4d, 0x40),
        "extended" => (0x58, 0x00),
        "high" | "constrained-high" | "progressive-high" => (0x64, 0x00),
        "high-10" | "high-10-intra" => (0x6e, 0x00),
        "high-4:2:2" | "high-4:2:2-intra" => (0x7a, 0x00),
        "high-4:4:4" | "high-4:4:4-intra" => (0xf4, 0x00),
        _ => (0x64, 0x00),
    };
    let level = match level {
        "1b" => 9,
        other => {
            let l: f64 = other.parse().unwrap_or(3.1);
            (l * 10.0).round() as u32
        }
    };
    format!("avc1.{idc:02x}{constraints:02x}{level:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codec_strings_follow_rfc6381() {
        assert_eq!(avc_codec_string("high", "3.1"), "avc1.64001f");
        assert_eq!(avc_codec_string("constrained-baseline", "3"), "avc1.42e01e");
        assert_eq!(avc_codec_string("main", "4"), "avc1.4d4028");
    }
}
