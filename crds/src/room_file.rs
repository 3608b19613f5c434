//! Reading `StreamRoom` YAML written by people (`roomcast dev -f`, `render`) the way the API
//! server reads it with strict field validation (`kubectl apply --validate=strict`, the default
//! since Kubernetes 1.27): a field the schema does not know is an error that names it, not a
//! value silently dropped. A `transcod:` typo for `transcode:` would otherwise run a room with
//! the default ladder and say nothing.

use serde_json::Value;

use crate::StreamRoom;

/// Fields of `metadata` (ObjectMeta) a manifest may carry.
const OBJECT_META_FIELDS: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Why a room file cannot be read. `document` counts from 1.
#[derive(Debug, thiserror::Error)]
pub enum RoomFileError {
    #[error("document {document}: not YAML: {source}")]
    Yaml {
        document: usize,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("document {document}: unknown field \"{path}\"{hint}")]
    UnknownField {
        document: usize,
        path: String,
        hint: String,
    },
    #[error("document {document}: {source}")]
    Invalid {
        document: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Every `StreamRoom` in `yaml` (one or more `---` documents; empty documents are skipped),
/// refusing fields the CRD schema does not define.
pub fn rooms_from_yaml(yaml: &str) -> Result<Vec<StreamRoom>, RoomFileError> {
    let schema = room_schema();
    let mut rooms = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
        let document_number = index + 1;
        let value: Value =
            serde::Deserialize::deserialize(document).map_err(|source| RoomFileError::Yaml {
                document: document_number,
                source,
            })?;
        if value.is_null() {
            continue;
        }
        if let Some((path, known)) = first_unknown_field(&value, &schema, "") {
            return Err(RoomFileError::UnknownField {
                document: document_number,
                hint: hint(&path, &known),
                path,
            });
        }
        let room = serde_json::from_value(value).map_err(|source| RoomFileError::Invalid {
            document: document_number,
            source,
        })?;
        rooms.push(room);
    }
    Ok(rooms)
}

/// The openAPIV3Schema of the served version, as the API server would prune against it.
fn room_schema() -> Value {
    use kube::CustomResourceExt;
    let crd = serde_json::to_value(StreamRoom::crd()).unwrap_or_default();
    crd.pointer("/spec/versions/0/schema/openAPIV3Schema")
        .cloned()
        .unwrap_or_default()
}

/// The path of the first field of `value` that `schema` does not define, with the names it
/// does define at that level (for the hint).
fn first_unknown_field(value: &Value, schema: &Value, path: &str) -> Option<(String, Vec<String>)> {
    match value {
        Value::Object(fields) => {
            if schema
                .get("x-kubernetes-preserve-unknown-fields")
                .and_then(Value::as_bool)
                == Some(true)
            {
                return None;
            }
            let properties = schema.get("properties").and_then(Value::as_object);
            let additional = schema.get("additionalProperties");
            for (key, child) in fields {
                let child_path = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                // Every object has these; a CRD schema leaves them out.
                if path.is_empty() && matches!(key.as_str(), "apiVersion" | "kind" | "metadata") {
                    if key == "metadata"
                        && let Some(found) = first_unknown_field(child, &Value::Null, "metadata")
                    {
                        return Some(found);
                    }
                    continue;
                }
                if path == "metadata" {
                    // ObjectMeta is `type: object` in a CRD schema; the API server checks it
                    // against its own type.
                    if !OBJECT_META_FIELDS.contains(&key.as_str()) {
                        let known = OBJECT_META_FIELDS.iter().map(|s| s.to_string()).collect();
                        return Some((child_path, known));
                    }
                    continue;
                }
                let child_schema = match properties.and_then(|p| p.get(key)) {
                    Some(s) => s,
                    None => match additional {
                        Some(Value::Object(_)) => additional.unwrap_or(&Value::Null),
                        Some(Value::Bool(true)) => continue,
                        _ if properties.is_none() => continue,
                        _ => {
                            let known = properties
                                .map(|p| p.keys().cloned().collect())
                                .unwrap_or_default();
                            return Some((child_path, known));
                        }
                    },
                };
                if let Some(found) = first_unknown_field(child, child_schema, &child_path) {
                    return Some(found);
                }
            }
            None
        }
        Value::Array(items) => {
            let item_schema = schema.get("items")?;
            items.iter().enumerate().find_map(|(i, item)| {
                first_unknown_field(item, item_schema, &format!("{path}[{i}]"))
            })
        }
        _ => None,
    }
}

/// `; did you mean "transcode"?` when a known field is one or two edits away.
fn hint(path: &str, known: &[String]) -> String {
    let field = path.rsplit(['.', ']']).next().unwrap_or(path);
    known
        .iter()
        .filter(|k| edit_distance(field, k) <= 2)
        .min_by_key(|k| edit_distance(field, k))
        .map(|k| format!("; did you mean \"{k}\"?"))
        .unwrap_or_default()
}

/// Levenshtein distance (field names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
apiVersion: roomcast.dev/v1alpha1
kind: StreamRoom
metadata: {name: lobby, namespace: shows, labels: {team: a}}
spec:
  transcode:
    segmentSeconds: 2
    renditions:
      - {name: source}
      - {name: 360p, height: 360, videoKbps: 800, audioKbps: 96}
";

    fn unknown(yaml: &str) -> (usize, String, String) {
        match rooms_from_yaml(yaml) {
            Err(RoomFileError::UnknownField {
                document,
                path,
                hint,
            }) => (document, path, hint),
            other => panic!("expected an unknown field, got {other:?}"),
        }
    }

    #[test]
    fn a_well_formed_file_reads_every_room() {
        let two = format!("{GOOD}---\n{}", GOOD.replace("lobby", "stage"));
        let rooms = rooms_from_yaml(&two).expect("valid rooms");
        let names: Vec<_> = rooms
            .iter()
            .filter_map(|r| r.metadata.name.clone())
            .collect();
        assert_eq!(names, ["lobby", "stage"]);
        assert_eq!(
            rooms_from_yaml("---\n---\n")
                .expect("empty documents")
                .len(),
            0
        );
    }

    #[test]
    fn a_typo_in_a_section_name_is_refused_with_a_hint() {
        let (document, path, hint) = unknown(&GOOD.replace("transcode:", "transcod:"));
        assert_eq!(document, 1);
        assert_eq!(path, "spec.transcod");
        assert_eq!(hint, "; did you mean \"transcode\"?");
        let err = rooms_from_yaml(&GOOD.replace("transcode:", "transcod:")).expect_err("typo");
        assert_eq!(
            err.to_string(),
            "document 1: unknown field \"spec.transcod\"; did you mean \"transcode\"?"
        );
    }

    #[test]
    fn unknown_fields_are_found_at_every_depth() {
        let nested = GOOD.replace("segmentSeconds: 2", "segmentSeconds: 2\n    latency: low");
        assert_eq!(unknown(&nested).1, "spec.transcode.latency");
        let in_list = GOOD.replace("{name: source}", "{name: source, bitrate: 5}");
        assert_eq!(unknown(&in_list).1, "spec.transcode.renditions[0].bitrate");
        let in_metadata = GOOD.replace("namespace: shows", "namespce: shows");
        let (_, path, hint) = unknown(&in_metadata);
        assert_eq!(path, "metadata.namespce");
        assert_eq!(hint, "; did you mean \"namespace\"?");
        let top = format!("{GOOD}extra: 1\n");
        assert_eq!(unknown(&top).1, "extra");
        let second = format!("{GOOD}---\n{}", GOOD.replace("spec:", "spec:\n  chatt: {}"));
        assert_eq!(unknown(&second).0, 2, "the document is named");
    }

    #[test]
    fn free_form_maps_take_any_key() {
        // Labels and annotations are maps: any key is data, not a field.
        let labels = GOOD.replace("team: a", "anything.example.com/x: y");
        assert!(rooms_from_yaml(&labels).is_ok());
    }

    #[test]
    fn hostile_documents_are_errors_not_panics() {
        for bad in [
            "[1, 2",
            "spec: [",
            "- a\n- b\n",
            "42",
            "apiVersion: roomcast.dev/v1alpha1\nkind: StreamRoom\nspec: 7\n",
            "&a [*a]",
            "\u{0}",
        ] {
            assert!(rooms_from_yaml(bad).is_err(), "{bad:?} accepted");
        }
        // Deep nesting inside a known free-form map stays bounded by serde_yaml's own limit.
        let deep = format!(
            "metadata:\n  labels: {}{}\n",
            "[".repeat(10_000),
            "]".repeat(10_000)
        );
        assert!(rooms_from_yaml(&deep).is_err());
    }

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("transcod", "transcode"), 1);
        assert_eq!(edit_distance("chat", "chat"), 0);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(hint("spec.zzzzzz", &["chat".into()]), "");
    }
}
