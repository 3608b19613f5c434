//! Chat tokens: a JWT signed with HS256 (HMAC-SHA256) by the room's chat signing key, so an
//! application can mint them with any JWT library. Claims: `sub` (user id), `name` (display
//! name), `role` (`viewer` | `moderator` | `streamer`), `exp` (Unix seconds).
//!
//! Verification is pure: the current time is passed in.

use std::path::Path;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use roomcast_runtime::Secret;
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::protocol::Role;

type HmacSha256 = Hmac<Sha256>;

/// The only header this server issues and accepts.
const HEADER: &str = r#"{"alg":"HS256","typ":"JWT"}"#;
/// Shortest signing key accepted, in bytes.
pub const MIN_KEY_BYTES: usize = 16;
/// Longest user id and display name, in characters.
pub const MAX_SUB_CHARS: usize = 128;
pub const MAX_NAME_CHARS: usize = 64;
/// Longest token accepted, in bytes (anything longer is refused before parsing).
pub const MAX_TOKEN_BYTES: usize = 4096;

/// The room's chat signing key. Never printed (it wraps the redacting [`Secret`]).
#[derive(Clone, Debug)]
pub struct SigningKey(Secret);

impl SigningKey {
    /// A key of at least [`MIN_KEY_BYTES`] bytes.
    pub fn new(secret: Secret) -> Result<Self, TokenError> {
        if secret.expose().len() < MIN_KEY_BYTES {
            return Err(TokenError::KeyTooShort);
        }
        Ok(Self(secret))
    }

    /// The key as stored in the Secret file; surrounding whitespace (a trailing newline) is
    /// not part of it.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TokenError> {
        let secret = Secret::from_file(path).map_err(|e| TokenError::KeyFile(e.to_string()))?;
        Self::new(secret)
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC accepts keys of any length, so this never fails.
        match HmacSha256::new_from_slice(self.0.expose().as_bytes()) {
            Ok(mac) => mac,
            Err(_) => unreachable!("HMAC takes keys of any length"),
        }
    }
}

/// A chat token as received from a client or minted here. Never printed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token(Secret);

impl Token {
    pub fn new(s: impl Into<String>) -> Self {
        Self(Secret::new(s))
    }
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// What a token says about its holder.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Claims {
    pub sub: String,
    pub name: String,
    pub role: Role,
    /// Expiry, Unix seconds.
    pub exp: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the chat signing key must be at least {MIN_KEY_BYTES} bytes")]
    KeyTooShort,
    /// The key file is missing, unreadable or empty (the message names the file).
    #[error("{0}")]
    KeyFile(String),
    #[error("the token is not a JWT (header.claims.signature)")]
    Malformed,
    #[error("the token must be signed with HS256")]
    Algorithm,
    #[error("the token signature does not match this room's signing key")]
    Signature,
    #[error("the token claims are invalid: {0}")]
    Claims(String),
    #[error("the token expired")]
    Expired,
}

impl TokenError {
    /// The error code clients see (`connect_error` message prefix).
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired => "token_expired",
            _ => "invalid_token",
        }
    }
}

/// Sign `claims` into a token.
pub fn mint(key: &SigningKey, claims: &Claims) -> Result<Token, TokenError> {
    validate_claims(claims)?;
    let payload = serde_json::to_vec(claims).map_err(|e| TokenError::Claims(e.to_string()))?;
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let mut mac = key.mac();
    mac.update(signing_input.as_bytes());
    let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    Ok(Token::new(format!("{signing_input}.{sig}")))
}

/// Check the signature (constant time), the algorithm, the claims and the expiry at `now`
/// (Unix seconds).
pub fn verify(key: &SigningKey, token: &Token, now: i64) -> Result<Claims, TokenError> {
    let raw = token.expose();
    if raw.len() > MAX_TOKEN_BYTES {
        return Err(TokenError::Malformed);
    }
    let mut parts = raw.split('.');
    let (Some(header), Some(payload), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Malformed)?;
    let mut mac = key.mac();
    mac.update(header.as_bytes());
    mac.update(b".");
    mac.update(payload.as_bytes());
    // `verify_slice` compares in constant time.
    mac.verify_slice(&sig).map_err(|_| TokenError::Signature)?;

    let header: serde_json::Value = URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|h| serde_json::from_slice(&h).ok())
        .ok_or(TokenError::Malformed)?;
    if header.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(TokenError::Algorithm);
    }
    let payload = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| TokenError::Malformed)?;
    let claims: Claims =
        serde_json::from_slice(&payload).map_err(|e| TokenError::Claims(e.to_string()))?;
    validate_claims(&claims)?;
    if claims.exp <= now {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

fn validate_claims(claims: &Claims) -> Result<(), TokenError> {
    let sub_len = claims.sub.chars().count();
    if claims.sub.trim().is_empty() || sub_len > MAX_SUB_CHARS {
        return Err(TokenError::Claims(format!(
            "sub must be 1..={MAX_SUB_CHARS} characters"
        )));
    }
    if claims.sub.starts_with(crate::protocol::ANONYMOUS_PREFIX) {
        return Err(TokenError::Claims(format!(
            "sub must not start with {:?}",
            crate::protocol::ANONYMOUS_PREFIX
        )));
    }
    let name = claims.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(TokenError::Claims(format!(
            "name must be 1..={MAX_NAME_CHARS} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SigningKey {
        SigningKey::new(Secret::new("0123456789abcdef0123456789abcdef")).expect("key")
    }

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: "u-42".into(),
            name: "Ada".into(),
            role: Role::Moderator,
            exp,
        }
    }

    #[test]
    fn minted_token_verifies_before_expiry() {
        let token = mint(&key(), &claims(1_000)).expect("mint");
        assert_eq!(verify(&key(), &token, 999).expect("verify"), claims(1_000));
    }

    #[test]
    fn token_is_refused_at_and_after_expiry() {
        let token = mint(&key(), &claims(1_000)).expect("mint");
        assert_eq!(verify(&key(), &token, 1_000), Err(TokenError::Expired));
        assert_eq!(TokenError::Expired.code(), "token_expired");
    }

    #[test]
    fn token_signed_with_another_key_is_refused() {
        let other = SigningKey::new(Secret::new("another-key-of-enough-length")).expect("key");
        let token = mint(&other, &claims(1_000)).expect("mint");
        assert_eq!(verify(&key(), &token, 0), Err(TokenError::Signature));
    }

    #[test]
    fn tampered_claims_are_refused() {
        let token = mint(&key(), &claims(1_000)).expect("mint");
        let parts: Vec<&str> = token.expose().split('.').collect();
        let forged = Claims {
            role: Role::Streamer,
            ..claims(1_000)
        };
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).expect("json"));
        let tampered = Token::new(format!("{}.{}.{}", parts[0], forged_payload, parts[2]));
        assert_eq!(verify(&key(), &tampered, 0), Err(TokenError::Signature));
    }

    #[test]
    fn alg_none_and_garbage_are_refused() {
        let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(1_000)).expect("json"));
        let unsigned = Token::new(format!("{none_header}.{payload}."));
        assert_eq!(verify(&key(), &unsigned, 0), Err(TokenError::Signature));
        assert_eq!(
            verify(&key(), &Token::new("not-a-token"), 0),
            Err(TokenError::Malformed)
        );
        assert_eq!(
            verify(&key(), &Token::new("a.b.c.d"), 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn correctly_signed_token_with_another_algorithm_is_refused() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS512","typ":"JWT"}"#);
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(1_000)).expect("json"));
        let input = format!("{header}.{payload}");
        let mut mac = key().mac();
        mac.update(input.as_bytes());
        let sig = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        let token = Token::new(format!("{input}.{sig}"));
        assert_eq!(verify(&key(), &token, 0), Err(TokenError::Algorithm));
    }

    #[test]
    fn empty_names_and_anonymous_ids_cannot_be_minted() {
        let mut c = claims(1_000);
        c.name = "  ".into();
        assert!(matches!(mint(&key(), &c), Err(TokenError::Claims(_))));
        let mut c = claims(1_000);
        c.sub = "anon:x".into();
        assert!(matches!(mint(&key(), &c), Err(TokenError::Claims(_))));
    }

    #[test]
    fn short_keys_are_refused_and_keys_and_tokens_are_redacted() {
        assert_eq!(
            SigningKey::new(Secret::new("short")).err(),
            Some(TokenError::KeyTooShort)
        );
        let token = mint(&key(), &claims(1_000)).expect("mint");
        assert_eq!(format!("{token:?}"), "Token(Secret([redacted]))");
        assert_eq!(format!("{:?}", key()), "SigningKey(Secret([redacted]))");
    }

    #[test]
    fn key_files_are_trimmed_and_empty_or_short_ones_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("chat-signing-key");
        std::fs::write(&file, "0123456789abcdef0123456789abcdef\n").expect("write");
        let token =
            mint(&SigningKey::from_file(&file).expect("key"), &claims(1_000)).expect("mint");
        assert!(
            verify(&key(), &token, 0).is_ok(),
            "the newline is not part of the key"
        );
        std::fs::write(&file, "short\n").expect("write");
        assert_eq!(
            SigningKey::from_file(&file).err(),
            Some(TokenError::KeyTooShort)
        );
        std::fs::write(&file, "\n").expect("write");
        assert!(matches!(
            SigningKey::from_file(&file),
            Err(TokenError::KeyFile(m)) if m.contains("chat-signing-key")
        ));
    }
}
