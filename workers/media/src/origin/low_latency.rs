//! The LL-HLS side of the origin: the delivery directives of a playlist request
//! (`_HLS_msn`, `_HLS_part`, `_HLS_skip`), and the waits of a blocking playlist reload and of a
//! preload-hinted part (the file names under a rendition are [`crate::room::names`]). Parsing is pure and strict: only ASCII digits, no duplicates, no
//! sign, nothing the `u64`/`usize` parsers would otherwise quietly accept.

use std::time::Duration;

use http::StatusCode;
use tokio::time::Instant;

use crate::room::low_latency::{Block, Skip};
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

/// Everything a playlist request's query string asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Delivery {
    /// `_HLS_msn` / `_HLS_part`: a blocking reload.
    pub block: Option<Directive>,
    /// `_HLS_skip`: a delta update.
    pub skip: Skip,
}

/// The delivery directives of a query string. Errors are the 400 body. Values are taken as the
/// spec spells them: `_HLS_skip` is `YES` or `v2` (6.2.5.1), nothing else (not `yes`, not
/// `1`, not percent-encoded), as a number is plain digits.
pub fn delivery(query: Option<&str>) -> Result<Delivery, &'static str> {
    let (mut msn, mut part, mut skip) = (None, None, None);
    for pair in query.unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let given_twice = match key {
            "_HLS_msn" => msn.replace(digits(value).ok_or(NOT_A_NUMBER)?).is_some(),
            "_HLS_part" => part.replace(digits(value).ok_or(NOT_A_NUMBER)?).is_some(),
            "_HLS_skip" => {
                let value = match value {
                    "YES" => Skip::Segments,
                    "v2" => Skip::SegmentsAndDateRanges,
                    _ => return Err("_HLS_skip takes YES or v2\n"),
                };
                skip.replace(value).is_some()
            }
            _ => false,
        };
        if given_twice {
            return Err("_HLS_msn, _HLS_part and _HLS_skip may each be given once\n");
        }
    }
    let block = match (msn, part) {
        (None, None) => None,
        (None, Some(_)) => return Err("_HLS_part needs _HLS_msn\n"),
        (Some(msn), part) => Some(Directive { msn, part }),
    };
    Ok(Delivery {
        block,
        skip: skip.unwrap_or_default(),
    })
}

const NOT_A_NUMBER: &str = "_HLS_msn and _HLS_part take a decimal number\n";

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

    fn block(msn: u64, part: Option<u64>) -> Delivery {
        Delivery {
            block: Some(Directive { msn, part }),
            skip: Skip::Nothing,
        }
    }

    #[test]
    fn directives_are_parsed_strictly() {
        assert_eq!(delivery(None), Ok(Delivery::default()));
        assert_eq!(delivery(Some("")), Ok(Delivery::default()));
        assert_eq!(
            delivery(Some("foo=bar&_HLS_SKIP=x")),
            Ok(Delivery::default())
        );
        assert_eq!(
            delivery(Some("_HLS_msn=12&_HLS_part=3")),
            Ok(block(12, Some(3)))
        );
        assert_eq!(delivery(Some("_HLS_msn=0")), Ok(block(0, None)));
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
            assert!(delivery(Some(hostile)).is_err(), "{hostile} accepted");
        }
    }

    #[test]
    fn skip_directives_take_yes_or_v2_alone_or_with_a_blocking_reload() {
        assert_eq!(
            delivery(Some("_HLS_skip=YES")),
            Ok(Delivery {
                block: None,
                skip: Skip::Segments
            })
        );
        assert_eq!(
            delivery(Some("_HLS_msn=7&_HLS_part=2&_HLS_skip=v2")),
            Ok(Delivery {
                skip: Skip::SegmentsAndDateRanges,
                ..block(7, Some(2))
            })
        );
        assert_eq!(
            delivery(Some("_HLS_skip=YES&_HLS_msn=7")),
            Ok(Delivery {
                skip: Skip::Segments,
                ..block(7, None)
            })
        );
        for hostile in [
            "_HLS_skip",
            "_HLS_skip=",
            "_HLS_skip=1",
            "_HLS_skip=yes",
            "_HLS_skip=Yes",
            "_HLS_skip=YESS",
            "_HLS_skip=YES ",
            "_HLS_skip=V2",
            "_HLS_skip=v3",
            "_HLS_skip=NO",
            "_HLS_skip=%59ES",
            "_HLS_skip=YES%00",
            "_HLS_skip=YES=YES",
            "_HLS_skip=99999999999999999999999999999999",
            "_HLS_skip=YES&_HLS_skip=YES",
            "_HLS_skip=YES&_HLS_skip=v2",
            "_HLS_skip=YES&_HLS_part=1",
        ] {
            let refused = delivery(Some(hostile));
            assert!(refused.is_err(), "{hostile} accepted");
        }
        assert_eq!(
            delivery(Some("_HLS_skip=yes")),
            Err("_HLS_skip takes YES or v2\n")
        );
        assert_eq!(
            delivery(Some("_HLS_skip=YES&_HLS_skip=YES")),
            Err("_HLS_msn, _HLS_part and _HLS_skip may each be given once\n")
        );
        let long = format!("_HLS_skip={}", "Y".repeat(100_000));
        assert!(delivery(Some(&long)).is_err());
    }
}
