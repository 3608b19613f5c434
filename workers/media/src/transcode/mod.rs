//! The encoded rungs of the ladder: [`ladder::choose`] picks, per publish, the rungs worth an
//! encode for the source at hand; one GStreamer graph per publisher connection
//! ([`pipeline::TranscodePipeline`]) decodes the source once, scales and encodes every rung and
//! muxes each to MPEG-TS; the `cutter` splits the muxed streams at the boundaries the source's
//! keyframes decide ([`crate::mux::boundary`]), so the rungs cut where the passthrough source
//! does. Low-latency rooms mux each rung's encoded streams to CMAF parts in Rust instead
//! (`cmaf_rung`). [`poster::GstPoster`] makes the recordings' poster frames with the same GStreamer.

mod cmaf_rung;
mod cutter;
pub mod ladder;
pub mod pipeline;
pub mod poster;
