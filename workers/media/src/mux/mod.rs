//! From the publisher's FLV tags to segments without decoding: the publisher's timestamps made
//! safe to cut on ([`timeline`]), the tags and their codec checks ([`flv`], [`codec`]), where
//! segments are cut ([`boundary`]), the MPEG-TS muxer of the source rendition ([`ts`],
//! [`passthrough`]) and what every producer of segments hands on ([`fragment`]).

pub mod boundary;
pub mod cmaf;
pub mod codec;
pub mod flv;
pub mod fragment;
pub mod parts;
pub mod passthrough;
pub mod timeline;
pub mod ts;
