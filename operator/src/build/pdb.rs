use k8s_openapi::{
    api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec},
    apimachinery::pkg::util::intstr::IntOrString,
};

use crate::{labels::Component, validate::ValidRoom};

/// `<room>-chat`: node drains take chat replicas one at a time, so viewers on the others keep
/// talking. (`maxUnavailable`, not `minAvailable`: a one-replica room must still drain.)
pub fn build_chat_pdb(room: &ValidRoom) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: room.room.meta("chat", Component::Chat),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(room.room.selector(Component::Chat)),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }
}
