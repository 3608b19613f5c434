//! YAML that every Kubernetes tool reads the same way.
//!
//! serde_yaml writes YAML 1.2; kubectl and much of the Kubernetes tooling still read YAML 1.1,
//! where a bare `yes`, `no`, `on` or `off` is a boolean. Everything roomcast writes as YAML
//! for people and tools (the worker configuration, `render` output) goes through
//! [`to_string`].

use serde::Serialize;

/// Serialize as YAML with YAML 1.1 boolean words quoted.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> Result<String, serde_yaml::Error> {
    Ok(quote_yaml_1_1_booleans(&serde_yaml::to_string(value)?))
}

/// Words YAML 1.1 reads as booleans. serde_yaml writes YAML 1.2, where they are plain
/// strings, so it leaves them unquoted; kubectl and most Kubernetes tooling still parse YAML
/// 1.1 and would turn an annotation value `yes` into `true`. (`true`/`false` need nothing:
/// serde_yaml quotes them when they are strings, and real booleans must stay bare.)
const YAML_1_1_BOOLEANS: [&str; 16] = [
    "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
    "OFF",
];

/// Quote plain scalars that YAML 1.1 would read as booleans. Block scalars are left as they
/// are: their content is a string, already safe, or YAML that went through this function.
pub fn quote_yaml_1_1_booleans(yaml: &str) -> String {
    let mut out = String::with_capacity(yaml.len());
    // Indentation of the key that opened a block scalar; deeper lines are its content.
    let mut block_indent: Option<usize> = None;
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        if let Some(open) = block_indent {
            if line.trim().is_empty() || indent > open {
                out.push_str(line);
                out.push('\n');
                continue;
            }
            block_indent = None;
        }
        let trimmed = line.trim_end();
        if trimmed.ends_with('|')
            || trimmed.ends_with("|-")
            || trimmed.ends_with('>')
            || trimmed.ends_with(">-")
        {
            block_indent = Some(indent);
        }
        // The scalar is what follows `key: ` or `- `.
        let value_start = match line.find(": ") {
            Some(i) => i + 2,
            None if line.trim_start().starts_with("- ") => indent + 2,
            None => {
                out.push_str(line);
                out.push('\n');
                continue;
            }
        };
        let (head, value) = line.split_at(value_start);
        if YAML_1_1_BOOLEANS.contains(&value) {
            out.push_str(head);
            out.push('\'');
            out.push_str(value);
            out.push('\'');
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::quote_yaml_1_1_booleans;

    #[test]
    fn yaml_1_1_boolean_words_are_quoted_outside_block_scalars() {
        let yaml = "metadata:\n  annotations:\n    a: yes\n    b: on\n    c: 'true'\n    d: online\n    e: true\ndata:\n  room.yaml: |\n    enabled: no\n  other: off\nlist:\n- n\n";
        let expected = "metadata:\n  annotations:\n    a: 'yes'\n    b: 'on'\n    c: 'true'\n    d: online\n    e: true\ndata:\n  room.yaml: |\n    enabled: no\n  other: 'off'\nlist:\n- 'n'\n";
        assert_eq!(quote_yaml_1_1_booleans(yaml), expected);
    }
}
