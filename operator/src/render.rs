//! `roomcast-operator render`: the children the operator would apply for a room file, as a
//! YAML stream, for review before `kubectl apply` (like `helm template`). Generated keys are
//! shown as placeholders; the real ones are made in the cluster and never printed.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;

use crate::{
    Result,
    build::{BuildInputs, build_children},
    config::OperatorConfig,
    keys::{resolve_keys, wanted_keys},
    validate::{SecretSource, validate},
};
use roomcast_crds::worker_config::{MONGODB_URI_KEY, REDIS_URL_KEY};

/// Placeholder for keys that the operator generates in the cluster.
pub const GENERATED_PLACEHOLDER: &str = "<generated-in-cluster>";

/// Render every room in `yaml` (one or more documents).
pub fn render(yaml: &str, config: &OperatorConfig) -> Result<String> {
    let mut out = String::new();
    // Strict field validation, as `kubectl apply` does: a typo is an error, not a dropped field.
    for mut room in roomcast_crds::room_file::rooms_from_yaml(yaml)? {
        // A file has no uid; the API server assigns one. Render with a stand-in so owner
        // references are visible.
        room.metadata
            .uid
            .get_or_insert_with(|| "00000000-0000-0000-0000-000000000000".to_owned());
        room.metadata
            .namespace
            .get_or_insert_with(|| "default".to_owned());
        let valid = validate(&room, config)?;
        let keys = resolve_keys(
            None,
            &wanted_keys(valid.spec.ingest.stream_key_secret_ref.is_some()),
            &BTreeMap::new(),
            || GENERATED_PLACEHOLDER.to_owned(),
        );
        let placeholder = |key: &str| {
            BTreeMap::from([(
                key.to_owned(),
                ByteString(GENERATED_PLACEHOLDER.as_bytes().to_vec()),
            )])
        };
        let shared = |source: &Option<SecretSource>, key: &str| {
            matches!(source, Some(SecretSource::Shared)).then(|| placeholder(key))
        };
        let inputs = BuildInputs {
            keys,
            // Copies of the operator's default Secrets, whose values only the cluster knows.
            default_s3_credentials: valid
                .recording
                .as_ref()
                .filter(|r| r.uses_default_credentials)
                .map(|_| placeholder("AWS_ACCESS_KEY_ID")),
            default_mongodb: shared(&valid.mongodb, MONGODB_URI_KEY),
            default_redis: shared(&valid.redis, REDIS_URL_KEY),
        };
        for child in build_children(&valid, config, &inputs)? {
            out.push_str("---\n");
            out.push_str(&roomcast_crds::yaml::to_string(&child.to_json()?)?);
        }
    }
    Ok(out)
}
