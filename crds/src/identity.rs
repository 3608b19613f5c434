//! [`RoomIdentity`]: which room a worker, a status report, a recording or a chat history
//! belongs to. Written `namespace/name` everywhere a room is one string (logs, metric labels,
//! catalog documents, store keys); parsed back with [`str::parse`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest namespace or object name Kubernetes accepts (a DNS-1123 label).
pub const MAX_NAME_LEN: usize = 63;

/// A room: its namespace and its `StreamRoom` name. `Display` writes `namespace/name`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "camelCase")]
pub struct RoomIdentity {
    pub namespace: String,
    pub name: String,
}

/// Why a string is not a `namespace/name` room.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{input:?} is not a room: {reason}")]
pub struct ParseRoomError {
    pub input: String,
    pub reason: &'static str,
}

impl RoomIdentity {
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }

    /// The room's URL path prefix on the HLS origin, chat and watch page: `/namespace/name`.
    pub fn path_prefix(&self) -> String {
        format!("/{self}")
    }
}

impl fmt::Display for RoomIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// A DNS-1123 label: what Kubernetes allows for namespaces and what roomcast allows for room
/// names. Nothing that could climb out of a directory or a key prefix (`..`, `/`, NUL) passes.
fn check_label(label: &str) -> Result<(), &'static str> {
    if label.is_empty() {
        return Err("empty namespace or name");
    }
    if label.len() > MAX_NAME_LEN {
        return Err("namespace or name longer than 63 characters");
    }
    let bytes = label.as_bytes();
    let inner_ok = bytes
        .iter()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-');
    let ends_ok =
        bytes[0].is_ascii_alphanumeric() && bytes[bytes.len() - 1].is_ascii_alphanumeric();
    if inner_ok && ends_ok {
        Ok(())
    } else {
        Err("namespace and name are lowercase letters, digits and inner '-'")
    }
}

impl FromStr for RoomIdentity {
    type Err = ParseRoomError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason| ParseRoomError {
            input: s.chars().take(2 * MAX_NAME_LEN + 1).collect(),
            reason,
        };
        let (namespace, name) = s.split_once('/').ok_or_else(|| err("no '/'"))?;
        check_label(namespace).map_err(err)?;
        check_label(name).map_err(err)?;
        Ok(Self::new(namespace, name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let room = RoomIdentity::new("shows", "lobby-2");
        assert_eq!(room.to_string(), "shows/lobby-2");
        assert_eq!(room.path_prefix(), "/shows/lobby-2");
        assert_eq!("shows/lobby-2".parse::<RoomIdentity>(), Ok(room));
    }

    #[test]
    fn hostile_room_strings_are_refused() {
        let long = "a".repeat(64);
        let too_long = format!("shows/{long}");
        for bad in [
            "",
            "shows",
            "/lobby",
            "shows/",
            "shows/../x",
            "../shows/lobby",
            "shows/lobby/extra",
            "shows/Lobby",
            "shows/-lobby",
            "shows/lobby-",
            "shows/lo by",
            "shows/lo\0by",
            "shows/lобby",
            too_long.as_str(),
        ] {
            assert!(bad.parse::<RoomIdentity>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn errors_do_not_echo_unbounded_input() {
        let huge = "x".repeat(100_000);
        let err = huge.parse::<RoomIdentity>().expect_err("no slash");
        assert!(err.to_string().len() < 300);
    }
}
