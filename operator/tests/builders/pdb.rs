//! The chat PodDisruptionBudget.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::fixtures::*;

#[test]
fn chat_pdb_selects_the_chat_pods_only() {
    let children = build(&room("chat: {replicas: 3}"), &platform_config());
    let pdb = pdb(&children, "lobby-chat");
    let spec = pdb.spec.as_ref().expect("PDB spec");
    let selector = spec
        .selector
        .as_ref()
        .and_then(|s| s.match_labels.as_ref())
        .expect("PDB selector");
    assert!(is_subset(
        selector,
        pod_labels(deployment(&children, "lobby-chat"))
    ));
    assert!(!is_subset(
        selector,
        pod_labels(deployment(&children, "lobby-media"))
    ));
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
}
