//! An MPEG-TS muxer for the passed-through source rendition: H.264 access units (AVCC, as FLV
//! carries them) and raw AAC frames in, 188-byte packets out. It does what nginx-rtmp's HLS
//! module does: no decoding, no copies beyond the packetisation itself, no threads. That is what
//! makes a source-only room cost about as much as nginx-rtmp instead of a GStreamer graph.
//!
//! Timestamps follow `mpegtsmux`, which muxes the encoded rungs: 90 kHz, one hour added
//! ([`CLOCK_BASE`]) so that DTS before PTS never goes negative. With the same base on every
//! rendition, a player switching between them sees one timeline.

use crate::error::{Error, Result};
use crate::mux::codec::{AacConfig, AvcConfig, NAL_AUD, NAL_SPS};

pub const PACKET: usize = 188;
const PID_PAT: u16 = 0x0000;
const PID_PMT: u16 = 0x1000;
const PID_VIDEO: u16 = 0x0100;
const PID_AUDIO: u16 = 0x0101;
const STREAM_TYPE_H264: u8 = 0x1b;
const STREAM_TYPE_AAC_ADTS: u8 = 0x0f;
/// `mpegtsmux` adds one hour to running time; so do we, for identical timelines.
pub const CLOCK_BASE: u64 = 3600 * 90_000;
const TIMESTAMP_MASK: u64 = (1 << 33) - 1;
const AUD: [u8; 6] = [0, 0, 0, 1, NAL_AUD, 0xf0];
const START_CODE: [u8; 4] = [0, 0, 0, 1];

/// Muxer state of one stream: codec configuration and continuity counters.
pub struct TsMuxer {
    avc: AvcConfig,
    aac: Option<AacConfig>,
    cc_pat: u8,
    cc_pmt: u8,
    cc_video: u8,
    cc_audio: u8,
    /// Reused PES buffer.
    pes: Vec<u8>,
}

/// 90 kHz timestamp of a time in ms on the running timeline.
pub fn ts90(ms: i64) -> u64 {
    (CLOCK_BASE as i64 + ms * 90) as u64 & TIMESTAMP_MASK
}

impl TsMuxer {
    pub fn new(avc: AvcConfig, aac: Option<AacConfig>) -> Self {
        TsMuxer {
            avc,
            aac,
            cc_pat: 0,
            cc_pmt: 0,
            cc_video: 0,
            cc_audio: 0,
            pes: Vec::with_capacity(256 * 1024),
        }
    }

    /// A new decoder configuration from the publisher (a resolution change, say).
    pub fn set_avc(&mut self, avc: AvcConfig) {
        self.avc = avc;
    }

    pub fn set_aac(&mut self, aac: AacConfig) {
        self.aac = Some(aac);
    }

    /// PAT and PMT: every segment starts with them, so each one is decodable alone.
    pub fn write_tables(&mut self, out: &mut Vec<u8>) {
        let mut pat = Vec::with_capacity(16);
        pat.extend_from_slice(&[0x00, 0x01, 0xc1, 0x00, 0x00]); // ts id 1, v0, current
        pat.extend_from_slice(&[0x00, 0x01]); // program 1
        pat.extend_from_slice(&(0xe000 | PID_PMT).to_be_bytes());
        write_section(out, PID_PAT, &mut self.cc_pat, 0x00, &pat);

        let mut pmt = Vec::with_capacity(32);
        pmt.extend_from_slice(&[0x00, 0x01, 0xc1, 0x00, 0x00]); // program 1, v0, current
        pmt.extend_from_slice(&(0xe000 | PID_VIDEO).to_be_bytes()); // PCR PID
        pmt.extend_from_slice(&[0xf0, 0x00]); // no program info
        pmt.push(STREAM_TYPE_H264);
        pmt.extend_from_slice(&(0xe000 | PID_VIDEO).to_be_bytes());
        pmt.extend_from_slice(&[0xf0, 0x00]);
        if self.aac.is_some() {
            pmt.push(STREAM_TYPE_AAC_ADTS);
            pmt.extend_from_slice(&(0xe000 | PID_AUDIO).to_be_bytes());
            pmt.extend_from_slice(&[0xf0, 0x00]);
        }
        write_section(out, PID_PMT, &mut self.cc_pmt, 0x02, &pmt);
    }

    /// One access unit as FLV carries it (length-prefixed NAL units). Annex B goes out, with an
    /// access unit delimiter and, on keyframes, the parameter sets in front, as HLS wants.
    pub fn write_video(
        &mut self,
        out: &mut Vec<u8>,
        dts_ms: i64,
        cts_ms: i32,
        keyframe: bool,
        avcc: &[u8],
    ) -> Result<()> {
        let dts = ts90(dts_ms);
        let pts = ts90(dts_ms + i64::from(cts_ms));
        // First pass: validate the lengths and see what the publisher already put in the unit.
        let n = self.avc.nal_length_size;
        let (mut has_aud, mut has_sps) = (false, false);
        let mut nals = 0;
        for_each_nal(avcc, n, |nal| {
            let kind = nal[0] & 0x1f;
            has_aud |= nals == 0 && kind == NAL_AUD;
            has_sps |= kind == NAL_SPS;
            nals += 1;
        })?;
        let mut pes = std::mem::take(&mut self.pes);
        pes.clear();
        pes_header(&mut pes, 0xe0, pts, (pts != dts).then_some(dts), None);
        if !has_aud {
            pes.extend_from_slice(&AUD);
        }
        let mut sets_due = keyframe && !has_sps;
        for_each_nal(avcc, n, |nal| {
            if sets_due && nal[0] & 0x1f != NAL_AUD {
                // Parameter sets right after the delimiter, before any SEI that refers to them.
                for set in self.avc.sps.iter().chain(&self.avc.pps) {
                    pes.extend_from_slice(&START_CODE);
                    pes.extend_from_slice(set);
                }
                sets_due = false;
            }
            pes.extend_from_slice(&START_CODE);
            pes.extend_from_slice(nal);
        })?;
        // A video PES of any size: length 0 means "unbounded", allowed for video only.
        let pcr = Some(dts);
        write_pes(out, PID_VIDEO, &mut self.cc_video, &pes, pcr, keyframe);
        self.pes = pes;
        Ok(())
    }

    /// One raw AAC frame, ADTS-framed.
    pub fn write_audio(&mut self, out: &mut Vec<u8>, pts_ms: i64, raw: &[u8]) -> Result<()> {
        let Some(aac) = self.aac else {
            return Ok(());
        };
        let pts = ts90(pts_ms);
        let mut pes = std::mem::take(&mut self.pes);
        pes.clear();
        pes_header(&mut pes, 0xc0, pts, None, Some(7 + raw.len()));
        pes.extend_from_slice(&aac.adts_header(raw.len()));
        pes.extend_from_slice(raw);
        write_pes(out, PID_AUDIO, &mut self.cc_audio, &pes, None, false);
        self.pes = pes;
        Ok(())
    }
}

/// Call `f` with each non-empty NAL unit of a length-prefixed access unit.
fn for_each_nal(mut avcc: &[u8], length_size: usize, mut f: impl FnMut(&[u8])) -> Result<()> {
    while !avcc.is_empty() {
        let len = avcc
            .get(..length_size)
            .map(|b| b.iter().fold(0usize, |v, &x| (v << 8) | usize::from(x)))
            .ok_or_else(|| Error::Unsupported("malformed H.264 frame (NAL length)".into()))?;
        let nal = avcc
            .get(length_size..length_size + len)
            .ok_or_else(|| Error::Unsupported("malformed H.264 frame (NAL past the end)".into()))?;
        if !nal.is_empty() {
            f(nal);
        }
        avcc = &avcc[length_size + len..];
    }
    Ok(())
}

/// PES header with PTS (and DTS when it differs); `payload_len` sets PES_packet_length.
fn pes_header(
    out: &mut Vec<u8>,
    stream_id: u8,
    pts: u64,
    dts: Option<u64>,
    payload_len: Option<usize>,
) {
    let header_data = if dts.is_some() { 10 } else { 5 };
    let packet_len = payload_len
        .map(|len| len + 3 + header_data)
        .filter(|len| *len <= 0xffff)
        .unwrap_or(0);
    out.extend_from_slice(&[0, 0, 1, stream_id]);
    out.extend_from_slice(&(packet_len as u16).to_be_bytes());
    out.push(0x84); // marker bits, data_alignment_indicator
    out.push(if dts.is_some() { 0xc0 } else { 0x80 });
    out.push(header_data as u8);
    match dts {
        Some(dts) => {
            write_timestamp(out, 0x3, pts);
            write_timestamp(out, 0x1, dts);
        }
        None => write_timestamp(out, 0x2, pts),
    }
}

fn write_timestamp(out: &mut Vec<u8>, prefix: u8, ts: u64) {
    out.extend_from_slice(&[
        (prefix << 4) | (((ts >> 29) as u8) & 0x0e) | 1,
        (ts >> 22) as u8,
        (((ts >> 14) as u8) & 0xfe) | 1,
        (ts >> 7) as u8,
        (((ts << 1) as u8) & 0xfe) | 1,
    ]);
}

/// Split a PES into packets: PCR and random-access flag on the first, stuffing in the last.
fn write_pes(
    out: &mut Vec<u8>,
    pid: u16,
    cc: &mut u8,
    pes: &[u8],
    pcr: Option<u64>,
    random_access: bool,
) {
    let mut rest = pes;
    let mut first = true;
    while !rest.is_empty() {
        let start = out.len();
        out.extend_from_slice(&[
            0x47,
            (if first { 0x40 } else { 0 }) | (pid >> 8) as u8,
            pid as u8,
            0, // adaptation field control and continuity counter, set below
        ]);
        // Adaptation field: length byte, flags byte, then the PCR.
        let mut af = [0u8; 7];
        let mut af_len = 0;
        if first && (pcr.is_some() || random_access) {
            let mut flags = 0u8;
            if random_access {
                flags |= 0x40;
            }
            if pcr.is_some() {
                flags |= 0x10;
            }
            af[0] = flags;
            af_len = 1;
            if let Some(pcr) = pcr {
                af[1..].copy_from_slice(&[
                    (pcr >> 25) as u8,
                    (pcr >> 17) as u8,
                    (pcr >> 9) as u8,
                    (pcr >> 1) as u8,
                    (((pcr & 1) as u8) << 7) | 0x7e,
                    0,
                ]);
                af_len = 7;
            }
        }
        let af = &af[..af_len];
        let af_total = if af.is_empty() { 0 } else { 1 + af.len() };
        let room = PACKET - 4 - af_total;
        let take = rest.len().min(room);
        let stuffing = room - take;
        let has_af = af_total > 0 || stuffing > 0;
        if has_af {
            if af.is_empty() && stuffing > 0 {
                // A bare adaptation field: its length byte alone takes one byte of stuffing.
                let len = stuffing - 1;
                out.push(len as u8);
                if len > 0 {
                    out.push(0x00);
                    out.resize(out.len() + len - 1, 0xff);
                }
            } else {
                out.push((af.len() + stuffing) as u8);
                out.extend_from_slice(af);
                out.resize(out.len() + stuffing, 0xff);
            }
        }
        out[start + 3] = (if has_af { 0x30 } else { 0x10 }) | (*cc & 0x0f);
        *cc = cc.wrapping_add(1) & 0x0f;
        out.extend_from_slice(&rest[..take]);
        debug_assert_eq!(out.len() - start, PACKET);
        rest = &rest[take..];
        first = false;
    }
}

/// A PSI section (PAT or PMT) in one packet, with its CRC.
fn write_section(out: &mut Vec<u8>, pid: u16, cc: &mut u8, table_id: u8, body: &[u8]) {
    let start = out.len();
    out.extend_from_slice(&[
        0x47,
        0x40 | (pid >> 8) as u8,
        pid as u8,
        0x10 | (*cc & 0x0f),
    ]);
    *cc = cc.wrapping_add(1) & 0x0f;
    out.push(0); // pointer_field
    let section_start = out.len();
    let section_len = body.len() + 4; // + CRC
    out.push(table_id);
    out.push(0xb0 | ((section_len >> 8) as u8 & 0x0f));
    out.push(section_len as u8);
    out.extend_from_slice(body);
    let crc = crc32_mpeg2(&out[section_start..]);
    out.extend_from_slice(&crc.to_be_bytes());
    out.resize(start + PACKET, 0xff);
}

const CRC_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 0x8000_0000 != 0 {
                (c << 1) ^ 0x04c1_1db7
            } else {
                c << 1
            };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32/MPEG-2 of PSI sections.
fn crc32_mpeg2(data: &[u8]) -> u32 {
    data.iter().fold(0xffff_ffff, |crc, &b| {
        (crc << 8) ^ CRC_TABLE[((crc >> 24) as u8 ^ b) as usize]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn avc() -> AvcConfig {
        AvcConfig {
            nal_length_size: 4,
            sps: vec![bytes::Bytes::from_static(&[0x67, 1, 2])],
            pps: vec![bytes::Bytes::from_static(&[0x68, 3])],
            codecs: "avc1.64001f".into(),
            width: 640,
            height: 360,
            frame_rate: None,
        }
    }

    fn packets(data: &[u8]) -> Vec<&[u8]> {
        assert_eq!(data.len() % PACKET, 0, "whole packets");
        data.chunks(PACKET)
            .inspect(|p| assert_eq!(p[0], 0x47))
            .collect()
    }

    #[test]
    fn crc_matches_the_mpeg2_check_value() {
        assert_eq!(crc32_mpeg2(b"123456789"), 0x0376_e6e7);
    }

    #[test]
    fn keyframes_get_aud_and_parameter_sets_and_stuffing_fills_the_last_packet() {
        let mut mux = TsMuxer::new(avc(), None);
        let mut out = Vec::new();
        let idr = [0, 0, 0, 3, 0x65, 0xaa, 0xbb];
        mux.write_video(&mut out, 0, 40, true, &idr).expect("mux");
        let p = packets(&out);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0][1] & 0x40, 0x40, "payload unit start");
        assert_eq!(p[0][3] & 0x30, 0x30, "adaptation field + payload");
        assert_eq!(p[0][5] & 0x50, 0x50, "random access + PCR");
        let es: &[u8] = &[
            0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 0, 1, 0x68, 3, 0, 0, 0, 1, 0x65,
            0xaa, 0xbb,
        ];
        assert!(p[0].ends_with(es), "{:02x?}", p[0]);
        // PES header: PTS and DTS differ by 40 ms.
        let pes = &p[0][PACKET - es.len() - 19..];
        assert_eq!(&pes[..4], &[0, 0, 1, 0xe0]);
        assert_eq!(pes[7], 0xc0);
    }

    #[test]
    fn long_frames_span_packets_with_continuous_counters() {
        let mut mux = TsMuxer::new(avc(), None);
        let mut out = Vec::new();
        let mut frame = vec![0, 0, 0x10, 0x00, 0x41];
        frame.resize(4 + 0x1000, 0x55);
        mux.write_video(&mut out, 33, 0, false, &frame)
            .expect("mux");
        let p = packets(&out);
        assert!(p.len() > 20);
        for (i, packet) in p.iter().enumerate() {
            assert_eq!(usize::from(packet[3] & 0x0f), i % 16);
            assert_eq!(packet[1] & 0x40 != 0, i == 0);
        }
        let err = mux
            .write_video(&mut out, 66, 0, false, &[0, 0, 0, 9, 0x41])
            .expect_err("truncated");
        assert!(err.to_string().contains("malformed"), "{err}");
    }

    #[test]
    fn tables_name_both_streams_only_when_there_is_audio() {
        let aac = AacConfig::parse(&[0x12, 0x10]).expect("asc");
        let mut with_audio = Vec::new();
        TsMuxer::new(avc(), Some(aac)).write_tables(&mut with_audio);
        let mut video_only = Vec::new();
        TsMuxer::new(avc(), None).write_tables(&mut video_only);
        assert_eq!(packets(&with_audio).len(), 2);
        // section_length of the PMT: 13 + 5 per stream.
        assert_eq!(with_audio[PACKET + 7], 13 + 10);
        assert_eq!(video_only[PACKET + 7], 13 + 5);
    }
}
