//! What a test does when a real component it needs (a GStreamer plugin, ffmpeg, Chromium,
//! Redis, the MongoDB-wire server) is missing on this machine.
//!
//! On a developer's machine the test prints why and passes without running, so a checkout
//! without Chromium can still run the rest. In CI (`CI` set, as every CI system does) the
//! test fails instead: CI installs every component, so a skip there means an install step is
//! missing, and a green run must not hide it.

/// True when the `CI` environment variable says this is a CI run (set and not `false`/`0`).
pub fn in_ci() -> bool {
    ci_value_means_ci(std::env::var("CI").ok().as_deref())
}

fn ci_value_means_ci(value: Option<&str>) -> bool {
    match value.map(str::trim) {
        None | Some("") => false,
        Some(v) => !(v.eq_ignore_ascii_case("false") || v == "0"),
    }
}

/// Report that `component` is missing (`why`: what was looked for). Panics under CI; prints a
/// skip notice otherwise, after which the caller returns.
#[track_caller]
pub fn missing(component: &str, why: &str) {
    if in_ci() {
        panic!("{component} is missing in CI, where every test must run: {why}");
    }
    eprintln!("SKIP: {component} is missing ({why}); this test did not run");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_is_detected_from_the_usual_values() {
        for ci in ["true", "1", "yes", "TRUE"] {
            assert!(ci_value_means_ci(Some(ci)), "{ci}");
        }
        for not_ci in [
            None,
            Some(""),
            Some("false"),
            Some("False"),
            Some("0"),
            Some(" "),
        ] {
            assert!(!ci_value_means_ci(not_ci), "{not_ci:?}");
        }
    }
}
