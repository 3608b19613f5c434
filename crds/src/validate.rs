//! Client-side validation with the same rules the API server applies to the CRD: the schema's
//! bounds (minimum/maximum, lengths, item counts, patterns) and its CEL
//! `x-kubernetes-validations`, both read from the generated CRD so there is one source of truth.
//!
//! The operator runs this before building children (an old CRD in the cluster may not carry
//! every rule), and `roomcast dev` runs it on rooms read from files, where no API server checks
//! anything.

use std::fmt;

use kube::CustomResourceExt;
use serde_json::Value;

use crate::StreamRoom;

/// One broken rule, with the field it concerns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// JSON path of the field, e.g. `spec.transcode.segmentSeconds`.
    pub field: String,
    /// What is wrong, for humans.
    pub message: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A room that breaks one or more rules.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid StreamRoom {name}: {}", .violations.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
pub struct InvalidRoom {
    /// Room name (`namespace/name` when namespaced).
    pub name: String,
    /// Every broken rule, schema bounds first.
    pub violations: Vec<Violation>,
}

/// Check a room against the CRD's schema bounds and CEL rules.
pub fn validate_room(room: &StreamRoom) -> Result<(), InvalidRoom> {
    let name = match &room.metadata.namespace {
        Some(ns) => format!("{ns}/{}", room.metadata.name.as_deref().unwrap_or_default()),
        None => room.metadata.name.clone().unwrap_or_default(),
    };
    let mut violations = Vec::new();
    match (serde_json::to_value(room), crd_schema()) {
        (Ok(object), Some(schema)) => check_bounds(&schema, &object, "", &mut violations),
        _ => violations.push(Violation {
            field: String::new(),
            message: "room or schema does not serialize".to_owned(),
        }),
    }
    if let Err(errors) = room.validate_cel() {
        violations.extend(errors.into_vec().into_iter().map(|e| Violation {
            field: e.field_path,
            message: e.message,
        }));
    }
    if violations.is_empty() {
        Ok(())
    } else {
        Err(InvalidRoom { name, violations })
    }
}

fn crd_schema() -> Option<Value> {
    let crd = StreamRoom::crd();
    let schema = crd
        .spec
        .versions
        .first()?
        .schema
        .as_ref()?
        .open_api_v3_schema
        .as_ref()?;
    serde_json::to_value(schema).ok()
}

/// Walk `value` along `schema`, collecting every broken bound. Only the keywords the roomcast
/// schema uses are checked; CEL rules are left to kube's evaluator.
fn check_bounds(schema: &Value, value: &Value, path: &str, out: &mut Vec<Violation>) {
    let mut fail = |message: String| {
        out.push(Violation {
            field: path.trim_start_matches('.').to_owned(),
            message,
        })
    };
    match value {
        Value::Number(n) => {
            let n = n.as_f64().unwrap_or_default();
            if let Some(min) = schema.get("minimum").and_then(Value::as_f64)
                && n < min
            {
                fail(format!("must be at least {min}, got {n}"));
            }
            if let Some(max) = schema.get("maximum").and_then(Value::as_f64)
                && n > max
            {
                fail(format!("must be at most {max}, got {n}"));
            }
        }
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
                && len < min
            {
                fail(format!("must be at least {min} characters long"));
            }
            if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
                && len > max
            {
                fail(format!("must be at most {max} characters long"));
            }
            if let Some(pattern) = schema.get("pattern").and_then(Value::as_str) {
                match regex::Regex::new(pattern) {
                    Ok(re) if !re.is_match(s) => fail(format!("{s:?} does not match {pattern}")),
                    Ok(_) => {}
                    Err(e) => fail(format!("schema pattern {pattern} is invalid: {e}")),
                }
            }
        }
        Value::Array(items) => {
            let len = items.len() as u64;
            if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
                && len < min
            {
                fail(format!("must have at least {min} items"));
            }
            if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
                && len > max
            {
                fail(format!("must have at most {max} items"));
            }
            if let Some(item_schema) = schema.get("items") {
                for (i, item) in items.iter().enumerate() {
                    check_bounds(item_schema, item, &format!("{path}[{i}]"), out);
                }
            }
        }
        Value::Object(fields) => {
            let properties = schema.get("properties").and_then(Value::as_object);
            if let Some(required) = schema.get("required").and_then(Value::as_array) {
                for key in required.iter().filter_map(Value::as_str) {
                    if !fields.contains_key(key) {
                        out.push(Violation {
                            field: format!("{path}.{key}").trim_start_matches('.').to_owned(),
                            message: "is required".to_owned(),
                        });
                    }
                }
            }
            for (key, field) in fields {
                let field_schema = properties
                    .and_then(|p| p.get(key))
                    .or_else(|| schema.get("additionalProperties").filter(|s| s.is_object()));
                if let Some(field_schema) = field_schema {
                    check_bounds(field_schema, field, &format!("{path}.{key}"), out);
                }
            }
        }
        Value::Null | Value::Bool(_) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn room(yaml: &str) -> StreamRoom {
        serde_yaml::from_str(yaml).expect("test room parses")
    }

    fn fields(yaml: &str) -> Vec<String> {
        match validate_room(&room(yaml)) {
            Ok(()) => vec![],
            Err(e) => e
                .violations
                .into_iter()
                .map(|v| format!("{} {}", v.field, v.message))
                .collect(),
        }
    }

    const HEADER: &str = "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: lobby, namespace: shows}\n";

    #[test]
    fn minimal_room_is_valid_with_defaults() {
        assert_eq!(fields(&format!("{HEADER}spec: {{}}")), Vec::<String>::new());
    }

    #[test]
    fn full_design_example_is_valid() {
        let yaml = include_str!("../../tests/fixtures/rooms/full.yaml");
        assert_eq!(fields(yaml), Vec::<String>::new());
    }

    /// Every place a room names a Secret of its namespace, as `(spec YAML with {name}, field)`.
    const SECRET_REFS: &[(&str, &str)] = &[
        (
            "mongodbSecretRef: {name: NAME}",
            "spec.mongodbSecretRef.name",
        ),
        (
            "chat: {redisSecretRef: {name: NAME}}",
            "spec.chat.redisSecretRef.name",
        ),
        (
            "recording: {enabled: true, s3: {bucket: vods, credentialsSecretRef: {name: NAME}}}",
            "spec.recording.s3.credentialsSecretRef.name",
        ),
        (
            "playback: {tlsSecretRef: {name: NAME}}",
            "spec.playback.tlsSecretRef.name",
        ),
    ];

    #[test]
    fn secret_refs_accept_secret_names() {
        for (spec, field) in SECRET_REFS {
            for name in ["own-mongo", "a", "redis.prod-1"] {
                let yaml = format!("{HEADER}spec: {{{}}}", spec.replace("NAME", name));
                assert_eq!(fields(&yaml), Vec::<String>::new(), "{field} = {name}");
            }
        }
    }

    #[test]
    fn secret_refs_refuse_what_is_not_a_secret_name() {
        let long = "a".repeat(254);
        for (spec, field) in SECRET_REFS {
            for name in [
                "''",
                "../roomcast-system/roomcast-s3",
                "Roomcast",
                "a b",
                "'s3;rm -rf /'",
                "-lead",
                "trail-",
                "a..b",
                "'a/b'",
                "'x\\u0000y'",
                long.as_str(),
            ] {
                let yaml = format!("{HEADER}spec: {{{}}}", spec.replace("NAME", name));
                let found = fields(&yaml);
                assert!(
                    found.iter().any(|f| f.starts_with(field)),
                    "{field} = {name:?} must be refused, got {found:?}"
                );
            }
        }
    }

    #[test]
    fn duplicate_rendition_names_are_refused() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode:\n    renditions:\n    - {{name: source}}\n    - {{name: 720p, height: 720, videoKbps: 2800}}\n    - {{name: 720p, height: 720, videoKbps: 2000}}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.contains("rendition names must be unique")),
            "{errs:?}"
        );
    }

    #[test]
    fn segment_seconds_outside_1_to_10_is_refused() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode: {{segmentSeconds: 11, dvrWindowSeconds: 120}}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.transcode.segmentSeconds must be at most 10")),
            "{errs:?}"
        );
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode: {{segmentSeconds: 0}}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.transcode.segmentSeconds must be at least 1")),
            "{errs:?}"
        );
    }

    #[test]
    fn latency_defaults_to_standard_with_half_second_parts() {
        let room = room(&format!("{HEADER}spec: {{}}"));
        assert_eq!(room.spec.playback.latency, crate::Latency::Standard);
        assert_eq!(room.spec.playback.part_target_ms, 500);
        let low = room_with_playback("{latency: low, partTargetMs: 333}");
        assert_eq!(low.spec.playback.latency, crate::Latency::Low);
        assert!(validate_room(&low).is_ok());
    }

    fn room_with_playback(playback: &str) -> StreamRoom {
        room(&format!("{HEADER}spec:\n  playback: {playback}\n"))
    }

    #[test]
    fn part_targets_outside_200_to_1000_ms_are_refused() {
        for (value, message) in [
            ("0", "must be at least 200"),
            ("199", "must be at least 200"),
            ("1001", "must be at most 1000"),
            ("4294967295", "must be at most 1000"),
        ] {
            let errs = fields(&format!(
                "{HEADER}spec:\n  playback: {{latency: low, partTargetMs: {value}}}\n"
            ));
            assert!(
                errs.iter()
                    .any(|e| e.starts_with(&format!("spec.playback.partTargetMs {message}"))),
                "{value}: {errs:?}"
            );
        }
    }

    #[test]
    fn unknown_latency_modes_and_negative_parts_do_not_parse() {
        for playback in [
            "{latency: ultra}",
            "{latency: LOW}",
            "{latency: 1}",
            "{latency: ''}",
            "{partTargetMs: -500}",
            "{partTargetMs: 99999999999}",
            "{partTargetMs: '500; drop'}",
        ] {
            let yaml = format!("{HEADER}spec:\n  playback: {playback}\n");
            assert!(
                serde_yaml::from_str::<StreamRoom>(&yaml).is_err(),
                "{playback} parsed"
            );
        }
        let schema = crd_schema().expect("schema");
        let latency =
            &schema["properties"]["spec"]["properties"]["playback"]["properties"]["latency"];
        assert_eq!(
            latency["enum"],
            serde_json::json!(["standard", "low"]),
            "{latency}"
        );
    }

    #[test]
    fn dvr_window_must_hold_three_segments() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode: {{segmentSeconds: 4, dvrWindowSeconds: 11}}\n"
        ));
        assert!(
            errs.iter().any(|e| e.contains("at least 3 segments")),
            "{errs:?}"
        );
        assert_eq!(
            fields(&format!(
                "{HEADER}spec:\n  transcode: {{segmentSeconds: 4, dvrWindowSeconds: 12}}\n"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn invalid_host_name_is_refused() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  playback: {{host: Live_Example.com}}\n"
        ));
        assert!(
            errs.iter().any(|e| e.starts_with("spec.playback.host")),
            "{errs:?}"
        );
    }

    #[test]
    fn bitrate_bounds_are_enforced() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  ingest: {{maxBitrateKbps: 50}}\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.ingest.maxBitrateKbps must be at least 100")),
            "{errs:?}"
        );
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode:\n    renditions: [{{name: 4k, height: 2160, videoKbps: 90000}}]\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.transcode.renditions[0].videoKbps must be at most")),
            "{errs:?}"
        );
    }

    #[test]
    fn encoded_rendition_needs_height_and_source_must_not_have_one() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode:\n    renditions: [{{name: 720p}}]\n"
        ));
        assert!(
            errs.iter()
                .any(|e| e.contains("needs height and videoKbps")),
            "{errs:?}"
        );
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode:\n    renditions: [{{name: source, height: 720}}]\n"
        ));
        assert!(errs.iter().any(|e| e.contains("passthrough")), "{errs:?}");
    }

    #[test]
    fn room_name_must_be_a_short_dns_label() {
        let errs = fields(
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {name: 9lives}\nspec: {}\n",
        );
        assert!(errs.iter().any(|e| e.contains("DNS-1035")), "{errs:?}");
        let long = "a".repeat(41);
        let errs = fields(&format!(
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nmetadata: {{name: {long}}}\nspec: {{}}\n"
        ));
        assert!(errs.iter().any(|e| e.contains("at most 40")), "{errs:?}");
    }

    #[test]
    fn every_violation_is_reported_not_only_the_first() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  ingest: {{maxBitrateKbps: 1}}\n  chat: {{replicas: 0}}\n"
        ));
        assert_eq!(errs.len(), 2, "{errs:?}");
    }

    fn recording_room(prefix: &str) -> String {
        let prefix = serde_json::to_string(prefix).expect("json string");
        format!(
            "{HEADER}spec:\n  recording:\n    enabled: true\n    s3: {{bucket: media, prefix: {prefix}}}\n"
        )
    }

    /// Prefixes an attacker (or a tired operator) would pick; each one breaks the key layout
    /// `<prefix><namespace>/<room>/...` or the media worker's start.
    const HOSTILE_PREFIXES: &[&str] = &[
        "rooms",
        "/",
        "/rooms/",
        "a//",
        "//",
        "../x/",
        "./",
        "a/../",
        "a/./b/",
        "..",
        "rooms/..",
        "rooms /",
        "rooms\\x/",
        "rooms\n/",
        "rooms%2F../",
        "ключ/",
    ];
    const GOOD_PREFIXES: &[&str] = &["", "rooms/", "a/b/", "..x/", ".hidden/", "r-2026_(1)!*/"];

    #[test]
    fn s3_prefix_without_trailing_slash_or_with_dot_segments_is_refused() {
        for prefix in HOSTILE_PREFIXES {
            let errs = fields(&recording_room(prefix));
            assert!(
                errs.iter()
                    .any(|e| e.starts_with("spec.recording.s3.prefix must be empty or segments")),
                "{prefix:?} accepted: {errs:?}"
            );
        }
        for prefix in GOOD_PREFIXES {
            assert_eq!(
                fields(&recording_room(prefix)),
                Vec::<String>::new(),
                "{prefix:?}"
            );
        }
    }

    #[test]
    fn very_long_s3_prefix_is_refused_by_length() {
        let long = "a/".repeat(300);
        let errs = fields(&recording_room(&long));
        assert!(
            errs.iter()
                .any(|e| e.starts_with("spec.recording.s3.prefix must be at most 512 characters")),
            "{errs:?}"
        );
        assert_eq!(
            fields(&recording_room(&"a/".repeat(256))),
            Vec::<String>::new()
        );
    }

    #[test]
    fn rust_prefix_check_agrees_with_the_cel_rule() {
        for prefix in HOSTILE_PREFIXES {
            assert!(!crate::is_valid_s3_prefix(prefix), "{prefix:?}");
        }
        for prefix in GOOD_PREFIXES {
            assert!(crate::is_valid_s3_prefix(prefix), "{prefix:?}");
        }
    }

    #[test]
    fn recording_a_rendition_missing_from_the_ladder_is_refused() {
        let ladder = "  transcode:\n    renditions:\n    - {name: source}\n    - {name: 720p, height: 720, videoKbps: 2800}\n";
        for missing in ["1080p", "", "SOURCE", "720p ", "../720p"] {
            let missing = serde_json::to_string(missing).expect("json string");
            let errs = fields(&format!(
                "{HEADER}spec:\n{ladder}  recording: {{renditions: [720p, {missing}]}}\n"
            ));
            assert!(
                errs.iter().any(|e| e.starts_with(
                    "spec.recording.renditions every name in spec.recording.renditions must be a rendition"
                )),
                "{missing} accepted: {errs:?}"
            );
        }
        assert_eq!(
            fields(&format!(
                "{HEADER}spec:\n{ladder}  recording: {{renditions: [source, 720p]}}\n"
            )),
            Vec::<String>::new()
        );
        // The default ladder counts when the room names none.
        assert_eq!(
            fields(&format!(
                "{HEADER}spec:\n  recording: {{renditions: [360p]}}\n"
            )),
            Vec::<String>::new()
        );
    }

    #[test]
    fn audio_bitrate_on_the_source_rendition_is_refused() {
        let errs = fields(&format!(
            "{HEADER}spec:\n  transcode:\n    renditions: [{{name: source, audioKbps: 512}}]\n"
        ));
        assert!(errs.iter().any(|e| e.contains("audioKbps")), "{errs:?}");
        assert_eq!(
            fields(&format!(
                "{HEADER}spec:\n  transcode:\n    renditions: [{{name: source}}, {{name: 480p, height: 480, videoKbps: 1200, audioKbps: 512}}]\n"
            )),
            Vec::<String>::new()
        );
    }

    fn endpoint_room(endpoint: &str) -> String {
        let endpoint = serde_json::to_string(endpoint).expect("json string");
        format!(
            "{HEADER}spec:\n  recording:\n    enabled: true\n    s3: {{bucket: media, endpoint: {endpoint}}}\n"
        )
    }

    #[test]
    fn s3_endpoints_with_credentials_other_schemes_or_metadata_hosts_are_refused() {
        for endpoint in [
            "ftp://s3.example.com",
            "file:///etc/passwd",
            "s3.example.com",
            "https://",
            "gopher://minio:9000",
            "https://user:pass@s3.example.com",
            "https://s3.example.com@169.254.169.254",
            "https://allowed.example@evil.example",
            "https://s3.example.com/a@b",
            "http://169.254.169.254",
            "HTTP://169.254.169.254/latest/meta-data/",
            "https://169.254.0.1:9000",
            "http://[fe80::1]",
            "http://[FE80::1%25eth0]:9000",
            "http://[febf::1]",
            "http://[::ffff:169.254.169.254]",
            "http://[::ffff:a9fe:a9fe]",
            "http://[fd00:ec2::254]",
            "http://100.100.100.200/latest/meta-data/",
            "http://metadata",
            "http://metadata.google.internal/computeMetadata/v1/",
            "https://METADATA.GOOGLE.INTERNAL.:443",
            "http://metadata.goog",
            "http://instance-data.ec2.internal",
            "http://metadata.azure.internal?x=1",
        ] {
            let errs = fields(&endpoint_room(endpoint));
            assert!(
                errs.iter().any(
                    |e| e.starts_with("spec.recording.s3.endpoint must be empty or an http(s)")
                ),
                "{endpoint:?} accepted: {errs:?}"
            );
        }
        // Whether http:// and private stores may be used is the operator's call (its
        // allow-list); the API server accepts their shape.
        for endpoint in [
            "",
            "https://s3.eu-west-1.amazonaws.com",
            "HTTPS://S3.Example.COM:9443/",
            "http://minio.minio.svc:9000",
            "https://[fd00::1]:9000",
            "https://metadata-store.example.com",
            "https://s3.example.com/metadata",
            "https://169.2540.example.com",
            "https://100.100.100.2000.example.com",
        ] {
            assert_eq!(
                fields(&endpoint_room(endpoint)),
                Vec::<String>::new(),
                "{endpoint:?}"
            );
        }
    }

    #[test]
    fn ingest_expose_is_gateway_service_or_unset() {
        for (value, expected) in [
            ("gateway", Some(crate::IngestExpose::Gateway)),
            ("service", Some(crate::IngestExpose::Service)),
        ] {
            let yaml = format!("{HEADER}spec: {{ingest: {{expose: {value}}}}}");
            assert_eq!(fields(&yaml), Vec::<String>::new(), "{value}");
            assert_eq!(room(&yaml).spec.ingest.expose, expected);
        }
        assert_eq!(
            room(&format!("{HEADER}spec: {{}}")).spec.ingest.expose,
            None
        );
        // The API server refuses anything else through the schema's enum; files read by
        // `roomcast dev` fail to parse.
        let schema = crd_schema().expect("schema");
        assert_eq!(
            schema["properties"]["spec"]["properties"]["ingest"]["properties"]["expose"]["enum"],
            serde_json::json!(["gateway", "service"])
        );
        for hostile in [
            "Gateway",
            "SERVICE",
            "''",
            "loadbalancer",
            "'gateway '",
            "1",
            "[gateway]",
            "{gateway: true}",
            "\"gateway\\u0000\"",
        ] {
            let yaml = format!("{HEADER}spec: {{ingest: {{expose: {hostile}}}}}");
            assert!(
                serde_yaml::from_str::<StreamRoom>(&yaml).is_err(),
                "{hostile} accepted"
            );
        }
    }
}
