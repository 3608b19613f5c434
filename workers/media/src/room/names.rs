//! The names of a live session's media files under `<rendition>/`: the playlists write them and
//! the origin parses them back, with one grammar both ways ([`MediaName`]).
//!
//! ```text
//! <token>-<seq>.ts           MPEG-TS segment (standard rooms)
//! <token>-<seq>.m4s          CMAF segment (low-latency rooms)
//! <token>-<seq>.<part>.m4s   LL-HLS part
//! <token>-init-<id>.mp4      CMAF init segment
//! ```
//!
//! These files are served `immutable` for `segmentMaxAgeSeconds` (a day by default), while
//! sequence numbers and init ids start again with every session of a room. The session token
//! makes every name unique to its session, so a CDN that kept yesterday's `…-0.m4s` never
//! serves it for today's. The token is no secret; it only has to differ between sessions,
//! across worker restarts too, so it is made of the session's start time and random bits, never
//! of a counter. A reconnect within the grace period continues the session and keeps its token;
//! the session numbers its inits itself, so a new codec configuration gets a new name as well.

use std::fmt;

use chrono::{DateTime, Utc};
use roomcast_recorder::events::canonical_number;

/// Length of a [`SessionToken`]: 16 lowercase hex digits.
pub const TOKEN_LEN: usize = 16;

/// What makes a live session's file names its own (see the module docs).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionToken([u8; TOKEN_LEN]);

impl SessionToken {
    /// The low 32 bits of the start second, then 32 random bits: two sessions that start in the
    /// same second (a worker restarted, another worker) still differ by the random half.
    pub fn new(started_at: DateTime<Utc>, random: u32) -> Self {
        let second = started_at.timestamp().rem_euclid(1 << 32);
        let mut token = [0; TOKEN_LEN];
        token.copy_from_slice(format!("{second:08x}{random:08x}").as_bytes());
        SessionToken(token)
    }

    /// Exactly [`TOKEN_LEN`] lowercase hex digits, so one token has one spelling.
    pub fn parse(text: &str) -> Option<Self> {
        let token: [u8; TOKEN_LEN] = text.as_bytes().try_into().ok()?;
        token
            .iter()
            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
            .then_some(SessionToken(token))
    }

    pub fn as_str(&self) -> &str {
        // Both constructors hold ASCII hex digits only.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The name of one of this session's files.
    pub fn name(self, file: MediaFile) -> String {
        MediaName { token: self, file }.to_string()
    }
}

impl fmt::Display for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// As it appears in names, not as 16 byte values.
impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SessionToken({})", self.as_str())
    }
}

/// Which file of a session a name points at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MediaFile {
    /// A whole segment; `cmaf` tells `.m4s` from `.ts`.
    Segment { seq: u64, cmaf: bool },
    /// Part `index` of segment `seq`.
    Part { seq: u64, index: usize },
    /// Init segment `id`, numbered by the session.
    Init { id: u32 },
}

impl MediaFile {
    /// The name after the token. Numbers are canonical (no sign, no leading zero) so that one
    /// file has one name, and a CDN one cache entry.
    fn parse(name: &str) -> Option<MediaFile> {
        if let Some(id) = name
            .strip_prefix("init-")
            .and_then(|r| r.strip_suffix(".mp4"))
        {
            return Some(MediaFile::Init {
                id: canonical_number(id)?,
            });
        }
        if let Some(seq) = name.strip_suffix(".ts") {
            return Some(MediaFile::Segment {
                seq: canonical_number(seq)?,
                cmaf: false,
            });
        }
        let stem = name.strip_suffix(".m4s")?;
        Some(match stem.split_once('.') {
            None => MediaFile::Segment {
                seq: canonical_number(stem)?,
                cmaf: true,
            },
            Some((seq, index)) => MediaFile::Part {
                seq: canonical_number(seq)?,
                index: canonical_number(index)?,
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

impl fmt::Display for MediaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MediaFile::Segment { seq, cmaf: false } => write!(f, "{seq}.ts"),
            MediaFile::Segment { seq, cmaf: true } => write!(f, "{seq}.m4s"),
            MediaFile::Part { seq, index } => write!(f, "{seq}.{index}.m4s"),
            MediaFile::Init { id } => write!(f, "init-{id}.mp4"),
        }
    }
}

/// A whole file name under `<rendition>/`: `<token>-<file>`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MediaName {
    pub token: SessionToken,
    pub file: MediaFile,
}

impl MediaName {
    /// Strict: anything accepted prints back as exactly the text it came from.
    pub fn parse(name: &str) -> Option<MediaName> {
        let (token, file) = name.split_at_checked(TOKEN_LEN)?;
        Some(MediaName {
            token: SessionToken::parse(token)?,
            file: MediaFile::parse(file.strip_prefix('-')?)?,
        })
    }
}

impl fmt::Display for MediaName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.token, self.file)
    }
}

/// The token unit tests write their playlists with.
#[cfg(test)]
pub(crate) fn test_token() -> SessionToken {
    SessionToken(*b"0123456789abcdef")
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    const TOKEN: &str = "0123456789abcdef";

    fn token() -> SessionToken {
        test_token()
    }

    #[test]
    fn tokens_differ_by_start_second_and_by_random_bits() {
        let at = Utc
            .with_ymd_and_hms(2026, 11, 30, 9, 33, 18)
            .single()
            .expect("date");
        let a = SessionToken::new(at, 0xdead_beef);
        assert_eq!(a.as_str(), format!("{:08x}deadbeef", at.timestamp()));
        assert_ne!(a, SessionToken::new(at, 0xdead_bee0), "same second");
        assert_ne!(
            a,
            SessionToken::new(at + chrono::Duration::seconds(1), 0xdead_beef),
            "same random bits"
        );
        assert_eq!(SessionToken::parse(a.as_str()), Some(a));
        let before_1970 = Utc.with_ymd_and_hms(1969, 1, 1, 0, 0, 0).single();
        let token = SessionToken::new(before_1970.expect("date"), 1);
        assert_eq!(SessionToken::parse(token.as_str()), Some(token));
    }

    #[test]
    fn names_round_trip() {
        for (file, name) in [
            (
                MediaFile::Segment {
                    seq: 12,
                    cmaf: false,
                },
                format!("{TOKEN}-12.ts"),
            ),
            (
                MediaFile::Segment { seq: 0, cmaf: true },
                format!("{TOKEN}-0.m4s"),
            ),
            (
                MediaFile::Part { seq: 12, index: 3 },
                format!("{TOKEN}-12.3.m4s"),
            ),
            (MediaFile::Init { id: 2 }, format!("{TOKEN}-init-2.mp4")),
        ] {
            assert_eq!(token().name(file), name);
            assert_eq!(
                MediaName::parse(&name),
                Some(MediaName {
                    token: token(),
                    file
                })
            );
        }
    }

    #[test]
    fn hostile_names_are_refused() {
        let long = format!("{TOKEN}-{}.ts", "9".repeat(100_000));
        let mut hostile: Vec<String> = [
            // Names without a token, as served before tokens.
            "0.ts",
            "12.3.m4s",
            "init-1.mp4",
            // Tokens of the wrong length or alphabet.
            "69a1b2c3deadbee-0.ts",
            "69a1b2c3deadbeef0-0.ts",
            "69A1B2C3DEADBEEF-0.ts",
            "69a1b2c3deadbeeg-0.ts",
            "69a1b2c3-eadbeef-0.ts",
            "+9a1b2c3deadbeef-0.ts",
            "69a1b2c3deadbee\u{e9}-0.ts",
            "\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}-0.ts",
            "../../../../etc/-0.ts",
            "..%2F..%2F..%2F..-0.ts",
            "",
        ]
        .map(String::from)
        .into();
        for file in [
            "",
            ".ts",
            "+1.ts",
            "-1.ts",
            "01.ts",
            "1.ts.ts",
            "1.2.ts",
            "1..m4s",
            ".1.m4s",
            "1.2.3.m4s",
            "1.-2.m4s",
            "1.02.m4s",
            "init-.mp4",
            "init-+1.mp4",
            "init-01.mp4",
            "init-4294967296.mp4",
            "init-1.mp4.mp4",
            "18446744073709551616.ts",
            "1.m4s ",
            "index.m3u8",
            "../1.ts",
            "1.TS",
            "1.ts\0",
        ] {
            hostile.push(format!("{TOKEN}-{file}"));
            hostile.push(format!("{TOKEN}--{file}"));
            if !file.starts_with('-') {
                hostile.push(format!("{TOKEN}{file}"));
            }
        }
        hostile.push(long);
        for name in &hostile {
            assert_eq!(MediaName::parse(name), None, "{name:?} accepted");
        }
    }
}
