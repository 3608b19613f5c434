//! What the passthrough muxer must know of the two codecs a publisher sends: the H.264 decoder
//! configuration (parameter sets, NAL length size, picture size and frame rate from the SPS) and
//! the AAC AudioSpecificConfig (for ADTS headers). Pure parsing, no allocation on the hot path.

use bytes::Bytes;

use crate::error::{Error, Result};

/// NAL unit types this crate looks at.
pub const NAL_SPS: u8 = 7;
pub const NAL_AUD: u8 = 9;

fn malformed(what: &str) -> Error {
    Error::Unsupported(format!("malformed {what}"))
}

/// An `AVCDecoderConfigurationRecord` (the body of an FLV AVC sequence header).
#[derive(Clone, Debug, PartialEq)]
pub struct AvcConfig {
    /// Bytes of the length prefix of each NAL unit in a frame (1, 2 or 4).
    pub nal_length_size: usize,
    pub sps: Vec<Bytes>,
    pub pps: Vec<Bytes>,
    /// RFC 6381 codec string, e.g. `avc1.64001f`.
    pub codecs: String,
    /// From the first SPS.
    pub width: u32,
    pub height: u32,
    /// From the SPS's VUI timing info, when present.
    pub frame_rate: Option<f64>,
}

impl AvcConfig {
    pub fn parse(record: &[u8]) -> Result<Self> {
        let bad = || malformed("H.264 decoder configuration");
        if record.len() < 7 || record[0] != 1 {
            return Err(bad());
        }
        let nal_length_size = usize::from(record[4] & 0x03) + 1;
        if nal_length_size == 3 {
            return Err(bad());
        }
        let mut at = 5;
        let mut read_sets = |count_mask: u8| -> Result<Vec<Bytes>> {
            let count = usize::from(*record.get(at).ok_or_else(bad)? & count_mask);
            at += 1;
            let mut sets = Vec::with_capacity(count);
            for _ in 0..count {
                let len = usize::from(u16::from_be_bytes([
                    *record.get(at).ok_or_else(bad)?,
                    *record.get(at + 1).ok_or_else(bad)?,
                ]));
                let set = record.get(at + 2..at + 2 + len).ok_or_else(bad)?;
                sets.push(Bytes::copy_from_slice(set));
                at += 2 + len;
            }
            Ok(sets)
        };
        let sps = read_sets(0x1f)?;
        let pps = read_sets(0xff)?;
        let first = sps.first().ok_or_else(bad)?;
        let info = SpsInfo::parse(first)?;
        Ok(AvcConfig {
            nal_length_size,
            codecs: format!("avc1.{:02x}{:02x}{:02x}", record[1], record[2], record[3]),
            width: info.width,
            height: info.height,
            frame_rate: info.frame_rate,
            sps,
            pps,
        })
    }
}

/// The fields of a sequence parameter set a playlist needs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpsInfo {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Option<f64>,
}

impl SpsInfo {
    /// Parse an SPS NAL unit (with its one-byte NAL header), ITU-T H.264 7.3.2.1.1.
    pub fn parse(nal: &[u8]) -> Result<Self> {
        let rbsp = unescape(nal.get(1..).unwrap_or_default());
        let mut r = BitReader::new(&rbsp);
        let bad = || malformed("H.264 SPS");
        let profile_idc = r.bits(8).ok_or_else(bad)?;
        r.bits(16).ok_or_else(bad)?; // constraint flags, level_idc
        r.ue().ok_or_else(bad)?; // seq_parameter_set_id
        let mut chroma_format_idc = 1;
        if matches!(
            profile_idc,
            100 | 110 | 122 | 244 | 44 | 83 | 86 | 118 | 128 | 138 | 139 | 134 | 135
        ) {
            chroma_format_idc = r.ue().ok_or_else(bad)?;
            if chroma_format_idc == 3 {
                r.bits(1).ok_or_else(bad)?; // separate_colour_plane_flag
            }
            r.ue().ok_or_else(bad)?; // bit_depth_luma_minus8
            r.ue().ok_or_else(bad)?; // bit_depth_chroma_minus8
            r.bits(1).ok_or_else(bad)?; // qpprime_y_zero_transform_bypass_flag
            if r.bits(1).ok_or_else(bad)? == 1 {
                let lists = if chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bits(1).ok_or_else(bad)? == 1 {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 }).ok_or_else(bad)?;
                    }
                }
            }
        }
        r.ue().ok_or_else(bad)?; // log2_max_frame_num_minus4
        match r.ue().ok_or_else(bad)? {
            0 => {
                r.ue().ok_or_else(bad)?; // log2_max_pic_order_cnt_lsb_minus4
            }
            1 => {
                r.bits(1).ok_or_else(bad)?;
                r.se().ok_or_else(bad)?;
                r.se().ok_or_else(bad)?;
                for _ in 0..r.ue().ok_or_else(bad)? {
                    r.se().ok_or_else(bad)?;
                }
            }
            _ => {}
        }
        r.ue().ok_or_else(bad)?; // max_num_ref_frames
        r.bits(1).ok_or_else(bad)?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue().ok_or_else(bad)? + 1;
        let height_map_units = r.ue().ok_or_else(bad)? + 1;
        let frame_mbs_only = r.bits(1).ok_or_else(bad)?;
        if frame_mbs_only == 0 {
            r.bits(1).ok_or_else(bad)?; // mb_adaptive_frame_field_flag
        }
        r.bits(1).ok_or_else(bad)?; // direct_8x8_inference_flag
        let (mut crop_x, mut crop_y) = (0, 0);
        if r.bits(1).ok_or_else(bad)? == 1 {
            let (left, right) = (r.ue().ok_or_else(bad)?, r.ue().ok_or_else(bad)?);
            let (top, bottom) = (r.ue().ok_or_else(bad)?, r.ue().ok_or_else(bad)?);
            let (sub_w, sub_h) = match chroma_format_idc {
                0 => (1, 1),
                1 => (2, 2),
                2 => (2, 1),
                _ => (1, 1),
            };
            crop_x = sub_w * (left + right);
            crop_y = sub_h * (2 - frame_mbs_only) * (top + bottom);
        }
        let width = (width_mbs * 16).saturating_sub(crop_x);
        let height = ((2 - frame_mbs_only) * height_map_units * 16).saturating_sub(crop_y);
        // VUI is optional and often truncated; the frame rate is a hint, so a short read is None.
        let frame_rate = if r.bits(1) == Some(1) {
            vui_frame_rate(&mut r)
        } else {
            None
        };
        Ok(SpsInfo {
            width: u32::try_from(width).map_err(|_| bad())?,
            height: u32::try_from(height).map_err(|_| bad())?,
            frame_rate,
        })
    }
}

fn skip_scaling_list(r: &mut BitReader<'_>, size: usize) -> Option<()> {
    let (mut last, mut next) = (8i64, 8i64);
    for _ in 0..size {
        if next != 0 {
            next = (last + r.se()? + 256) % 256;
        }
        last = if next == 0 { last } else { next };
    }
    Some(())
}

/// E.2.1: skip to timing_info and turn it into frames per second.
fn vui_frame_rate(r: &mut BitReader<'_>) -> Option<f64> {
    if r.bits(1)? == 1 {
        // aspect_ratio_info_present_flag
        if r.bits(8)? == 255 {
            r.bits(32)?; // sar_width, sar_height
        }
    }
    if r.bits(1)? == 1 {
        r.bits(1)?; // overscan_appropriate_flag
    }
    if r.bits(1)? == 1 {
        r.bits(4)?; // video_format, video_full_range_flag
        if r.bits(1)? == 1 {
            r.bits(24)?; // colour_primaries, transfer_characteristics, matrix_coefficients
        }
    }
    if r.bits(1)? == 1 {
        r.ue()?;
        r.ue()?;
    }
    if r.bits(1)? == 0 {
        return None;
    }
    let units_in_tick = r.bits(32)?;
    let time_scale = r.bits(32)?;
    (units_in_tick > 0 && time_scale > 0).then(|| time_scale as f64 / (2.0 * units_in_tick as f64))
}

/// Drop emulation-prevention bytes (`00 00 03` -> `00 00`).
fn unescape(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len());
    let mut zeros = 0;
    for &b in data {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> BitReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        BitReader { data, pos: 0 }
    }

    fn bits(&mut self, n: u32) -> Option<u64> {
        let mut v = 0u64;
        for _ in 0..n {
            let byte = *self.data.get(self.pos / 8)?;
            v = (v << 1) | u64::from((byte >> (7 - self.pos % 8)) & 1);
            self.pos += 1;
        }
        Some(v)
    }

    /// Unsigned Exp-Golomb.
    fn ue(&mut self) -> Option<u64> {
        let mut zeros = 0;
        while self.bits(1)? == 0 {
            zeros += 1;
            if zeros > 31 {
                return None;
            }
        }
        Some((1u64 << zeros) - 1 + self.bits(zeros)?)
    }

    /// Signed Exp-Golomb.
    fn se(&mut self) -> Option<i64> {
        let k = self.ue()? as i64;
        Some(if k % 2 == 1 { (k + 1) / 2 } else { -(k / 2) })
    }
}

/// The AudioSpecificConfig of an AAC stream, reduced to what an ADTS header carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AacConfig {
    /// MPEG-4 audio object type of the core codec (2 = AAC-LC).
    pub object_type: u8,
    pub sampling_index: u8,
    pub channels: u8,
}

impl AacConfig {
    /// ISO/IEC 14496-3 1.6.2.1. HE-AAC signalled explicitly (object type 5 or 29) is carried
    /// as its AAC-LC core, which is what ADTS can describe; decoders find the SBR themselves.
    pub fn parse(asc: &[u8]) -> Result<Self> {
        let mut r = BitReader::new(asc);
        let bad = || malformed("AAC AudioSpecificConfig");
        let mut object_type = read_object_type(&mut r).ok_or_else(bad)?;
        let sampling_index = r.bits(4).ok_or_else(bad)? as u8;
        if sampling_index == 15 {
            return Err(Error::Unsupported(
                "AAC with an explicit sampling frequency; use a standard rate such as 44.1 or 48 kHz"
                    .into(),
            ));
        }
        let channels = r.bits(4).ok_or_else(bad)? as u8;
        if object_type == 5 || object_type == 29 {
            // The extension's (SBR) sampling rate; ADTS carries the core's, read above.
            if r.bits(4).ok_or_else(bad)? == 15 {
                r.bits(24).ok_or_else(bad)?;
            }
            object_type = read_object_type(&mut r).ok_or_else(bad)?;
        }
        if !(1..=4).contains(&object_type) || channels == 0 || channels > 7 {
            return Err(Error::Unsupported(format!(
                "AAC object type {object_type} with channel configuration {channels}; publish AAC-LC, mono or stereo"
            )));
        }
        Ok(AacConfig {
            object_type,
            sampling_index,
            channels,
        })
    }

    /// The 7-byte ADTS header (no CRC) of a raw frame of `payload_len` bytes.
    pub fn adts_header(&self, payload_len: usize) -> [u8; 7] {
        let len = payload_len + 7;
        let profile = self.object_type - 1;
        [
            0xff,
            0xf1,
            (profile << 6) | (self.sampling_index << 2) | (self.channels >> 2),
            ((self.channels & 3) << 6) | ((len >> 11) as u8 & 0x03),
            (len >> 3) as u8,
            ((len & 7) as u8) << 5 | 0x1f,
            0xfc,
        ]
    }
}

fn read_object_type(r: &mut BitReader<'_>) -> Option<u8> {
    let t = r.bits(5)? as u8;
    if t == 31 {
        Some(32 + r.bits(6)? as u8)
    } else {
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// x264's SPS for 854x480 High@3.1 with VUI timing for 30 fps (from ffmpeg -c:v libx264).
    const SPS_854X480: &[u8] = &[
        0x67, 0x64, 0x00, 0x1f, 0xac, 0xd9, 0x40, 0xd8, 0x3d, 0xe6, 0xf0, 0x11, 0x00, 0x00, 0x03,
        0x00, 0x01, 0x00, 0x00, 0x03, 0x00, 0x3c, 0x0f, 0x18, 0x31, 0x96,
    ];

    #[test]
    fn sps_gives_cropped_size_and_frame_rate() {
        let info = SpsInfo::parse(SPS_854X480).expect("sps");
        assert_eq!((info.width, info.height), (854, 480));
        assert_eq!(info.frame_rate, Some(30.0));
    }

    #[test]
    fn decoder_configuration_record_is_parsed() {
        let mut record = vec![1, 0x64, 0x00, 0x1f, 0xff, 0xe1];
        record.extend_from_slice(&(SPS_854X480.len() as u16).to_be_bytes());
        record.extend_from_slice(SPS_854X480);
        record.extend_from_slice(&[1, 0, 4, 0x68, 0xeb, 0xe3, 0xcb]);
        let cfg = AvcConfig::parse(&record).expect("avcC");
        assert_eq!(cfg.nal_length_size, 4);
        assert_eq!(cfg.codecs, "avc1.64001f");
        assert_eq!((cfg.width, cfg.height), (854, 480));
        assert_eq!(cfg.sps.len(), 1);
        assert_eq!(&cfg.pps[0][..], &[0x68, 0xeb, 0xe3, 0xcb]);
        assert!(AvcConfig::parse(&record[..10]).is_err());
    }

    #[test]
    fn aac_lc_gives_the_adts_header_ffmpeg_writes() {
        // AAC-LC, 44.1 kHz, stereo.
        let cfg = AacConfig::parse(&[0x12, 0x10]).expect("asc");
        assert_eq!(
            cfg,
            AacConfig {
                object_type: 2,
                sampling_index: 4,
                channels: 2
            }
        );
        assert_eq!(
            cfg.adts_header(371),
            [0xff, 0xf1, 0x50, 0x80, 0x2f, 0x5f, 0xfc]
        );
    }

    #[test]
    fn he_aac_is_carried_as_its_core_and_odd_configs_are_refused() {
        // HE-AAC (SBR) explicit: object type 5, 22.05 kHz core, stereo, extension 44.1 kHz, LC.
        let cfg = AacConfig::parse(&[0x2b, 0x92, 0x08, 0x00]).expect("he-aac");
        assert_eq!(
            (cfg.object_type, cfg.sampling_index, cfg.channels),
            (2, 7, 2)
        );
        let err = AacConfig::parse(&[0x0f, 0x80, 0, 0, 0, 0x10]).expect_err("explicit rate");
        assert!(err.to_string().contains("sampling frequency"), "{err}");
        assert!(AacConfig::parse(&[]).is_err());
    }
}
