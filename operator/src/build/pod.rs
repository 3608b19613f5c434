//! Pieces every worker pod shares: the restricted Pod Security Standard, probes, mounts.
use k8s_openapi::{
    api::core::v1::{
        Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
        EnvVar, EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PodSecurityContext,
        Probe, SeccompProfile, SecretVolumeSource, SecurityContext, Volume, VolumeMount,
    },
    apimachinery::pkg::{api::resource::Quantity, util::intstr::IntOrString},
};

/// UID/GID of the image's `roomcast` user.
pub const WORKER_UID: i64 = 10001;

pub fn pod_security_context() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(WORKER_UID),
        run_as_group: Some(WORKER_UID),
        fs_group: Some(WORKER_UID),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..PodSecurityContext::default()
    }
}

pub fn container_security_context() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            ..SeccompProfile::default()
        }),
        ..SecurityContext::default()
    }
}

pub fn container_port(name: &str, port: u16) -> ContainerPort {
    ContainerPort {
        name: Some(name.to_owned()),
        container_port: i32::from(port),
        protocol: Some("TCP".to_owned()),
        ..ContainerPort::default()
    }
}

pub fn http_probe(path: &str, period_seconds: i32, failure_threshold: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_owned()),
            port: IntOrString::String("http".to_owned()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period_seconds),
        failure_threshold: Some(failure_threshold),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

/// POD_NAME / POD_NAMESPACE from the downward API: the workers' status field manager and
/// log fields use them.
pub fn downward_env() -> Vec<EnvVar> {
    [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ]
    .into_iter()
    .map(|(name, path)| EnvVar {
        name: name.to_owned(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_owned(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    })
    .collect()
}

/// A volume and its read-only mount, built together so they cannot drift apart.
pub struct Mount {
    pub volume: Volume,
    pub mount: VolumeMount,
}

impl Mount {
    pub fn config_map(name: &str, config_map: String, path: &str) -> Self {
        Self::new(
            Volume {
                name: name.to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: config_map,
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            path,
            true,
        )
    }

    /// A Secret mounted read-only (0440); `items` limits and renames keys.
    pub fn secret(
        name: &str,
        secret: String,
        items: Option<Vec<(String, String)>>,
        path: &str,
    ) -> Self {
        Self::new(
            Volume {
                name: name.to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(secret),
                    default_mode: Some(0o440),
                    items: items.map(|items| {
                        items
                            .into_iter()
                            .map(|(key, path)| KeyToPath {
                                key,
                                path,
                                ..KeyToPath::default()
                            })
                            .collect()
                    }),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            path,
            true,
        )
    }

    /// A writable scratch directory with a size limit (the root filesystem is read-only).
    pub fn empty_dir(name: &str, size_limit_mib: u32, path: &str) -> Self {
        Self::new(
            Volume {
                name: name.to_owned(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity(format!("{size_limit_mib}Mi"))),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            },
            path,
            false,
        )
    }

    fn new(volume: Volume, path: &str, read_only: bool) -> Self {
        let mount = VolumeMount {
            name: volume.name.clone(),
            mount_path: path.to_owned(),
            read_only: Some(read_only),
            ..VolumeMount::default()
        };
        Self { volume, mount }
    }
}

/// A worker container with everything shared filled in.
pub fn worker_container(
    name: &str,
    image: &str,
    pull_policy: Option<&String>,
    command: &str,
) -> Container {
    Container {
        name: name.to_owned(),
        image: Some(image.to_owned()),
        image_pull_policy: pull_policy.cloned(),
        command: Some(vec![command.to_owned()]),
        args: Some(vec![
            "--config".to_owned(),
            format!(
                "{}/{}",
                roomcast_crds::worker_config::CONFIG_DIR,
                roomcast_crds::worker_config::CONFIG_KEY
            ),
        ]),
        env: Some(downward_env()),
        security_context: Some(container_security_context()),
        readiness_probe: Some(http_probe("/readyz", 5, 3)),
        liveness_probe: Some(http_probe("/healthz", 10, 6)),
        ..Container::default()
    }
}
