//! The room's generated secrets (stream key, chat signing key): created once, never
//! overwritten by a reconcile. A key is regenerated only when it is missing from the Secret
//! (someone deleted the field) or when the room's `roomcast.dev/rotate-<key>` annotation
//! carries a value the Secret has not seen yet.
//!
//! Pure: existing Secret data and a key generator go in, the keys to apply come out.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use roomcast_crds::worker_config::{CHAT_SIGNING_KEY_KEY, STREAM_KEY_KEY};

/// Annotation on the keys Secret recording the last rotation request handled per key.
pub const ROTATED_ANNOTATION_PREFIX: &str = "roomcast.dev/rotated-";

/// Keys to write into the room's `<room>-keys` Secret.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct RoomKeys {
    /// key name -> value (stream key only when the room has no streamKeySecretRef).
    pub values: BTreeMap<String, String>,
    /// key name -> rotation request value already handled.
    pub rotated: BTreeMap<String, String>,
    /// Keys generated in this pass (for the Event and the log; never their values).
    pub generated: Vec<String>,
}

impl std::fmt::Debug for RoomKeys {
    // Values are secrets: only names reach logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RoomKeys")
            .field("keys", &self.values.keys().collect::<Vec<_>>())
            .field("rotated", &self.rotated)
            .field("generated", &self.generated)
            .finish()
    }
}

/// Names of the keys a room needs.
pub fn wanted_keys(own_stream_key: bool) -> Vec<&'static str> {
    if own_stream_key {
        vec![CHAT_SIGNING_KEY_KEY]
    } else {
        vec![STREAM_KEY_KEY, CHAT_SIGNING_KEY_KEY]
    }
}

/// Decide the keys: keep what exists, generate what is missing or asked to rotate.
pub fn resolve_keys(
    existing: Option<&Secret>,
    wanted: &[&str],
    rotation_requests: &BTreeMap<String, String>,
    mut generate: impl FnMut() -> String,
) -> RoomKeys {
    let data = existing.and_then(|s| s.data.as_ref());
    let handled = existing
        .and_then(|s| s.metadata.annotations.as_ref())
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(ROTATED_ANNOTATION_PREFIX)
                        .map(|key| (key.to_owned(), v.clone()))
                })
                .collect::<BTreeMap<_, _>>()
        })
        .unwrap_or_default();

    let mut keys = RoomKeys {
        rotated: handled.clone(),
        ..RoomKeys::default()
    };
    for &name in wanted {
        let current = data
            .and_then(|d| d.get(name))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .filter(|v| !v.is_empty());
        let rotation = rotation_requests
            .get(name)
            .filter(|request| handled.get(name) != Some(*request));
        let value = match (current, rotation) {
            (Some(value), None) => value,
            (_, rotation) => {
                if let Some(request) = rotation {
                    keys.rotated.insert(name.to_owned(), request.clone());
                }
                keys.generated.push(name.to_owned());
                generate()
            }
        };
        keys.values.insert(name.to_owned(), value);
    }
    keys
}

/// A new random key: 40 alphanumeric characters (about 238 bits) from the OS generator,
/// URL-safe (it becomes an RTMP stream name).
pub fn random_key() -> String {
    random_token(40)
}

/// `length` random alphanumeric characters from the OS generator.
pub fn random_token(length: usize) -> String {
    use rand::{Rng, distr::Alphanumeric};
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(length)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;

    use super::*;

    fn secret(data: &[(&str, &str)], annotations: &[(&str, &str)]) -> Secret {
        Secret {
            data: Some(
                data.iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                annotations: Some(
                    annotations
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Secret::default()
        }
    }

    fn counter() -> impl FnMut() -> String {
        let mut n = 0;
        move || {
            n += 1;
            format!("generated-{n}")
        }
    }

    #[test]
    fn existing_keys_are_never_regenerated() {
        let existing = secret(&[("stream-key", "s1"), ("chat-signing-key", "c1")], &[]);
        let keys = resolve_keys(
            Some(&existing),
            &wanted_keys(false),
            &BTreeMap::new(),
            counter(),
        );
        assert_eq!(keys.values["stream-key"], "s1");
        assert_eq!(keys.values["chat-signing-key"], "c1");
        assert!(keys.generated.is_empty());
    }

    #[test]
    fn a_new_room_gets_both_keys() {
        let keys = resolve_keys(None, &wanted_keys(false), &BTreeMap::new(), counter());
        assert_eq!(keys.generated, vec!["stream-key", "chat-signing-key"]);
        assert_ne!(keys.values["stream-key"], keys.values["chat-signing-key"]);
    }

    #[test]
    fn deleting_a_key_field_rotates_only_that_key() {
        let existing = secret(&[("chat-signing-key", "c1")], &[]);
        let keys = resolve_keys(
            Some(&existing),
            &wanted_keys(false),
            &BTreeMap::new(),
            counter(),
        );
        assert_eq!(keys.generated, vec!["stream-key"]);
        assert_eq!(keys.values["chat-signing-key"], "c1");
    }

    #[test]
    fn rotation_annotation_rotates_once() {
        let requests = BTreeMap::from([("stream-key".to_owned(), "2026-11-29".to_owned())]);
        let existing = secret(&[("stream-key", "s1"), ("chat-signing-key", "c1")], &[]);
        let keys = resolve_keys(Some(&existing), &wanted_keys(false), &requests, counter());
        assert_eq!(keys.values["stream-key"], "generated-1");
        assert_eq!(keys.rotated["stream-key"], "2026-11-29");

        // Next pass: the Secret records the handled request, so nothing changes.
        let applied = secret(
            &[("stream-key", "generated-1"), ("chat-signing-key", "c1")],
            &[("roomcast.dev/rotated-stream-key", "2026-11-29")],
        );
        let again = resolve_keys(Some(&applied), &wanted_keys(false), &requests, counter());
        assert!(again.generated.is_empty());
        assert_eq!(again.values["stream-key"], "generated-1");
    }

    #[test]
    fn own_stream_key_secret_means_no_generated_stream_key() {
        let keys = resolve_keys(None, &wanted_keys(true), &BTreeMap::new(), counter());
        assert!(!keys.values.contains_key("stream-key"));
    }

    #[test]
    fn random_keys_are_long_and_distinct() {
        let (a, b) = (random_key(), random_key());
        assert_eq!(a.len(), 40);
        assert_ne!(a, b);
    }

    #[test]
    fn debug_output_never_contains_key_values() {
        let existing = secret(&[("stream-key", "super-secret-value")], &[]);
        let keys = resolve_keys(
            Some(&existing),
            &wanted_keys(false),
            &BTreeMap::new(),
            counter(),
        );
        assert!(!format!("{keys:?}").contains("super-secret-value"));
    }
}
