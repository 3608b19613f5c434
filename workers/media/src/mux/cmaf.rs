//! CMAF (fragmented MP4) boxes for LL-HLS: the init segment of a rendition (`ftyp` + `moov`
//! with an `avc1`/`avcC` video track and an optional `mp4a`/`esds` audio track) and one
//! fragment (`moof` + `mdat`) per partial segment. ISO/IEC 14496-12 and 14496-15, hand-written:
//! the dozen boxes a CMAF track needs are fewer lines than adapting a general MP4 crate's model
//! to samples that arrive one at a time. Pure: configurations and samples in, bytes out.

use bytes::Bytes;

use crate::mux::codec::{AacConfig, AvcConfig};

/// Track ids in every init segment and fragment this crate writes.
pub const VIDEO_TRACK: u32 = 1;
pub const AUDIO_TRACK: u32 = 2;
/// Video media timescale: MPEG's 90 kHz, the TS path's clock, so both formats share tick math.
pub const VIDEO_TIMESCALE: u32 = 90_000;
/// An AAC frame is 1024 samples; its duration in the audio track's timescale (the sample rate).
pub const AAC_FRAME_SAMPLES: u32 = 1024;

/// `sample_flags` (14496-12 8.8.3.1): a sync sample depends on nothing; any other sample depends
/// on others and is not a sync sample.
const FLAGS_SYNC: u32 = 0x0200_0000;
const FLAGS_NON_SYNC: u32 = 0x0101_0000;

const SAMPLE_RATES: [u32; 13] = [
    96_000, 88_200, 64_000, 48_000, 44_100, 32_000, 24_000, 22_050, 16_000, 12_000, 11_025, 8_000,
    7_350,
];

/// Sample rate of an AAC configuration (its core rate, as carried in ADTS and here).
pub fn aac_sample_rate(aac: &AacConfig) -> u32 {
    SAMPLE_RATES
        .get(usize::from(aac.sampling_index))
        .copied()
        .unwrap_or(48_000)
}

/// One coded sample of a track, times in the track's timescale.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    pub dts: u64,
    pub duration: u32,
    /// Presentation minus decode time (B-frames); 0 for audio.
    pub cts: i32,
    pub keyframe: bool,
    /// AVCC (length-prefixed NAL units) for video, a raw AAC frame for audio.
    pub data: Bytes,
}

/// The samples of one track in one fragment.
pub struct TrackRun<'a> {
    pub track_id: u32,
    pub samples: &'a [Sample],
}

struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn new() -> Self {
        Writer {
            buf: Vec::with_capacity(1024),
        }
    }
    fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }
    fn u16(&mut self, v: u16) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u32(&mut self, v: u32) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.buf.extend_from_slice(&v.to_be_bytes());
        self
    }
    fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(v);
        self
    }
    fn zeros(&mut self, n: usize) -> &mut Self {
        self.buf.resize(self.buf.len() + n, 0);
        self
    }
    /// A box whose body `f` writes; the size is patched in afterwards.
    fn boxed(&mut self, kind: &[u8; 4], f: impl FnOnce(&mut Self)) -> &mut Self {
        let start = self.buf.len();
        self.u32(0).bytes(kind);
        f(self);
        let size = (self.buf.len() - start) as u32;
        self.buf[start..start + 4].copy_from_slice(&size.to_be_bytes());
        self
    }
    /// A full box: version and 24-bit flags before the body.
    fn full(&mut self, kind: &[u8; 4], version: u8, flags: u32, f: impl FnOnce(&mut Self)) {
        self.boxed(kind, |w| {
            w.u32((u32::from(version) << 24) | (flags & 0x00ff_ffff));
            f(w);
        });
    }
}

/// The unity matrix of `mvhd` and `tkhd`.
fn matrix(w: &mut Writer) {
    for v in [0x0001_0000u32, 0, 0, 0, 0x0001_0000, 0, 0, 0, 0x4000_0000] {
        w.u32(v);
    }
}

/// The init segment of a rendition: video, and audio when the rendition has it.
pub fn init_segment(avc: &AvcConfig, aac: Option<&AacConfig>) -> Bytes {
    let mut w = Writer::new();
    w.boxed(b"ftyp", |w| {
        w.bytes(b"iso6").u32(0);
        for brand in [b"iso6", b"cmfc", b"mp41"] {
            w.bytes(brand);
        }
    });
    w.boxed(b"moov", |w| {
        w.full(b"mvhd", 0, 0, |w| {
            w.u32(0).u32(0).u32(1000).u32(0); // times, timescale, duration
            w.u32(0x0001_0000).u16(0x0100).zeros(10);
            matrix(w);
            w.zeros(24).u32(AUDIO_TRACK + 1);
        });
        video_trak(w, avc);
        if let Some(aac) = aac {
            audio_trak(w, aac);
        }
        w.boxed(b"mvex", |w| {
            let tracks: &[u32] = if aac.is_some() {
                &[VIDEO_TRACK, AUDIO_TRACK]
            } else {
                &[VIDEO_TRACK]
            };
            for &id in tracks {
                w.full(b"trex", 0, 0, |w| {
                    w.u32(id).u32(1).u32(0).u32(0).u32(0);
                });
            }
        });
    });
    Bytes::from(w.buf)
}

fn tkhd(w: &mut Writer, track_id: u32, audio: bool, size: (u32, u32)) {
    // Flags: enabled, in movie.
    w.full(b"tkhd", 0, 3, |w| {
        w.u32(0).u32(0).u32(track_id).u32(0).u32(0); // times, id, reserved, duration
        w.zeros(8).u16(0).u16(0); // reserved, layer, alternate group
        w.u16(if audio { 0x0100 } else { 0 }).u16(0);
        matrix(w);
        w.u32(size.0 << 16).u32(size.1 << 16);
    });
}

fn mdia(
    w: &mut Writer,
    timescale: u32,
    handler: &[u8; 4],
    name: &str,
    media_header: impl FnOnce(&mut Writer),
    sample_entry: impl FnOnce(&mut Writer),
) {
    w.boxed(b"mdia", |w| {
        w.full(b"mdhd", 0, 0, |w| {
            w.u32(0).u32(0).u32(timescale).u32(0);
            w.u16(0x55c4).u16(0); // language "und"
        });
        w.full(b"hdlr", 0, 0, |w| {
            w.u32(0)
                .bytes(handler)
                .zeros(12)
                .bytes(name.as_bytes())
                .u8(0);
        });
        w.boxed(b"minf", |w| {
            media_header(w);
            w.boxed(b"dinf", |w| {
                w.full(b"dref", 0, 0, |w| {
                    w.u32(1);
                    w.full(b"url ", 0, 1, |_| {});
                });
            });
            w.boxed(b"stbl", |w| {
                w.full(b"stsd", 0, 0, |w| {
                    w.u32(1);
                    sample_entry(w);
                });
                // Fragmented: the sample tables of the init segment are empty.
                w.full(b"stts", 0, 0, |w| {
                    w.u32(0);
                });
                w.full(b"stsc", 0, 0, |w| {
                    w.u32(0);
                });
                w.full(b"stsz", 0, 0, |w| {
                    w.u32(0).u32(0);
                });
                w.full(b"stco", 0, 0, |w| {
                    w.u32(0);
                });
            });
        });
    });
}

fn video_trak(w: &mut Writer, avc: &AvcConfig) {
    let (width, height) = (avc.width.min(0xffff), avc.height.min(0xffff));
    w.boxed(b"trak", |w| {
        tkhd(w, VIDEO_TRACK, false, (width, height));
        mdia(
            w,
            VIDEO_TIMESCALE,
            b"vide",
            "roomcast video",
            |w| {
                w.full(b"vmhd", 0, 1, |w| {
                    w.zeros(8);
                });
            },
            |w| {
                w.boxed(b"avc1", |w| {
                    w.zeros(6).u16(1); // reserved, data reference index
                    w.zeros(16).u16(width as u16).u16(height as u16);
                    w.u32(0x0048_0000).u32(0x0048_0000).u32(0).u16(1);
                    w.zeros(32).u16(0x0018).u16(0xffff);
                    w.boxed(b"avcC", |w| {
                        w.bytes(&avc_decoder_configuration(avc));
                    });
                });
            },
        );
    });
}

/// The `AVCDecoderConfigurationRecord` (14496-15 5.3.3.1) of a configuration.
pub fn avc_decoder_configuration(avc: &AvcConfig) -> Vec<u8> {
    let profile = avc
        .sps
        .first()
        .and_then(|s| s.get(1..4))
        .unwrap_or(&[0x64, 0, 0x1f]);
    let mut out = vec![1, profile[0], profile[1], profile[2]];
    out.push(0xfc | (avc.nal_length_size.saturating_sub(1) as u8 & 3));
    out.push(0xe0 | (avc.sps.len().min(31) as u8));
    for sps in avc.sps.iter().take(31) {
        out.extend_from_slice(&(sps.len() as u16).to_be_bytes());
        out.extend_from_slice(sps);
    }
    out.push(avc.pps.len().min(255) as u8);
    for pps in avc.pps.iter().take(255) {
        out.extend_from_slice(&(pps.len() as u16).to_be_bytes());
        out.extend_from_slice(pps);
    }
    out
}

/// The two-byte AudioSpecificConfig of what is carried (the AAC core; see [`AacConfig`]).
pub fn audio_specific_config(aac: &AacConfig) -> [u8; 2] {
    let v = (u16::from(aac.object_type) << 11)
        | (u16::from(aac.sampling_index) << 7)
        | (u16::from(aac.channels) << 3);
    v.to_be_bytes()
}

fn audio_trak(w: &mut Writer, aac: &AacConfig) {
    let rate = aac_sample_rate(aac);
    w.boxed(b"trak", |w| {
        tkhd(w, AUDIO_TRACK, true, (0, 0));
        mdia(
            w,
            rate,
            b"soun",
            "roomcast audio",
            |w| {
                w.full(b"smhd", 0, 0, |w| {
                    w.u32(0);
                });
            },
            |w| {
                w.boxed(b"mp4a", |w| {
                    w.zeros(6).u16(1).zeros(8);
                    w.u16(u16::from(aac.channels)).u16(16).u32(0);
                    w.u32(rate.min(0xffff) << 16);
                    w.full(b"esds", 0, 0, |w| esds(w, aac));
                });
            },
        );
    });
}

/// ES_Descriptor with the decoder configuration (14496-1 7.2.6.5); every length fits a byte.
fn esds(w: &mut Writer, aac: &AacConfig) {
    let asc = audio_specific_config(aac);
    let dsi_len = asc.len() as u8;
    let dcd_len = 13 + 2 + dsi_len;
    let es_len = 3 + 2 + dcd_len + 3;
    w.u8(0x03).u8(es_len).u16(0).u8(0);
    w.u8(0x04)
        .u8(dcd_len)
        .u8(0x40)
        .u8(0x15)
        .zeros(3)
        .u32(0)
        .u32(0);
    w.u8(0x05).u8(dsi_len).bytes(&asc);
    w.u8(0x06).u8(1).u8(0x02);
}

/// One fragment: `moof` (one `traf` per non-empty run) and the `mdat` with the samples.
/// `sequence` is the `mfhd` sequence number, increasing across the fragments of a track.
pub fn fragment(sequence: u32, runs: &[TrackRun<'_>]) -> Bytes {
    let runs: Vec<&TrackRun<'_>> = runs.iter().filter(|r| !r.samples.is_empty()).collect();
    let mut w = Writer::new();
    // Where each trun's data_offset goes, patched once the moof's size is known.
    let mut offsets = Vec::with_capacity(runs.len());
    w.boxed(b"moof", |w| {
        w.full(b"mfhd", 0, 0, |w| {
            w.u32(sequence);
        });
        for run in &runs {
            w.boxed(b"traf", |w| {
                // default-base-is-moof: data offsets count from the moof's first byte.
                w.full(b"tfhd", 0, 0x02_0000, |w| {
                    w.u32(run.track_id);
                });
                w.full(b"tfdt", 1, 0, |w| {
                    w.u64(run.samples[0].dts);
                });
                // data-offset, duration, size, flags, composition offset; version 1: signed.
                w.full(b"trun", 1, 0x0f01, |w| {
                    w.u32(run.samples.len() as u32);
                    offsets.push(w.buf.len());
                    w.u32(0);
                    for s in run.samples {
                        w.u32(s.duration).u32(s.data.len() as u32);
                        w.u32(if s.keyframe {
                            FLAGS_SYNC
                        } else {
                            FLAGS_NON_SYNC
                        });
                        w.u32(s.cts as u32);
                    }
                });
            });
        }
    });
    let moof_len = w.buf.len();
    let mut data_at = moof_len + 8;
    for (run, at) in runs.iter().zip(offsets) {
        w.buf[at..at + 4].copy_from_slice(&(data_at as u32).to_be_bytes());
        data_at += run.samples.iter().map(|s| s.data.len()).sum::<usize>();
    }
    w.boxed(b"mdat", |w| {
        for run in &runs {
            for s in run.samples {
                w.bytes(&s.data);
            }
        }
    });
    Bytes::from(w.buf)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const SPS: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xd8, 0x3d, 0xe6, 0xf0, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x18, 0x31, 0x96,
    ];

    pub(crate) fn avc() -> AvcConfig {
        let mut record = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        record.extend_from_slice(&(SPS.len() as u16).to_be_bytes());
        record.extend_from_slice(SPS);
        record.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        AvcConfig::parse(&record).expect("avcC")
    }

    /// Top-level boxes as (type, body).
    fn boxes(data: &[u8]) -> Vec<(String, &[u8])> {
        let mut out = Vec::new();
        let mut at = 0;
        while at + 8 <= data.len() {
            let size = u32::from_be_bytes(data[at..at + 4].try_into().expect("4")) as usize;
            assert!(
                size >= 8 && at + size <= data.len(),
                "box size {size} at {at}"
            );
            let kind = String::from_utf8_lossy(&data[at + 4..at + 8]).into_owned();
            out.push((kind, &data[at + 8..at + size]));
            at += size;
        }
        assert_eq!(at, data.len(), "trailing bytes");
        out
    }

    fn child<'a>(body: &'a [u8], path: &[&str]) -> &'a [u8] {
        let Some((first, rest)) = path.split_first() else {
            return body;
        };
        let found = boxes(body)
            .into_iter()
            .find(|(k, _)| k == first)
            .unwrap_or_else(|| panic!("no {first}"));
        child(found.1, rest)
    }

    #[test]
    fn avcc_round_trips_through_the_parser() {
        let cfg = avc();
        let parsed = AvcConfig::parse(&avc_decoder_configuration(&cfg)).expect("parses");
        assert_eq!(parsed, cfg);
    }

    #[test]
    fn asc_is_rebuilt_from_the_parsed_config() {
        let aac = AacConfig::parse(&[0x12, 0x10]).expect("asc");
        assert_eq!(audio_specific_config(&aac), [0x12, 0x10]);
        assert_eq!(aac_sample_rate(&aac), 44_100);
    }

    #[test]
    fn init_segment_nests_the_sample_entries() {
        let aac = AacConfig::parse(&[0x11, 0x90]).expect("asc"); // LC 48 kHz stereo
        let init = init_segment(&avc(), Some(&aac));
        let top = boxes(&init);
        assert_eq!(
            top.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
            ["ftyp", "moov"]
        );
        let moov = top[1].1;
        let traks: Vec<_> = boxes(moov)
            .into_iter()
            .filter(|(k, _)| k == "trak")
            .collect();
        assert_eq!(traks.len(), 2);
        let stsd = child(traks[0].1, &["mdia", "minf", "stbl", "stsd"]);
        let avc1 = &stsd[8..];
        assert_eq!(&avc1[4..8], b"avc1");
        // width and height in the visual sample entry
        assert_eq!(&avc1[8 + 24..8 + 28], &[0x03, 0x56, 0x01, 0xe0]);
        let mdhd = child(traks[1].1, &["mdia", "mdhd"]);
        assert_eq!(&mdhd[12..16], &48_000u32.to_be_bytes());
        let mvex = child(moov, &["mvex"]);
        assert_eq!(boxes(mvex).len(), 2);
        assert_eq!(boxes(&init_segment(&avc(), None)).len(), 2);
    }

    #[test]
    fn fragment_offsets_point_at_each_tracks_samples() {
        let v = [
            Sample {
                dts: 9000,
                duration: 3000,
                cts: 3000,
                keyframe: true,
                data: Bytes::from_static(b"VVVV"),
            },
            Sample {
                dts: 12_000,
                duration: 3000,
                cts: -1,
                keyframe: false,
                data: Bytes::from_static(b"vv"),
            },
        ];
        let a = [Sample {
            dts: 4410,
            duration: 1024,
            cts: 0,
            keyframe: true,
            data: Bytes::from_static(b"AAA"),
        }];
        let frag = fragment(
            7,
            &[
                TrackRun {
                    track_id: VIDEO_TRACK,
                    samples: &v,
                },
                TrackRun {
                    track_id: AUDIO_TRACK,
                    samples: &a,
                },
                TrackRun {
                    track_id: 3,
                    samples: &[],
                },
            ],
        );
        let top = boxes(&frag);
        assert_eq!(top[0].0, "moof");
        assert_eq!(top[1].0, "mdat");
        assert_eq!(top[1].1, b"VVVVvvAAA");
        let moof_len = top[0].1.len() + 8;
        let trafs: Vec<_> = boxes(top[0].1)
            .into_iter()
            .filter(|(k, _)| k == "traf")
            .collect();
        assert_eq!(trafs.len(), 2, "the empty run has no traf");
        let tfdt = child(trafs[0].1, &["tfdt"]);
        assert_eq!(&tfdt[4..12], &9000u64.to_be_bytes());
        let trun = child(trafs[0].1, &["trun"]);
        assert_eq!(trun[0], 1, "version 1: signed composition offsets");
        let offset = u32::from_be_bytes(trun[8..12].try_into().expect("4")) as usize;
        assert_eq!(&frag[offset..offset + 4], b"VVVV");
        assert_eq!(offset, moof_len + 8);
        assert_eq!(&trun[24..28], &3000u32.to_be_bytes()[..]);
        assert_eq!(&trun[40..44], &(-1i32 as u32).to_be_bytes()[..]);
        let trun = child(trafs[1].1, &["trun"]);
        let offset = u32::from_be_bytes(trun[8..12].try_into().expect("4")) as usize;
        assert_eq!(&frag[offset..offset + 3], b"AAA");
    }
}
