//! Session posters with the GStreamer the worker already links, so the runtime image needs no
//! ffmpeg. One JPEG of the first video frame of a segment (segments open on a keyframe): an
//! MPEG-TS segment, or a CMAF one given after its init segment (fragmented MP4 in push mode):
//!
//! ```text
//! appsrc(whole segment, then EOS) ! tsdemux | qtdemux ─video/x-h264─ h264parse ! avdec_h264
//!     ! videoconvert ! jpegenc ! appsink (first buffer)
//! ```
//!
//! The segment is the publisher's bytes muxed by us, so anything may be in it: a deadline bounds
//! the whole run, demuxer pads that are not H.264 stay unlinked, and every failure is an error
//! for the recorder (which records the session without a poster), never a panic.

use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use roomcast_recorder::{SegmentFormat, poster::PosterMaker};

use super::pipeline::{init_gst, make};
use crate::error::{Error, Result};

/// Elements the poster needs; [`GstPoster::detect`] answers `None` when one is missing.
pub const POSTER_ELEMENTS: &[&str] = &[
    "appsrc",
    "tsdemux",
    "qtdemux",
    "h264parse",
    "avdec_h264",
    "videoconvert",
    "jpegenc",
    "appsink",
];

/// Longest a poster may take; a segment is a few seconds of video, decoded up to its first frame.
pub const POSTER_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the wait for the frame looks at the bus for an error or the end of the stream.
const BUS_POLL: Duration = Duration::from_millis(50);
/// JPEG quality, as ffmpeg's `-q:v 4` gives: a sharp thumbnail of a few tens of KiB.
const JPEG_QUALITY: i32 = 85;

/// Makes posters with GStreamer; preferred over `FfmpegPoster` by the media worker.
#[derive(Clone, Debug)]
pub struct GstPoster {
    pub timeout: Duration,
}

impl GstPoster {
    /// `Some` when GStreamer starts and every element of [`POSTER_ELEMENTS`] is installed.
    pub fn detect() -> Option<Self> {
        init_gst().ok()?;
        POSTER_ELEMENTS
            .iter()
            .all(|name| gst::ElementFactory::find(name).is_some())
            .then_some(Self {
                timeout: POSTER_TIMEOUT,
            })
    }
}

#[async_trait]
impl PosterMaker for GstPoster {
    async fn poster(
        &self,
        segment: Bytes,
        format: SegmentFormat,
    ) -> roomcast_recorder::Result<Bytes> {
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || poster_jpeg(&segment, format, timeout))
            .await
            .map_err(|e| roomcast_recorder::Error::Poster(format!("poster task: {e}")))?
            .map(Bytes::from)
            .map_err(|e| roomcast_recorder::Error::Poster(e.to_string()))
    }
}

/// The first video frame of `segment` as a JPEG, or an error within `timeout`. A CMAF segment
/// comes after its init segment, in the same bytes. Blocks; async callers go through
/// [`GstPoster`].
pub fn poster_jpeg(segment: &[u8], format: SegmentFormat, timeout: Duration) -> Result<Vec<u8>> {
    init_gst()?;
    let deadline = Instant::now() + timeout;
    let pipeline = gst::Pipeline::new();
    let (caps, demuxer) = match format {
        SegmentFormat::MpegTs => (
            gst::Caps::builder("video/mpegts")
                .field("systemstream", true)
                .build(),
            "tsdemux",
        ),
        SegmentFormat::Cmaf => (
            gst::Caps::builder("video/quicktime")
                .field("variant", "iso-fragmented")
                .build(),
            "qtdemux",
        ),
    };
    let appsrc = gst_app::AppSrc::builder()
        .caps(&caps)
        .format(gst::Format::Bytes)
        .build();
    let demux = make(demuxer, None)?;
    let parse = make("h264parse", None)?;
    let decode = make("avdec_h264", None)?;
    let convert = make("videoconvert", None)?;
    let encode = make("jpegenc", None)?;
    encode.set_property("quality", JPEG_QUALITY);
    let appsink = gst_app::AppSink::builder()
        .sync(false)
        .max_buffers(1)
        .build();
    pipeline
        .add_many([
            appsrc.upcast_ref(),
            &demux,
            &parse,
            &decode,
            &convert,
            &encode,
            appsink.upcast_ref(),
        ])
        .map_err(|e| Error::Gst(e.to_string()))?;
    gst::Element::link_many([appsrc.upcast_ref(), &demux])
        .map_err(|e| Error::Gst(e.to_string()))?;
    gst::Element::link_many([&parse, &decode, &convert, &encode, appsink.upcast_ref()])
        .map_err(|e| Error::Gst(e.to_string()))?;
    // Only the first H.264 stream reaches the decoder; audio and data pads stay unlinked.
    let parse_sink = parse
        .static_pad("sink")
        .ok_or_else(|| Error::Gst("h264parse without sink pad".into()))?;
    demux.connect_pad_added(move |_, pad| {
        let is_h264 = pad
            .current_caps()
            .or_else(|| Some(pad.query_caps(None)))
            .and_then(|caps| caps.structure(0).map(|s| s.name() == "video/x-h264"))
            .unwrap_or(false);
        if is_h264 && !parse_sink.is_linked() {
            // A second H.264 stream cannot link (the pad is taken): the first one wins.
            let _ = pad.link(&parse_sink);
        }
    });

    let result = run(&pipeline, &appsrc, &appsink, segment, deadline);
    // Always back to Null, or the elements and their threads leak.
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn run(
    pipeline: &gst::Pipeline,
    appsrc: &gst_app::AppSrc,
    appsink: &gst_app::AppSink,
    segment: &[u8],
    deadline: Instant,
) -> Result<Vec<u8>> {
    if segment.is_empty() {
        return Err(Error::Unsupported("poster: empty segment".into()));
    }
    pipeline
        .set_state(gst::State::Playing)
        .map_err(|e| Error::Gst(format!("poster pipeline: {e}")))?;
    appsrc
        .push_buffer(gst::Buffer::from_slice(segment.to_vec()))
        .map_err(|e| Error::Gst(format!("poster input: {e:?}")))?;
    let _ = appsrc.end_of_stream();
    let bus = pipeline
        .bus()
        .ok_or_else(|| Error::Gst("poster pipeline without bus".into()))?;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(Error::Stalled(
                "poster: no frame before the deadline".into(),
            ));
        }
        if let Some(sample) = appsink.try_pull_sample(gst::ClockTime::from_nseconds(
            BUS_POLL.min(deadline - now).as_nanos() as u64,
        )) {
            let buffer = sample
                .buffer()
                .ok_or_else(|| Error::Gst("poster sample without buffer".into()))?;
            let map = buffer
                .map_readable()
                .map_err(|e| Error::Gst(format!("poster buffer: {e}")))?;
            return Ok(map.as_slice().to_vec());
        }
        while let Some(message) = bus.pop() {
            match message.view() {
                gst::MessageView::Error(err) => {
                    return Err(Error::Unsupported(format!("poster: {}", err.error())));
                }
                gst::MessageView::Eos(_) => {
                    return Err(Error::Unsupported(
                        "poster: the segment has no decodable H.264 frame".into(),
                    ));
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skip (with the reason) where GStreamer lacks an element the test needs.
    fn have(elements: &[&str]) -> bool {
        if init_gst().is_err() {
            eprintln!("skipped: GStreamer does not start");
            return false;
        }
        let missing: Vec<_> = elements
            .iter()
            .filter(|e| gst::ElementFactory::find(e).is_none())
            .collect();
        if !missing.is_empty() {
            eprintln!("skipped: missing GStreamer elements {missing:?}");
        }
        missing.is_empty()
    }

    /// MPEG-TS made by a real GStreamer pipeline (`gst-launch` syntax ending in a muxer), read
    /// from an appsink.
    fn make_ts(description: &str) -> Vec<u8> {
        let pipeline = gst::parse::launch(&format!("{description} ! appsink name=out sync=false"))
            .expect("test pipeline")
            .downcast::<gst::Pipeline>()
            .expect("a pipeline");
        let sink = pipeline
            .by_name("out")
            .expect("appsink")
            .downcast::<gst_app::AppSink>()
            .expect("an appsink");
        pipeline.set_state(gst::State::Playing).expect("playing");
        let mut ts = Vec::new();
        while let Ok(sample) = sink.pull_sample() {
            let buffer = sample.buffer().expect("buffer");
            ts.extend_from_slice(&buffer.map_readable().expect("map"));
        }
        pipeline.set_state(gst::State::Null).expect("null");
        ts
    }

    fn h264_ts(width: u32, height: u32) -> Vec<u8> {
        make_ts(&format!(
            "videotestsrc num-buffers=30 ! video/x-raw,width={width},height={height},framerate=15/1 \
             ! x264enc speed-preset=ultrafast key-int-max=15 ! h264parse ! mpegtsmux"
        ))
    }

    /// Width and height from the JPEG's start-of-frame marker (SOF0..SOF15 but DHT, JPG, DAC).
    fn jpeg_size(jpeg: &[u8]) -> Option<(u16, u16)> {
        let mut i = 2;
        while i + 9 < jpeg.len() {
            if jpeg[i] != 0xFF {
                return None;
            }
            let marker = jpeg[i + 1];
            let len = usize::from(u16::from_be_bytes([jpeg[i + 2], jpeg[i + 3]]));
            if (0xC0..=0xCF).contains(&marker) && ![0xC4, 0xC8, 0xCC].contains(&marker) {
                let h = u16::from_be_bytes([jpeg[i + 5], jpeg[i + 6]]);
                let w = u16::from_be_bytes([jpeg[i + 7], jpeg[i + 8]]);
                return Some((w, h));
            }
            i += 2 + len;
        }
        None
    }

    const VIDEO: &[&str] = &["videotestsrc", "x264enc", "mpegtsmux", "appsink"];

    #[test]
    fn poster_of_an_h264_segment_is_a_jpeg_of_its_size() {
        if !have(POSTER_ELEMENTS) || !have(VIDEO) {
            return;
        }
        let ts = h264_ts(320, 180);
        let jpeg = poster_jpeg(&ts, SegmentFormat::MpegTs, POSTER_TIMEOUT).expect("poster");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
        assert!(jpeg.ends_with(&[0xFF, 0xD9]), "JPEG not complete");
        assert_eq!(jpeg_size(&jpeg), Some((320, 180)));
    }

    #[test]
    fn poster_takes_the_video_of_a_segment_with_audio() {
        if !have(POSTER_ELEMENTS) || !have(VIDEO) || !have(&["audiotestsrc", "avenc_aac"]) {
            return;
        }
        let ts = make_ts(
            "videotestsrc num-buffers=30 ! video/x-raw,width=256,height=144,framerate=15/1 \
             ! x264enc speed-preset=ultrafast ! h264parse ! queue ! mux. \
             audiotestsrc num-buffers=40 ! avenc_aac ! aacparse ! queue ! mux. mpegtsmux name=mux",
        );
        let jpeg = poster_jpeg(&ts, SegmentFormat::MpegTs, POSTER_TIMEOUT).expect("poster");
        assert_eq!(jpeg_size(&jpeg), Some((256, 144)));
    }

    /// A CMAF segment after its init, as the recorder hands it over: fragmented MP4 from a real
    /// muxer (`ftyp` + `moov` with `mvex`, then `moof` + `mdat` pairs).
    fn h264_fmp4(width: u32, height: u32) -> Vec<u8> {
        make_ts(&format!(
            "videotestsrc num-buffers=30 ! video/x-raw,width={width},height={height},framerate=15/1 \
             ! x264enc speed-preset=ultrafast key-int-max=15 ! h264parse \
             ! mp4mux fragment-duration=500 streamable=true"
        ))
    }

    #[test]
    fn poster_of_a_cmaf_segment_after_its_init_is_a_jpeg_of_its_size() {
        if !have(POSTER_ELEMENTS) || !have(VIDEO) || !have(&["mp4mux"]) {
            return;
        }
        let fmp4 = h264_fmp4(320, 180);
        assert_eq!(&fmp4[4..8], b"ftyp", "an init segment first");
        let jpeg = poster_jpeg(&fmp4, SegmentFormat::Cmaf, POSTER_TIMEOUT).expect("poster");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]), "not a JPEG");
        assert_eq!(jpeg_size(&jpeg), Some((320, 180)));
        // The same bytes read as MPEG-TS are no segment at all: the format decides the demuxer.
        assert!(poster_jpeg(&fmp4, SegmentFormat::MpegTs, Duration::from_secs(2)).is_err());
    }

    /// Hostile CMAF: an init alone, a segment without its init, boxes that lie about their size.
    #[test]
    fn poster_of_hostile_cmaf_segments_is_an_error_in_bounded_time() {
        if !have(POSTER_ELEMENTS) || !have(VIDEO) || !have(&["mp4mux"]) {
            return;
        }
        let fmp4 = h264_fmp4(160, 90);
        let moof = fmp4
            .windows(4)
            .position(|w| w == b"moof")
            .expect("a fragment")
            - 4;
        let mut huge_box = fmp4[..moof].to_vec();
        huge_box.extend_from_slice(&u32::MAX.to_be_bytes());
        huge_box.extend_from_slice(b"moof");
        huge_box.extend_from_slice(&[0; 64]);
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            ("init only", fmp4[..moof].to_vec()),
            ("segment without its init", fmp4[moof..].to_vec()),
            ("a box claiming 4 GiB", huge_box),
            ("zero-sized boxes", [0u8; 4096].to_vec()),
        ];
        let timeout = Duration::from_secs(5);
        for (name, segment) in cases {
            let started = Instant::now();
            let result = poster_jpeg(&segment, SegmentFormat::Cmaf, timeout);
            assert!(
                started.elapsed() < timeout + Duration::from_secs(2),
                "{name}: took {:?}",
                started.elapsed()
            );
            assert!(result.is_err(), "{name}: made a poster");
        }
    }

    /// Hostile or broken segments: each is an error well within the deadline, never a panic.
    #[test]
    fn poster_of_hostile_segments_is_an_error_in_bounded_time() {
        if !have(POSTER_ELEMENTS) || !have(VIDEO) || !have(&["audiotestsrc", "avenc_aac"]) {
            return;
        }
        let valid = h264_ts(160, 90);
        let mut sync_bytes_only = Vec::new();
        for _ in 0..2000 {
            sync_bytes_only.push(0x47);
            sync_bytes_only.extend_from_slice(&[0xFF; 187]);
        }
        let mut corrupted = valid.clone();
        // Keep the TS headers and tables, scramble every payload byte after them.
        for (i, b) in corrupted.iter_mut().enumerate().skip(188 * 3) {
            if i % 188 >= 4 {
                *b = (i as u8).wrapping_mul(31);
            }
        }
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("empty", Vec::new()),
            (
                "garbage",
                (0..200_000u32).map(|i| (i * 7919 % 251) as u8).collect(),
            ),
            ("TS sync bytes, no tables", sync_bytes_only),
            ("truncated after the tables", valid[..188 * 4].to_vec()),
            ("scrambled payloads", corrupted),
            (
                "audio only",
                make_ts("audiotestsrc num-buffers=40 ! avenc_aac ! aacparse ! mpegtsmux"),
            ),
        ];
        let timeout = Duration::from_secs(5);
        for (name, segment) in cases {
            let started = Instant::now();
            let result = poster_jpeg(&segment, SegmentFormat::MpegTs, timeout);
            assert!(
                started.elapsed() < timeout + Duration::from_secs(2),
                "{name}: took {:?}",
                started.elapsed()
            );
            if let Ok(jpeg) = result {
                // A scrambled stream may still decode to a (grey) frame; then it is a real JPEG.
                assert!(name == "scrambled payloads", "{name}: made a poster");
                assert!(jpeg.starts_with(&[0xFF, 0xD8]), "{name}: not a JPEG");
            }
        }
    }

    #[tokio::test]
    async fn gst_poster_answers_through_the_recorder_trait() {
        if !have(POSTER_ELEMENTS) || !have(VIDEO) {
            return;
        }
        let mut maker = GstPoster::detect().expect("every poster element is installed");
        // A short deadline: the garbage below never reaches the end of a stream.
        maker.timeout = Duration::from_secs(3);
        let jpeg = maker
            .poster(Bytes::from(h264_ts(160, 90)), SegmentFormat::MpegTs)
            .await
            .expect("poster");
        assert_eq!(jpeg_size(&jpeg), Some((160, 90)));
        for format in [SegmentFormat::MpegTs, SegmentFormat::Cmaf] {
            let err = maker
                .poster(Bytes::from_static(b"not a segment"), format)
                .await;
            assert!(
                matches!(err, Err(roomcast_recorder::Error::Poster(_))),
                "{format:?}"
            );
        }
    }
}
