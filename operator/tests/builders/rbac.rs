//! The worker ServiceAccount, Role and RoleBinding.

use crate::fixtures::*;

#[test]
fn service_account_carries_the_s3_service_account_annotations() {
    let children = build(&room(FULL_SPEC), &platform_config());
    assert_eq!(
        service_account_annotations(&children),
        Some(string_map(&[(
            "eks.amazonaws.com/role-arn",
            "arn:aws:iam::123456789012:role/roomcast-vods"
        )]))
    );
}

#[test]
fn service_account_has_no_annotations_when_recording_is_off() {
    let spec = FULL_SPEC.replace("enabled: true", "enabled: false");
    let children = build(&room(&spec), &platform_config());
    assert_eq!(service_account_annotations(&children), None);
}

/// `(apiGroups, resources, resourceNames, verbs)` of a PolicyRule.
type RuleSummary = (Vec<String>, Vec<String>, Option<Vec<String>>, Vec<String>);

#[test]
fn worker_role_only_reads_and_patches_the_status_of_its_own_room() {
    let children = build(&room("{}"), &platform_config());
    let rules = role(&children, "lobby-worker")
        .rules
        .as_ref()
        .expect("rules");
    let summary: Vec<RuleSummary> = rules
        .iter()
        .map(|r| {
            (
                r.api_groups.clone().unwrap_or_default(),
                r.resources.clone().unwrap_or_default(),
                r.resource_names.clone(),
                r.verbs.clone(),
            )
        })
        .collect();
    let strings = |s: &[&str]| s.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        summary,
        [(
            strings(&["roomcast.dev"]),
            strings(&["streamrooms/status"]),
            Some(strings(&["lobby"])),
            strings(&["get", "patch"]),
        ),]
    );
    for rule in rules {
        assert_eq!(rule.non_resource_urls, None);
        assert!(!rule.verbs.iter().any(|v| v == "*"));
    }
}

#[test]
fn role_binding_binds_the_worker_service_account_to_the_worker_role() {
    let children = build(&room("{}"), &platform_config());
    let binding = role_binding(&children, "lobby-worker");
    assert_eq!(binding.role_ref.api_group, "rbac.authorization.k8s.io");
    assert_eq!(binding.role_ref.kind, "Role");
    assert_eq!(binding.role_ref.name, "lobby-worker");
    let subjects: Vec<(&str, &str, Option<&str>)> = binding
        .subjects
        .iter()
        .flatten()
        .map(|s| (s.kind.as_str(), s.name.as_str(), s.namespace.as_deref()))
        .collect();
    assert_eq!(
        subjects,
        [("ServiceAccount", "lobby-worker", Some(NAMESPACE))]
    );
}
