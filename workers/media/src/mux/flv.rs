//! RTMP media messages as FLV tags, with the codec checks that turn unsupported input into a
//! clear error instead of a hang, and the FLV byte stream GStreamer's `flvdemux` reads.
//!
//! [`FlvMuxer`] holds tags back until it knows the stream's shape (an AVC sequence header, and
//! an AAC one or one second of video without audio), then releases the held tags; after that
//! every tag passes straight through. [`stream_header`] and [`Tag::to_flv`] make the bytes for
//! the transcoder. Pure: tags in, tags out.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{Error, Result};

const TAG_AUDIO: u8 = 8;
const TAG_VIDEO: u8 = 9;
const FLV_CODEC_AVC: u8 = 7;
const FLV_SOUND_AAC: u8 = 10;
/// Video without audio for this long (in stream time) means a video-only stream.
const AUDIO_WAIT_MS: u32 = 1_000;
/// Tags held before the stream's shape is known; past this the publish is refused.
const MAX_HELD_BYTES: usize = 8 * 1024 * 1024;

/// `AVCPacketType` of a coded frame, and the FLV frame type of a keyframe.
const AVC_NALU: u8 = 1;
const FRAME_TYPE_KEY: u8 = 1;

/// What the publisher sends, once known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamShape {
    pub has_audio: bool,
}

/// One RTMP audio or video message: an FLV tag body with its timestamp.
#[derive(Clone, Debug, PartialEq)]
pub struct Tag {
    pub kind: TagKind,
    pub timestamp_ms: u32,
    pub data: Bytes,
}

impl Tag {
    /// For an AVC video frame (not a sequence header or end of sequence): whether it is a
    /// keyframe. `None` for every other tag.
    pub fn avc_keyframe(&self) -> Option<bool> {
        match (self.kind, self.data.first(), self.data.get(1)) {
            (TagKind::Video, Some(&flags), Some(&AVC_NALU)) => Some(flags >> 4 == FRAME_TYPE_KEY),
            _ => None,
        }
    }

    /// The tag in FLV framing, with its trailing PreviousTagSize.
    pub fn to_flv(&self) -> Bytes {
        tag(self.kind, self.timestamp_ms, &self.data)
    }
}

/// Output of [`FlvMuxer::push`].
#[derive(Debug, PartialEq)]
pub enum FlvOutput {
    /// Still waiting for the stream's shape.
    Held,
    /// The shape just became known: start the outputs, then give them these held tags.
    Start(StreamShape, Vec<Tag>),
    /// A tag of a started stream.
    Tag(Tag),
    /// A tag that is dropped (audio after the stream was found to be video-only).
    Dropped,
}

/// Which kind of RTMP media message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TagKind {
    Audio,
    Video,
}

#[derive(Default)]
pub struct FlvMuxer {
    shape: Option<StreamShape>,
    held: Vec<Tag>,
    held_bytes: usize,
    avc_header: bool,
    aac_header: bool,
    first_video_ms: Option<u32>,
    metadata_says_no_audio: bool,
}

impl FlvMuxer {
    pub fn new() -> Self {
        Self::default()
    }

    /// The publisher's metadata named no audio codec: do not wait for audio.
    pub fn metadata_without_audio(&mut self) {
        self.metadata_says_no_audio = true;
    }

    pub fn shape(&self) -> Option<StreamShape> {
        self.shape
    }

    /// Take one RTMP audio or video message (FLV tag body) with its timestamp in ms.
    pub fn push(&mut self, kind: TagKind, timestamp_ms: u32, data: Bytes) -> Result<FlvOutput> {
        if data.is_empty() {
            return Ok(FlvOutput::Dropped);
        }
        match kind {
            TagKind::Video => check_video(&data)?,
            TagKind::Audio => check_audio(&data)?,
        }
        if let Some(shape) = self.shape {
            if kind == TagKind::Audio && !shape.has_audio {
                return Ok(FlvOutput::Dropped);
            }
            return Ok(FlvOutput::Tag(Tag {
                kind,
                timestamp_ms,
                data,
            }));
        }
        match kind {
            TagKind::Video => {
                if data.len() > 1 && data[1] == 0 {
                    self.avc_header = true;
                }
                if self.avc_header && self.first_video_ms.is_none() {
                    self.first_video_ms = Some(timestamp_ms);
                }
            }
            TagKind::Audio => {
                if data.len() > 1 && data[1] == 0 {
                    self.aac_header = true;
                }
            }
        }
        self.held_bytes += data.len();
        self.held.push(Tag {
            kind,
            timestamp_ms,
            data,
        });
        if self.held_bytes > MAX_HELD_BYTES {
            return Err(Error::Unsupported(
                "no H.264 sequence header in the first 8 MiB of the stream".into(),
            ));
        }
        let waited_for_audio = match self.first_video_ms {
            Some(first) => timestamp_ms.saturating_sub(first) >= AUDIO_WAIT_MS,
            None => false,
        };
        let shape = if self.avc_header && self.aac_header {
            StreamShape { has_audio: true }
        } else if self.avc_header && (self.metadata_says_no_audio || waited_for_audio) {
            StreamShape { has_audio: false }
        } else {
            return Ok(FlvOutput::Held);
        };
        self.shape = Some(shape);
        let mut held = std::mem::take(&mut self.held);
        held.retain(|t| t.kind == TagKind::Video || shape.has_audio);
        self.held_bytes = 0;
        Ok(FlvOutput::Start(shape, held))
    }
}

/// The FLV header and the given tags: the start of the byte stream for `flvdemux`.
pub fn stream_header(shape: StreamShape, tags: &[Tag]) -> Bytes {
    let size: usize = tags.iter().map(|t| t.data.len() + 15).sum();
    let mut out = BytesMut::with_capacity(13 + size);
    out.put_slice(&header(shape.has_audio));
    for t in tags {
        out.put_slice(&t.to_flv());
    }
    out.freeze()
}

/// The 9-byte FLV header plus PreviousTagSize0.
pub fn header(has_audio: bool) -> [u8; 13] {
    let flags = if has_audio { 0x05 } else { 0x01 };
    [b'F', b'L', b'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0]
}

/// One FLV tag with its trailing PreviousTagSize.
pub fn tag(kind: TagKind, timestamp_ms: u32, data: &[u8]) -> Bytes {
    let kind = match kind {
        TagKind::Audio => TAG_AUDIO,
        TagKind::Video => TAG_VIDEO,
    };
    let len = data.len() as u32;
    let mut out = BytesMut::with_capacity(data.len() + 15);
    out.put_u8(kind);
    out.put_slice(&len.to_be_bytes()[1..]);
    out.put_slice(&(timestamp_ms & 0x00ff_ffff).to_be_bytes()[1..]);
    out.put_u8((timestamp_ms >> 24) as u8);
    out.put_slice(&[0, 0, 0]);
    out.put_slice(data);
    out.put_u32(len + 11);
    out.freeze()
}

fn check_video(data: &[u8]) -> Result<()> {
    let first = data[0];
    if first & 0x80 != 0 && data.len() >= 5 {
        // Enhanced RTMP: a FourCC follows (hvc1, av01, vp09).
        let fourcc = String::from_utf8_lossy(&data[1..5]).into_owned();
        return Err(Error::Unsupported(format!(
            "video codec {fourcc:?} (enhanced RTMP); publish H.264"
        )));
    }
    match first & 0x0f {
        FLV_CODEC_AVC => Ok(()),
        12 => Err(Error::Unsupported("video codec HEVC; publish H.264".into())),
        other => Err(Error::Unsupported(format!(
            "FLV video codec id {other}; publish H.264"
        ))),
    }
}

fn check_audio(data: &[u8]) -> Result<()> {
    match data[0] >> 4 {
        FLV_SOUND_AAC => Ok(()),
        2 => Err(Error::Unsupported("audio codec MP3; publish AAC".into())),
        other => Err(Error::Unsupported(format!(
            "FLV audio format {other}; publish AAC"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc_header() -> Bytes {
        Bytes::from_static(&[0x17, 0, 0, 0, 0, 1, 2, 3])
    }
    fn avc_frame(key: bool) -> Bytes {
        Bytes::from(vec![if key { 0x17 } else { 0x27 }, 1, 0, 0, 0, 9, 9])
    }
    fn aac_header() -> Bytes {
        Bytes::from_static(&[0xaf, 0, 0x12, 0x10])
    }

    #[test]
    fn tags_are_held_until_both_sequence_headers_arrive() {
        let mut m = FlvMuxer::new();
        assert_eq!(
            m.push(TagKind::Video, 0, avc_header()).expect("ok"),
            FlvOutput::Held
        );
        match m.push(TagKind::Audio, 0, aac_header()).expect("ok") {
            FlvOutput::Start(shape, tags) => {
                assert!(shape.has_audio);
                assert_eq!(tags.len(), 2);
                let bytes = stream_header(shape, &tags);
                assert_eq!(&bytes[..3], b"FLV");
                assert_eq!(bytes[4], 0x05);
                // header + two tags
                assert_eq!(bytes.len(), 13 + (11 + 8 + 4) + (11 + 4 + 4));
            }
            other => panic!("expected start, got {other:?}"),
        }
        assert!(matches!(
            m.push(TagKind::Video, 40, avc_frame(false)).expect("ok"),
            FlvOutput::Tag(_)
        ));
    }

    #[test]
    fn video_only_stream_starts_after_a_second_without_audio() {
        let mut m = FlvMuxer::new();
        assert_eq!(
            m.push(TagKind::Video, 0, avc_header()).expect("ok"),
            FlvOutput::Held
        );
        assert_eq!(
            m.push(TagKind::Video, 500, avc_frame(true)).expect("ok"),
            FlvOutput::Held
        );
        match m.push(TagKind::Video, 1000, avc_frame(false)).expect("ok") {
            FlvOutput::Start(shape, tags) => {
                assert!(!shape.has_audio);
                assert_eq!(tags.len(), 3);
                assert_eq!(stream_header(shape, &tags)[4], 0x01);
            }
            other => panic!("expected start, got {other:?}"),
        }
        assert_eq!(
            m.push(TagKind::Audio, 1040, aac_header()).expect("ok"),
            FlvOutput::Dropped
        );
    }

    #[test]
    fn hevc_and_mp3_are_refused_with_a_clear_error() {
        let mut m = FlvMuxer::new();
        let err = m
            .push(TagKind::Video, 0, Bytes::from_static(&[0x1c, 0, 0, 0, 0]))
            .expect_err("hevc");
        assert!(err.to_string().contains("HEVC"), "{err}");
        let err = m
            .push(TagKind::Video, 0, Bytes::from_static(b"\x90hvc1xx"))
            .expect_err("enhanced");
        assert!(err.to_string().contains("hvc1"), "{err}");
        let err = m
            .push(TagKind::Audio, 0, Bytes::from_static(&[0x2f, 0xff]))
            .expect_err("mp3");
        assert!(err.to_string().contains("MP3"), "{err}");
    }

    #[test]
    fn tag_layout_matches_the_flv_spec() {
        let t = tag(TagKind::Video, 0x0102_0304, &[0xaa, 0xbb]);
        assert_eq!(
            &t[..],
            &[
                9, 0, 0, 2, 0x02, 0x03, 0x04, 0x01, 0, 0, 0, 0xaa, 0xbb, 0, 0, 0, 13
            ]
        );
    }
}
