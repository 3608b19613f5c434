//! The socket.io protocol: event names and their typed payloads (JSON, camelCase).
//! `workers/chat/README.md` documents them for client authors.

use serde::{Deserialize, Serialize};

/// Prefix of generated ids for anonymous (token-less) viewers; tokens may not use it.
pub const ANONYMOUS_PREFIX: &str = "anon:";

/// Client -> server events.
pub mod client {
    pub const MESSAGE: &str = "message";
    pub const DELETE: &str = "delete";
    pub const BAN: &str = "ban";
    pub const UNBAN: &str = "unban";
    pub const SLOW_MODE: &str = "slow_mode";
}

/// Server -> client events.
pub mod server {
    pub const JOINED: &str = "joined";
    pub const MESSAGE: &str = "message";
    pub const MESSAGE_DELETED: &str = "message_deleted";
    pub const VIEWERS: &str = "viewers";
    pub const LIVE: &str = "live";
    pub const SLOW_MODE: &str = "slow_mode";
    pub const USER_BANNED: &str = "user_banned";
    pub const USER_UNBANNED: &str = "user_unbanned";
    pub const BANNED: &str = "banned";
    pub const CHAT_ERROR: &str = "chat_error";
    pub const SERVER_SHUTDOWN: &str = "server_shutdown";
}

#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Moderator,
    Streamer,
}

impl Role {
    pub fn can_moderate(self) -> bool {
        matches!(self, Role::Moderator | Role::Streamer)
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "moderator" => Ok(Role::Moderator),
            "streamer" => Ok(Role::Streamer),
            _ => Err(format!("{s:?}: role must be viewer, moderator or streamer")),
        }
    }
}

/// Who is on the other end of a socket.
#[derive(Serialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Identity {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// No token: may read, may not post.
    pub anonymous: bool,
}

/// The `auth` object of `io(url, {auth: {token}})`.
#[derive(Deserialize, Debug, Default)]
pub struct Auth {
    #[serde(default)]
    pub token: Option<String>,
}

/// A chat message as stored and sent. `text` is plain text, never markup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub role: Role,
    pub text: String,
    /// Server time, Unix milliseconds.
    pub ts: i64,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct RoomInfo<'a> {
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Limits {
    pub max_message_length: u32,
    pub rate_limit_per_minute: u32,
}

/// Sent once, right after a socket connects.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Joined<'a> {
    pub room: RoomInfo<'a>,
    pub user: &'a Identity,
    /// Oldest first, at most `historySize`.
    pub history: Vec<ChatMessage>,
    pub viewers: u32,
    pub live: bool,
    pub slow_mode_seconds: u32,
    pub limits: Limits,
}

#[derive(Deserialize, Debug)]
pub struct PostMessage {
    pub text: String,
}

#[derive(Deserialize, Debug)]
pub struct DeleteMessage {
    pub id: String,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct BanUser {
    pub user_id: String,
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UnbanUser {
    pub user_id: String,
}

#[derive(Deserialize, Debug)]
pub struct SetSlowMode {
    pub seconds: u32,
}

#[derive(Serialize, Debug)]
pub struct Viewers {
    pub count: u32,
}

#[derive(Serialize, Debug)]
pub struct Live {
    pub live: bool,
}

#[derive(Serialize, Debug)]
pub struct SlowMode {
    pub seconds: u32,
}

/// The ack data of `delete`.
#[derive(Serialize, Debug)]
pub struct Deleted {
    pub id: String,
}

/// The ack data of `ban` and `unban`.
#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UserRef {
    pub user_id: String,
}

#[derive(Serialize, Debug)]
pub struct MessageDeleted<'a> {
    pub id: &'a str,
    pub by: &'a str,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UserBanned<'a> {
    pub user_id: &'a str,
    pub by: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct UserUnbanned<'a> {
    pub user_id: &'a str,
    pub by: &'a str,
}

#[derive(Serialize, Debug)]
#[serde(rename_all = "camelCase")]
pub struct Banned<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'a str>,
}

#[derive(Serialize, Debug)]
pub struct ServerShutdown {
    pub reconnect: bool,
}

/// Error codes in `chat_error` events and acks.
#[derive(Serialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    EmptyMessage,
    MessageTooLong,
    RateLimited,
    SlowMode,
    NotFound,
    Unavailable,
}

/// Sent as the `chat_error` event and as the failed ack of the request that caused it.
#[derive(Serialize, Clone, Debug)]
#[serde(rename_all = "camelCase")]
pub struct ChatError {
    pub code: ErrorCode,
    pub message: String,
    /// The client event that failed.
    pub event: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// The ack of every client request: `{ok: true, ...}` or `{ok: false, error}`.
#[derive(Serialize, Debug)]
#[serde(untagged)]
pub enum Ack<T: Serialize> {
    Ok { ok: bool, data: T },
    Err { ok: bool, error: ChatError },
}

impl<T: Serialize> Ack<T> {
    pub fn ok(data: T) -> Self {
        Ack::Ok { ok: true, data }
    }
    pub fn err(error: ChatError) -> Self {
        Ack::Err { ok: false, error }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<T: serde::de::DeserializeOwned>(json: &str) -> Result<T, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    /// `depth` arrays around `inner`.
    fn nested(depth: usize, inner: &str) -> String {
        format!("{}{inner}{}", "[".repeat(depth), "]".repeat(depth))
    }

    #[test]
    fn payloads_of_the_wrong_type_are_refused() {
        for bad in [
            "null",
            "42",
            "\"text\"",
            "[]",
            "{}",
            r#"{"text": 42}"#,
            r#"{"text": null}"#,
            r#"{"text": ["a"]}"#,
            r#"{"text": {"$gt": ""}}"#,
            r#"{"text": true}"#,
        ] {
            assert!(parse::<PostMessage>(bad).is_err(), "{bad}");
        }
        for bad in [r#"{"id": 1}"#, r#"{"id": {"$ne": null}}"#, "[]"] {
            assert!(parse::<DeleteMessage>(bad).is_err(), "{bad}");
        }
        for bad in [
            r#"{"userId": 7}"#,
            r#"{"user_id": "x"}"#,
            r#"{"userId": "x", "reason": 5}"#,
        ] {
            assert!(parse::<BanUser>(bad).is_err(), "{bad}");
        }
        assert!(parse::<UnbanUser>(r#"{"userId": []}"#).is_err());
        for bad in [
            r#"{"seconds": -1}"#,
            r#"{"seconds": 4294967296}"#,
            r#"{"seconds": 1.5}"#,
            r#"{"seconds": "60"}"#,
            r#"{"seconds": 1e400}"#,
        ] {
            assert!(parse::<SetSlowMode>(bad).is_err(), "{bad}");
        }
        assert!(parse::<Auth>(r#"{"token": 5}"#).is_err());
        assert!(parse::<Auth>(r#"{"token": null}"#).is_ok_and(|a| a.token.is_none()));
    }

    #[test]
    fn deep_nesting_is_refused_without_exhausting_the_stack() {
        // Inside a field we read, inside one we ignore, and as the whole payload.
        let deep = nested(100_000, "1");
        for bad in [
            format!(r#"{{"text": {deep}}}"#),
            deep.clone(),
            format!("{}\"x\":1{}", r#"{"a":"#.repeat(50_000), "}".repeat(50_000)),
        ] {
            parse::<PostMessage>(&bad).expect_err("deep");
        }
        // An ignored field is skipped without recursing (serde_json's `ignore_value` is a
        // loop), so 100,000 levels cost no stack; the frame cap bounds its size.
        let msg: PostMessage =
            parse(&format!(r#"{{"text": "hi", "extra": {deep}}}"#)).expect("skipped");
        assert_eq!(msg.text, "hi");
        parse::<BanUser>(&format!(r#"{{"userId": "x", "reason": {deep}}}"#)).expect_err("deep");
        // Parsed as a generic value, depth is bounded by the recursion limit (128).
        let err = parse::<serde_json::Value>(&deep).expect_err("deep value");
        assert!(err.contains("recursion limit"), "{err}");
        // Shallow unknown fields are ignored (clients may be newer than the server).
        assert_eq!(
            parse::<PostMessage>(&format!(
                r#"{{"text": "hi", "extra": {}}}"#,
                nested(10, "1")
            ))
            .expect("shallow")
            .text,
            "hi"
        );
    }

    #[test]
    fn huge_strings_and_nul_bytes_parse_as_plain_text_for_the_length_checks() {
        let huge = "x".repeat(16 * 1024 * 1024);
        let msg: PostMessage = parse(&format!(r#"{{"text": "{huge}"}}"#)).expect("huge");
        assert_eq!(
            msg.text.len(),
            huge.len(),
            "refused later by maxMessageLength"
        );
        let msg: PostMessage = parse(r#"{"text": "a\u0000b\u0000"}"#).expect("nul");
        assert_eq!(msg.text, "a\0b\0");
        let ban: BanUser = parse(r#"{"userId": "\u0000", "reason": "\u0000"}"#).expect("nul");
        assert_eq!(ban.user_id, "\0");
        // A raw control character is not JSON.
        assert!(parse::<PostMessage>("{\"text\": \"a\u{0}b\"}").is_err());
    }

    #[test]
    fn invalid_utf16_surrogates_are_refused_and_valid_pairs_decode() {
        for bad in [
            r#"{"text": "\ud800"}"#,
            r#"{"text": "\udfff"}"#,
            r#"{"text": "a\ud800b"}"#,
            r#"{"text": "\ud800\ud800"}"#,
            r#"{"text": "\udc00\ud800"}"#,
            r#"{"text": "\ud83d\u0041"}"#,
            r#"{"text": "\u12"}"#,
            r#"{"text": "\uZZZZ"}"#,
        ] {
            assert!(parse::<PostMessage>(bad).is_err(), "{bad}");
            assert!(
                parse::<BanUser>(&bad.replace("text", "userId")).is_err(),
                "{bad}"
            );
        }
        let msg: PostMessage = parse(r#"{"text": "\ud83d\ude00"}"#).expect("pair");
        assert_eq!(msg.text, "\u{1F600}");
        // Raw invalid UTF-8 never reaches serde as a str; from bytes it is refused.
        assert!(serde_json::from_slice::<PostMessage>(b"{\"text\": \"\xff\xfe\"}").is_err());
    }

    #[test]
    fn roles_parse_from_their_lowercase_names_only() {
        assert_eq!("viewer".parse(), Ok(Role::Viewer));
        assert_eq!("moderator".parse(), Ok(Role::Moderator));
        assert_eq!("streamer".parse(), Ok(Role::Streamer));
        for bad in ["", "Moderator", "admin", " viewer", "streamer\0"] {
            let err = bad.parse::<Role>().expect_err(bad);
            assert!(err.contains("viewer, moderator or streamer"), "{err}");
        }
    }
}
