//! The LL-HLS side of the origin: the delivery directives of a playlist request
//! (`_HLS_msn`, `_HLS_part`), the file names under a rendition (`init-<id>.mp4`,
//! `<seq>.<part>.m4s`, `<seq>.m4s`, `<seq>.ts`), and the waits of a blocking playlist reload and
//! of a preload-hinted part. Parsing is pure and strict: only ASCII digits, no duplicates, no
//! sign, nothing the `u64`/`usize` parsers would otherwise quietly accept.

use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use crate::room::low_latency::Block;
use crate::room::session::{PartLookup, Session};

/// A playlist request's delivery directives (6.2.5.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Directive {
    pub msn: u64,
    pub part: Option<u64>,
}

fn digits<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// The directives of a query string; `Ok(None)` for a plain request. Errors are the 400 body.
/// `_HLS_skip` is ignored: the playlists advertise no `CAN-SKIP-UNTIL`, and a server that does
/// not must answer with the full playlist (6.2.5.1).
pub fn directive(query: Option<&str>) -> Result<Option<Directive>, &'static str> {
    let (mut msn, mut part) = (None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match key {
            "_HLS_msn" => &mut msn,
            "_HLS_part" => &mut part,
            _ => continue,
        };
        if slot.is_some() {
            return Err("a delivery directive is given twice\n");
        }
        *slot = Some(digits::<u64>(value).ok_or("_HLS_msn and _HLS_part take a decimal number\n")?);
    }
    match (msn, part) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err("_HLS_part needs _HLS_msn\n"),
        (Some(msn), part) => Ok(Some(Directive { msn, part })),
    }
}

/// What a file name under `<rendition>/` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFile {
    /// `<seq>.ts` or `<seq>.m4s`; `cmaf` tells which.
    Segment { seq: u64, cmaf: bool },
    /// `<seq>.<index>.m4s`
    Part { seq: u64, index: usize },
    /// `init-<id>.mp4`
    Init { id: u32 },
}

impl MediaFile {
    pub fn parse(name: &str) -> Option<MediaFile> {
        if let Some(id) = name
            .strip_prefix("init-")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(MediaFile::Init { id: digits(id)? });
        }
        if let Some(seq) = name.strip_suffix(".ts") {
            return Some(MediaFile::Segment {
                seq: digits(seq)?,
                cmaf: false,
            });
        }
        let stem = name.strip_suffix(".m4s")?;
        Some(match stem.split_once('.') {
            None => MediaFile::Segment {
                seq: digits(stem)?,
                cmaf: true,
            },
            Some((seq, index)) => MediaFile::Part {
                seq: digits(seq)?,
                index: digits(index)?,
            },
        })
    }

    pub fn content_type(self) -> &'static str {
        match self {
            MediaFile::Segment { cmaf: false, .. } => "video/mp2t",
            MediaFile::Segment { cmaf: true, .. } | MediaFile::Part { .. } => "video/iso.segment",
            MediaFile::Init { .. } => "video/mp4",
        }
    }
}

/// Why a blocking request ends without the playlist.
pub type Refusal = (StatusCode, &'static str);

/// Hold a blocking playlist request until the playlist has what it asks for. `Ok` also when
/// there is nothing to wait for (a standard room, an unknown rendition): the caller answers as
/// for a plain request.
pub async fn wait_for_playlist(
    session: &Session,
    rendition: &str,
    directive: Directive,
) -> Result<(), Refusal> {
    let mut changes = session.changes();
    let Some((mut verdict, timeout)) = session.block(rendition, directive.msn, directive.part)
    else {
        return Ok(());
    };
    let deadline = Instant::now() + timeout;
    loop {
        match verdict {
            Block::Ready => return Ok(()),
            Block::TooFar => {
                return Err((
                    StatusCode::BAD_REQUEST,
                    "_HLS_msn/_HLS_part is too far beyond the live edge\n",
                ));
            }
            Block::Wait => {}
        }
        match tokio::time::timeout_at(deadline, changes.changed()).await {
            Err(_) => {
                return Err((
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the requested segment or part did not appear within three target durations\n",
                ));
            }
            // The session is gone: answer with what there is.
            Ok(Err(_)) => return Ok(()),
            Ok(Ok(())) => {}
        }
        verdict = match session.block(rendition, directive.msn, directive.part) {
            Some((v, _)) => v,
            None => return Ok(()),
        };
    }
}

/// A part, waiting for it when it is the next one (what a preload hint names).
pub async fn wait_for_part(
    session: &Session,
    rendition: &str,
    seq: u64,
    index: usize,
) -> Option<bytes::Bytes> {
    let mut changes = session.changes();
    let timeout = match session.part(rendition, seq, index) {
        PartLookup::Ready(bytes) => return Some(bytes),
        PartLookup::Missing => return None,
        PartLookup::Next(timeout) => timeout,
    };
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::time::timeout_at(deadline, changes.changed())
            .await
            .map_or(true, |r| r.is_err())
        {
            return None;
        }
        match session.part(rendition, seq, index) {
            PartLookup::Ready(bytes) => return Some(bytes),
            PartLookup::Missing => return None,
            PartLookup::Next(_) => {}
        }
    }
}

/// `Cache-Control` of an answer to a blocking request: its URL names one part, so a CDN may
/// keep it for a target duration (a later request names a later part).
pub fn blocking_cache_control(target: Duration) -> http::HeaderValue {
    crate::room::session::header_value(format!("public, max-age={}", target.as_secs().max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_are_parsed_strictly() {
        assert_eq!(directive(None), Ok(None));
        assert_eq!(directive(Some("")), Ok(None));
        assert_eq!(directive(Some("foo=bar&_HLS_skip=YES")), Ok(None));
        assert_eq!(
            directive(Some("_HLS_msn=12&_HLS_part=3")),
            Ok(Some(Directive {
                msn: 12,
                part: Some(3)
            }))
        );
        assert_eq!(
            directive(Some("_HLS_msn=0")),
            Ok(Some(Directive { msn: 0, part: None }))
        );
        for hostile in [
            "_HLS_part=1",
            "_HLS_msn=",
            "_HLS_msn",
            "_HLS_msn=-1",
            "_HLS_msn=+1",
            "_HLS_msn=1.5",
            "_HLS_msn=0x10",
            "_HLS_msn=%31",
            "_HLS_msn=18446744073709551616",
            "_HLS_msn=999999999999999999999999999",
            "_HLS_msn=1&_HLS_msn=2",
            "_HLS_msn=1&_HLS_part=1&_HLS_part=2",
            "_HLS_msn=1&_HLS_part= 1",
            "_HLS_msn=1&_HLS_part=ab",
        ] {
            assert!(directive(Some(hostile)).is_err(), "{hostile} accepted");
        }
    }

    #[test]
    fn file_names_are_parsed_strictly() {
        assert_eq!(
            MediaFile::parse("12.ts"),
            Some(MediaFile::Segment {
                seq: 12,
                cmaf: false
            })
        );
        assert_eq!(
            MediaFile::parse("12.m4s"),
            Some(MediaFile::Segment {
                seq: 12,
                cmaf: true
            })
        );
        assert_eq!(
            MediaFile::parse("12.3.m4s"),
            Some(MediaFile::Part { seq: 12, index: 3 })
        );
        assert_eq!(
            MediaFile::parse("init-2.mp4"),
            Some(MediaFile::Init { id: 2 })
        );
        for hostile in [
            "",
            ".ts",
            "+1.ts",
            "-1.ts",
            "1.ts.ts",
            "1.2.ts",
            "1..m4s",
            ".1.m4s",
            "1.2.3.m4s",
            "1.-2.m4s",
            "init-.mp4",
            "init-+1.mp4",
            "init-4294967296.mp4",
            "init-1.mp4.mp4",
            "99999999999999999999999.ts",
            "1.m4s ",
            "index.m3u8",
            "../1.ts",
            "1.TS",
        ] {
            assert_eq!(MediaFile::parse(hostile), None, "{hostile:?} accepted");
        }
    }
}
