//! The GStreamer graph of the encoded rungs of one live ingest: FLV bytes in, keyframe-aligned
//! MPEG-TS segments of every encoded rendition out. The source rendition does not pass through
//! here: [`crate::mux::passthrough`] muxes it without decoding. Built in one function
//! ([`TranscodePipeline::start`]) from element factories.
//!
//! ```text
//! appsrc(FLV) ! flvdemux ─video─ queue ! h264parse ! [boundary probe] avdec_h264 ! tee
//!                    │   per rung: queue ! videoscale ! capsfilter ! tee ! x264enc ! h264parse ! queue ┐
//!                    └─audio─ queue ! aacparse ! avdec_aac ! audioconvert ! audioresample ! tee   │
//!            per audio bitrate: queue ! avenc_aac ! tee ─ per rung: queue ───────────────────────┤
//!             per rendition: mpegtsmux ! [cutter probe] fakesink  <─────────────────────────────┘
//! ```
//!
//! A rung's `capsfilter` feeds a tee: its encoder, and the next smaller rung's scaler (each rung
//! scales from the smallest taller rung, the tallest from the decoder: 480 -> 360 -> 240 -> 144).
//!
//! Segment boundaries are decided on the source's keyframes by [`Boundaries`], the rule the
//! passthrough muxer applies to the same keyframes. At a boundary the probe pushes a downstream
//! force-key-unit event in front of the keyframe. The decoder hands it on with the frame and each
//! x264enc turns it into a keyframe at that running time and emits it again in front of that
//! keyframe. `mpegtsmux` answers with PAT/PMT and forwards it, and the cutter on its output
//! closes the segment right there (hlssink's proven scheme). So every rendition cuts at the same
//! instants, every segment starts with PAT/PMT and a keyframe, and a segment is out as soon as
//! the keyframe that ends it arrives: no extra GOP of delay.
//!
//! Timelines: `flvdemux` starts its segment at the first buffer's timestamp; a probe resets it
//! to zero, so running time is the publisher's timestamp and `mpegtsmux`'s output (running time
//! plus one hour) matches [`crate::mux::ts`]'s for the source, frame for frame.
//!
//! Threads: one per queue. The decoders run in their trunk queue's thread, each rung's
//! encoder in its own (see [`encoder_threads`]); the rungs are the parallelism.
//!
//! Backpressure: `appsrc` blocks when its 2 MiB are full and every queue is bounded, so a fast
//! publisher or a slow encoder stalls the RTMP socket instead of growing memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use roomcast_crds::Rendition;

use super::cmaf_rung::CmafRung;
use super::cutter::{Cutter, MediaClock, running_time, zero_based_segment};
use crate::config::DEFAULT_AUDIO_KBPS;
use crate::error::{Error, Result};
use crate::mux::boundary::Boundaries;
use crate::mux::fragment::FragmentSink;

/// Bytes `appsrc` holds before `push` blocks.
const APPSRC_MAX_BYTES: u64 = 2 * 1024 * 1024;
/// Longest wait for the last fragment to close at the end of an ingest.
pub const FINISH_TIMEOUT: Duration = Duration::from_secs(15);

/// Elements the pipeline needs; tests skip with this list when one is missing.
pub const REQUIRED_ELEMENTS: &[&str] = &[
    "appsrc",
    "flvdemux",
    "h264parse",
    "aacparse",
    "tee",
    "queue",
    "mpegtsmux",
    "fakesink",
    "avdec_h264",
    "videoscale",
    "capsfilter",
    "x264enc",
    "avdec_aac",
    "audioconvert",
    "audioresample",
    "avenc_aac",
];

/// Initialise GStreamer once.
pub(crate) fn init_gst() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(Error::Gst)
}

/// Initialise GStreamer once and report missing elements.
pub fn init() -> Result<()> {
    init_gst()?;
    match missing_elements().first() {
        Some(name) => Err(Error::MissingElement((*name).to_owned())),
        None => Ok(()),
    }
}

/// Elements of [`REQUIRED_ELEMENTS`] that are not installed.
pub fn missing_elements() -> Vec<&'static str> {
    if gst::init().is_err() {
        return REQUIRED_ELEMENTS.to_vec();
    }
    REQUIRED_ELEMENTS
        .iter()
        .copied()
        .filter(|name| gst::ElementFactory::find(name).is_none())
        .collect()
}

/// What one ingest produces.
#[derive(Clone, Debug)]
pub struct PipelineSpec {
    pub renditions: Vec<Rendition>,
    pub segment: Duration,
    pub has_audio: bool,
    /// From the publisher's metadata, when it sent any.
    pub source_size: Option<(u32, u32)>,
    pub frame_rate: Option<f64>,
    /// x264 speed preset.
    pub speed_preset: String,
    /// Low latency: CMAF parts of this target instead of MPEG-TS segments.
    pub part_target: Option<Duration>,
}

/// A running pipeline. [`push`](Self::push) blocks while the pipeline is full.
pub struct TranscodePipeline {
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    failed: Arc<Mutex<Option<String>>>,
    done: Arc<(Mutex<bool>, std::sync::Condvar)>,
    bus_thread: Option<std::thread::JoinHandle<()>>,
}

pub(super) fn make(factory: &str, name: Option<&str>) -> Result<gst::Element> {
    let mut b = gst::ElementFactory::make(factory);
    if let Some(name) = name {
        b = b.name(name);
    }
    b.build()
        .map_err(|_| Error::MissingElement(factory.to_owned()))
}

fn queue(max_time: Option<Duration>, max_buffers: u32) -> Result<gst::Element> {
    let q = make("queue", None)?;
    q.set_property("max-size-bytes", 0u32);
    q.set_property("max-size-buffers", max_buffers);
    q.set_property(
        "max-size-time",
        max_time.map(|d| d.as_nanos() as u64).unwrap_or(0),
    );
    Ok(q)
}

fn link(elements: &[&gst::Element]) -> Result<()> {
    gst::Element::link_many(elements.iter().copied()).map_err(|e| Error::Gst(e.to_string()))
}

fn link_pads(src: &gst::Pad, sink: &gst::Element) -> Result<()> {
    let sink_pad = sink
        .static_pad("sink")
        .ok_or_else(|| Error::Gst("element without sink pad".into()))?;
    src.link(&sink_pad)
        .map(|_| ())
        .map_err(|e| Error::Gst(format!("link: {e:?}")))
}

fn tee_to(tee: &gst::Element, next: &gst::Element) -> Result<()> {
    let pad = tee
        .request_pad_simple("src_%u")
        .ok_or_else(|| Error::Gst("tee pad".into()))?;
    link_pads(&pad, next)
}

fn mux_pad(mux: &gst::Element, template: &str, src: &gst::Pad) -> Result<()> {
    let pad = mux
        .request_pad_simple(template)
        .ok_or_else(|| Error::Gst(format!("mpegtsmux pad {template}")))?;
    src.link(&pad)
        .map(|_| ())
        .map_err(|e| Error::Gst(format!("link to mpegtsmux: {e:?}")))
}

fn fakesink() -> Result<gst::Element> {
    let out = make("fakesink", None)?;
    out.set_property("sync", false);
    out.set_property("async", false);
    Ok(out)
}

/// Where an encoded stream of a rung goes: its MPEG-TS muxer, or the CMAF rung's `probe`.
fn output(
    pipeline: &gst::Pipeline,
    mux: Option<&gst::Element>,
    cmaf: Option<&CmafRung>,
    src: &gst::Pad,
    probe: fn(&CmafRung, &gst::Pad, &gst::PadProbeInfo),
) -> Result<()> {
    match (mux, cmaf) {
        (Some(mux), _) => mux_pad(mux, "sink_%d", src),
        (None, Some(rung)) => {
            let rung = rung.clone();
            probed_sink(pipeline, src, move |pad, info| probe(&rung, pad, info))
        }
        (None, None) => Ok(()),
    }
}

/// A fakesink after `src` whose sink pad's buffers and events go to `probe`.
fn probed_sink(
    pipeline: &gst::Pipeline,
    src: &gst::Pad,
    probe: impl Fn(&gst::Pad, &gst::PadProbeInfo) + Send + Sync + 'static,
) -> Result<()> {
    let out = fakesink()?;
    pipeline.add(&out).map_err(|e| Error::Gst(e.to_string()))?;
    link_pads(src, &out)?;
    let pad = out
        .static_pad("sink")
        .ok_or_else(|| Error::Gst("fakesink sink".into()))?;
    pad.add_probe(
        gst::PadProbeType::BUFFER | gst::PadProbeType::EVENT_DOWNSTREAM,
        move |pad, info| {
            probe(pad, info);
            gst::PadProbeReturn::Ok
        },
    );
    Ok(())
}

/// Width for `height` keeping the source aspect ratio, rounded to an even number.
pub fn scaled_width(source: (u32, u32), height: u32) -> u32 {
    let (w, h) = source;
    if h == 0 {
        return height * 16 / 9 / 2 * 2;
    }
    let exact = f64::from(w) * f64::from(height) / f64::from(h);
    (((exact / 2.0).round() as u32) * 2).max(2)
}

/// Rungs up to this many pixels a second (720p30) get one encoder thread.
const SINGLE_THREAD_PIXEL_RATE: f64 = 1280.0 * 720.0 * 30.0;

/// x264 threads of a rung. One per encoder up to 720p30: the rungs already encode in parallel,
/// each in its own streaming thread, and zerolatency's sliced threads cost a hand-off per frame
/// (about 0.2 s less CPU for 20 s of the bench ladder); one slice per frame also compresses no
/// worse. Larger rungs (1080p, 60 fps) get x264's automatic count (0), since one core may not
/// encode them in real time.
pub fn encoder_threads(source: Option<(u32, u32)>, height: u32, frame_rate: f64) -> u32 {
    let width = source.map_or(height * 16 / 9, |s| scaled_width(s, height));
    let rate = f64::from(width) * f64::from(height) * frame_rate;
    if rate <= SINGLE_THREAD_PIXEL_RATE {
        1
    } else {
        0
    }
}

impl TranscodePipeline {
    /// Build and start the graph; segments are reported to `sink`.
    pub fn start(spec: &PipelineSpec, sink: Arc<dyn FragmentSink>) -> Result<Self> {
        init()?;
        let pipeline = gst::Pipeline::new();
        let appsrc = gst_app::AppSrc::builder()
            .caps(&gst::Caps::builder("video/x-flv").build())
            .format(gst::Format::Bytes)
            .is_live(false)
            .block(true)
            .max_bytes(APPSRC_MAX_BYTES)
            .stream_type(gst_app::AppStreamType::Stream)
            .build();
        let demux = make("flvdemux", None)?;
        pipeline
            .add_many([appsrc.upcast_ref(), &demux])
            .map_err(|e| Error::Gst(e.to_string()))?;
        link(&[appsrc.upcast_ref(), &demux])?;

        // Compressed queues after the demuxer hold a little more than a segment, so the muxers
        // waiting for both audio and video never starve one branch.
        let compressed = Some(spec.segment * 2 + Duration::from_secs(2));
        let add = |e: &[&gst::Element]| -> Result<()> {
            pipeline
                .add_many(e.iter().copied())
                .map_err(|e| Error::Gst(e.to_string()))
        };

        // Video trunk, decoded once. The decoder runs in the queue's thread: libav's frame
        // threads add a frame of delay per thread and two hand-offs per frame, for a decode that
        // is a fraction of the rungs' encodes.
        let vq = queue(compressed, 0)?;
        let vparse = make("h264parse", None)?;
        vparse.set_property("config-interval", -1i32);
        let vcaps = make("capsfilter", None)?;
        vcaps.set_property(
            "caps",
            gst::Caps::builder("video/x-h264")
                .field("stream-format", "byte-stream")
                .field("alignment", "au")
                .build(),
        );
        let vdec = make("avdec_h264", None)?;
        vdec.set_property("max-threads", 1i32);
        let dtee = make("tee", None)?;
        add(&[&vq, &vparse, &vcaps, &vdec, &dtee])?;
        link(&[&vq, &vparse, &vcaps, &vdec, &dtee])?;

        // Audio trunk, decoded once.
        let audio = if spec.has_audio {
            let aq = queue(compressed, 0)?;
            let aparse = make("aacparse", None)?;
            let adec = make("avdec_aac", None)?;
            let conv = make("audioconvert", None)?;
            let res = make("audioresample", None)?;
            let atee = make("tee", None)?;
            add(&[&aq, &aparse, &adec, &conv, &res, &atee])?;
            link(&[&aq, &aparse, &adec, &conv, &res, &atee])?;
            Some((aq, atee))
        } else {
            None
        };

        let clock = Arc::new(MediaClock::default());
        let frame_rate = spec.frame_rate.filter(|f| *f > 0.0).unwrap_or(30.0);
        let key_int = ((spec.segment.as_secs_f64() * frame_rate).round() as u32).max(1);
        let mut audio_encoders: BTreeMap<u32, gst::Element> = BTreeMap::new();
        let mut scaled: Vec<(u32, gst::Element)> = Vec::new();
        // The source rendition is muxed by crate::mux::passthrough, not here.
        let encoded = spec
            .renditions
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.is_source());
        for (index, rendition) in encoded {
            // Standard latency muxes MPEG-TS in GStreamer; low latency muxes CMAF in Rust.
            let mux = match spec.part_target {
                Some(_) => None,
                None => {
                    let mux = make("mpegtsmux", Some(&format!("rendition-{index}")))?;
                    let out = fakesink()?;
                    add(&[&mux, &out])?;
                    link(&[&mux, &out])?;
                    Some(mux)
                }
            };

            let (video_out, video_caps) = {
                let height = rendition.height.unwrap_or(360);
                let q = queue(None, 3)?;
                let scale = make("videoscale", None)?;
                let caps = make("capsfilter", None)?;
                let mut c = gst::Caps::builder("video/x-raw").field("height", height as i32);
                if let Some(src) = spec.source_size {
                    c = c.field("width", scaled_width(src, height) as i32);
                }
                caps.set_property("caps", c.build());
                let enc = make("x264enc", None)?;
                enc.set_property_from_str("tune", "zerolatency");
                enc.set_property_from_str("speed-preset", &spec.speed_preset);
                enc.set_property("bitrate", rendition.video_kbps.unwrap_or(800));
                enc.set_property("key-int-max", key_int);
                enc.set_property("bframes", 0u32);
                enc.set_property(
                    "threads",
                    encoder_threads(spec.source_size, height, frame_rate),
                );
                let parse = make("h264parse", None)?;
                let out = queue(compressed, 0)?;
                // Scale from the smallest rung already scaled that is still taller than this
                // one: fewer pixels to read, and videoscale's 2-tap bilinear aliases less in steps
                // under 2x than in one 480 -> 144 step (closer to a Lanczos reference, 40 dB PSNR
                // against 33 dB at 144p).
                let from = scaled
                    .iter()
                    .filter(|(h, _)| *h > height)
                    // Never from an upscaled rung.
                    .filter(|(h, _)| spec.source_size.is_none_or(|(_, sh)| *h <= sh))
                    .min_by_key(|(h, _)| *h)
                    .map_or_else(|| dtee.clone(), |(_, t)| t.clone());
                let stee = make("tee", None)?;
                // CMAF carries length-prefixed NAL units with the parameter sets in the init
                // segment (`avcC`, from the caps' codec_data).
                let format = make("capsfilter", None)?;
                if spec.part_target.is_some() {
                    format.set_property(
                        "caps",
                        gst::Caps::builder("video/x-h264")
                            .field("stream-format", "avc")
                            .field("alignment", "au")
                            .build(),
                    );
                }
                add(&[&q, &scale, &caps, &stee, &enc, &parse, &format, &out])?;
                tee_to(&from, &q)?;
                link(&[&q, &scale, &caps, &stee])?;
                tee_to(&stee, &enc)?;
                link(&[&enc, &parse, &format, &out])?;
                scaled.push((height, stee));
                let pad = out
                    .static_pad("src")
                    .ok_or_else(|| Error::Gst("queue src".into()))?;
                (pad.clone(), pad)
            };
            let cmaf = spec.part_target.map(|target| {
                CmafRung::new(
                    index,
                    target,
                    spec.has_audio,
                    sink.clone(),
                    video_caps.clone(),
                )
            });
            output(
                &pipeline,
                mux.as_ref(),
                cmaf.as_ref(),
                &video_out,
                CmafRung::on_video,
            )?;

            if let Some((_, atee)) = &audio {
                let audio_out = {
                    // Rungs asking for the same audio bitrate share one encoder: same input and
                    // settings give the same bytes, for the CPU of one.
                    let kbps = rendition.audio_kbps.unwrap_or(DEFAULT_AUDIO_KBPS);
                    let encoded = match audio_encoders.get(&kbps) {
                        Some(t) => t.clone(),
                        None => {
                            let q = queue(None, 8)?;
                            let enc = make("avenc_aac", None)?;
                            let bitrate = i32::try_from(kbps * 1000).unwrap_or(128_000);
                            enc.set_property("bitrate", bitrate);
                            let t = make("tee", None)?;
                            add(&[&q, &enc, &t])?;
                            tee_to(atee, &q)?;
                            link(&[&q, &enc, &t])?;
                            audio_encoders.insert(kbps, t.clone());
                            t
                        }
                    };
                    let out = queue(compressed, 0)?;
                    add(&[&out])?;
                    tee_to(&encoded, &out)?;
                    out.static_pad("src")
                        .ok_or_else(|| Error::Gst("queue src".into()))?
                };
                output(
                    &pipeline,
                    mux.as_ref(),
                    cmaf.as_ref(),
                    &audio_out,
                    CmafRung::on_audio,
                )?;
            }

            let Some(mux) = mux else {
                continue;
            };
            // Cut the muxed stream where the force-key-unit events come out of the muxer.
            let cutter = Cutter::new(index, video_caps, clock.clone(), sink.clone());
            let mux_src = mux
                .static_pad("src")
                .ok_or_else(|| Error::Gst("mpegtsmux src".into()))?;
            mux_src.add_probe(
                gst::PadProbeType::BUFFER
                    | gst::PadProbeType::BUFFER_LIST
                    | gst::PadProbeType::EVENT_DOWNSTREAM,
                move |_, info| {
                    cutter.on_probe(info);
                    gst::PadProbeReturn::Ok
                },
            );
        }

        // Boundary decisions on the source's keyframes: a force-key-unit event goes down every
        // branch right before the keyframe that opens a segment.
        let boundaries = Mutex::new(Boundaries::new(spec.segment));
        let vcaps_src = vcaps
            .static_pad("src")
            .ok_or_else(|| Error::Gst("capsfilter src".into()))?;
        let boundary_clock = clock.clone();
        vcaps_src.add_probe(gst::PadProbeType::BUFFER, move |pad, info| {
            let Some(buffer) = info.buffer() else {
                return gst::PadProbeReturn::Ok;
            };
            let Some(rt) = running_time(pad, buffer.pts()) else {
                return gst::PadProbeReturn::Ok;
            };
            boundary_clock.saw_video(rt, buffer.duration());
            if buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                return gst::PadProbeReturn::Ok;
            }
            let opens = boundaries
                .lock()
                .is_ok_and(|mut b| b.keyframe_opens_segment(Duration::from_nanos(rt.nseconds())));
            if opens {
                let event = gst_video::DownstreamForceKeyUnitEvent::builder()
                    .running_time(rt)
                    .timestamp(buffer.pts())
                    .all_headers(true)
                    .build();
                pad.push_event(event);
            }
            gst::PadProbeReturn::Ok
        });

        // Demuxer pads appear once it has read the stream.
        let video_sink = vq.clone();
        let audio_sink = audio.as_ref().map(|(aq, _)| aq.clone());
        demux.connect_pad_added(move |_, pad| {
            let target = match pad.name().as_str() {
                "video" => Some(&video_sink),
                "audio" => audio_sink.as_ref(),
                _ => None,
            };
            if target.is_some() {
                pad.add_probe(gst::PadProbeType::EVENT_DOWNSTREAM, zero_based_segment);
            }
            if let Some(target) = target
                && let Err(e) = link_pads(pad, target)
            {
                tracing::error!(error = %e, "linking demuxer pad failed");
            }
        });

        let failed = Arc::new(Mutex::new(None));
        let done = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let bus = pipeline
            .bus()
            .ok_or_else(|| Error::Gst("pipeline without bus".into()))?;
        let bus_thread = {
            let failed = failed.clone();
            let done = done.clone();
            let span = tracing::Span::current();
            std::thread::Builder::new()
                .name("gst-bus".into())
                .spawn(move || {
                    let _enter = span.enter();
                    watch_bus(&bus, &failed);
                    let (lock, cvar) = &*done;
                    if let Ok(mut d) = lock.lock() {
                        *d = true;
                        cvar.notify_all();
                    }
                })
                .map_err(Error::Net)?
        };

        pipeline
            .set_state(gst::State::Playing)
            .map_err(|e| Error::Gst(format!("cannot start pipeline: {e}")))?;
        Ok(TranscodePipeline {
            pipeline,
            appsrc,
            failed,
            done,
            bus_thread: Some(bus_thread),
        })
    }

    /// Feed FLV bytes; blocks while the pipeline is full.
    pub fn push(&self, data: Bytes) -> Result<()> {
        if let Some(e) = self.failure() {
            return Err(Error::Gst(e));
        }
        self.appsrc
            .push_buffer(gst::Buffer::from_slice(data))
            .map(|_| ())
            .map_err(|e| Error::Gst(format!("pipeline refused data: {e:?}")))
    }

    pub fn failure(&self) -> Option<String> {
        self.failed.lock().ok().and_then(|f| f.clone())
    }

    /// End of stream: close the last fragments and stop. Blocks up to `timeout`.
    pub fn finish(mut self, timeout: Duration) -> Result<()> {
        let _ = self.appsrc.end_of_stream();
        let (lock, cvar) = &*self.done;
        let finished = match lock.lock() {
            Ok(guard) => cvar
                .wait_timeout_while(guard, timeout, |d| !*d)
                .map(|(g, _)| *g)
                .unwrap_or(false),
            Err(_) => false,
        };
        self.stop();
        if finished {
            Ok(())
        } else {
            Err(Error::Stalled("pipeline did not drain in time".into()))
        }
    }

    fn stop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        if let Some(bus) = self.pipeline.bus() {
            // Wake the bus thread if it is still waiting. A pipeline in NULL sets its bus
            // flushing, which would drop this message and leave the thread waiting forever.
            bus.set_flushing(false);
            let _ = bus.post(gst::message::Application::new(gst::Structure::new_empty(
                "roomcast-stop",
            )));
        }
        if let Some(t) = self.bus_thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for TranscodePipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

fn watch_bus(bus: &gst::Bus, failed: &Mutex<Option<String>>) {
    use gst::MessageView;
    for msg in bus.iter_timed(gst::ClockTime::NONE) {
        match msg.view() {
            MessageView::Eos(_) => return,
            MessageView::Application(a)
                if a.structure().is_some_and(|s| s.name() == "roomcast-stop") =>
            {
                return;
            }
            MessageView::Error(e) => {
                let text = format!(
                    "{} ({})",
                    e.error(),
                    e.debug().map(|d| d.to_string()).unwrap_or_default()
                );
                tracing::error!(error = %text, "transcode pipeline failed");
                if let Ok(mut f) = failed.lock() {
                    *f = Some(text);
                }
                return;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mux::fragment::{ClosedFragment, RenditionInfo};

    #[test]
    fn scaled_width_keeps_aspect_and_is_even() {
        assert_eq!(scaled_width((1920, 1080), 720), 1280);
        assert_eq!(scaled_width((1280, 720), 360), 640);
        assert_eq!(scaled_width((320, 240), 144), 192);
        assert_eq!(scaled_width((854, 480), 240), 428);
    }

    struct Discard;
    impl FragmentSink for Discard {
        fn fragment_closed(&self, _: ClosedFragment, _: Option<RenditionInfo>) {}
        fn cmaf(&self, _: usize, _: crate::mux::parts::PartOutput, _: Option<RenditionInfo>) {}
    }

    fn rung(name: &str, height: u32, audio_kbps: u32) -> Rendition {
        Rendition {
            name: name.into(),
            height: Some(height),
            video_kbps: Some(400),
            audio_kbps: Some(audio_kbps),
        }
    }

    fn count(pipeline: &gst::Pipeline, factory: &str) -> usize {
        pipeline
            .iterate_recurse()
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.factory().is_some_and(|f| f.name() == factory))
            .count()
    }

    fn gstreamer_ready() -> bool {
        let ready = init().is_ok();
        if !ready {
            roomcast_runtime::skip::missing(
                &format!("GStreamer elements {:?}", missing_elements()),
                "the transcode pipeline is built from them",
            );
        }
        ready
    }

    fn spec(renditions: Vec<Rendition>) -> PipelineSpec {
        PipelineSpec {
            renditions,
            segment: Duration::from_secs(2),
            has_audio: true,
            source_size: Some((854, 480)),
            frame_rate: Some(30.0),
            speed_preset: "veryfast".into(),
            part_target: None,
        }
    }

    #[test]
    fn rungs_with_the_same_audio_bitrate_share_one_encoder() {
        if !gstreamer_ready() {
            return;
        }
        let spec = spec(vec![
            rung("360p", 360, 96),
            rung("240p", 240, 64),
            rung("144p", 144, 64),
        ]);
        let p = TranscodePipeline::start(&spec, Arc::new(Discard)).expect("pipeline");
        assert_eq!(count(&p.pipeline, "avenc_aac"), 2);
        assert_eq!(count(&p.pipeline, "mpegtsmux"), 3);
        // End of stream before any data: flvdemux fails, which ends the bus thread.
        let _ = p.finish(Duration::from_secs(5));
    }

    #[test]
    fn dropping_a_pipeline_that_never_saw_data_returns() {
        if !gstreamer_ready() {
            return;
        }
        let spec = spec(vec![rung("144p", 144, 64)]);
        let p = TranscodePipeline::start(&spec, Arc::new(Discard)).expect("pipeline");
        // Dropped without finish(), as when a publisher vanishes before its first tag.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            drop(p);
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "dropping the pipeline hung in its bus thread"
        );
    }

    #[test]
    fn small_rungs_encode_on_one_thread_large_ones_on_many() {
        assert_eq!(encoder_threads(Some((854, 480)), 360, 30.0), 1);
        assert_eq!(encoder_threads(Some((1920, 1080)), 720, 30.0), 1);
        assert_eq!(encoder_threads(Some((1920, 1080)), 720, 60.0), 0);
        assert_eq!(encoder_threads(None, 1080, 30.0), 0);
    }
}
