"""Every value is in the schema, has a default in values.yaml with a comment above it, is a
row of the README's table, and is set by examples/values-full.yaml."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from conftest import CHART_DIR, FULL_VALUES, REPO


def schema_leaves(schema: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted paths of the values the chart defines: descend through closed objects
    (`additionalProperties: false` with properties); anything else is one value."""
    leaves: list[str] = []
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("additionalProperties") is False and "properties" in sub and "$ref" not in sub:
            leaves += schema_leaves(sub, f"{path}.")
        else:
            leaves.append(path)
    return leaves


def lookup(values: dict[str, Any], path: str) -> tuple[bool, Any]:
    node: Any = values
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def key_lines(text: str) -> dict[str, int]:
    """Dotted key path -> line index for every mapping key in a block-style YAML file."""
    found: dict[str, int] = {}
    stack: list[tuple[int, str]] = []
    for index, line in enumerate(text.splitlines()):
        match = re.match(r"^(\s*)([A-Za-z0-9_.-]+):(\s|$)", line)
        if not match:
            continue
        indent, key = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, key))
        found[".".join(k for _, k in stack)] = index
    return found


@pytest.fixture(scope="module")
def leaves(chart) -> list[str]:
    found = schema_leaves(chart.schema)
    assert len(found) > 30
    return found


def test_schema_and_values_yaml_define_the_same_keys(chart, leaves) -> None:
    defaults = chart.values
    missing = [p for p in leaves if not lookup(defaults, p)[0]]
    assert missing == [], f"in values.schema.json but without a default in values.yaml: {missing}"
    # The other direction: additionalProperties false everywhere, so defaults outside the
    # schema would fail validation.
    chart.validate_schema(defaults)


def test_every_value_has_a_comment_in_values_yaml(leaves) -> None:
    lines = (CHART_DIR / "values.yaml").read_text().splitlines()
    index = key_lines("\n".join(lines))
    undocumented = [p for p in leaves if not lines[index[p] - 1].lstrip().startswith("#")]
    assert undocumented == [], f"values.yaml keys without a comment line above: {undocumented}"


def test_every_value_is_a_row_of_the_readme_table(leaves) -> None:
    readme = (CHART_DIR / "README.md").read_text()
    rows = set(re.findall(r"^\| `([^`]+)` \|", readme, re.MULTILINE))
    assert sorted(set(leaves) - rows) == [], "values missing from charts/roomcast/README.md"
    assert sorted(rows - set(leaves)) == [], "README documents values the chart does not have"


def test_full_example_sets_every_value(leaves) -> None:
    full = yaml.safe_load(FULL_VALUES.read_text())
    unset = [p for p in leaves if not lookup(full, p)[0]]
    assert unset == [], f"examples/values-full.yaml does not set {unset}"


def test_full_example_differs_from_the_defaults_where_it_matters(chart) -> None:
    full = yaml.safe_load(FULL_VALUES.read_text())
    defaults = chart.values
    for path in ("replicaCount", "watchNamespace", "ingest.serviceType", "logFormat", "image.pullPolicy"):
        assert lookup(full, path)[1] != lookup(defaults, path)[1], path


def test_every_test_security_md_names_exists() -> None:
    """SECURITY.md proves each line with a named test; a renamed or deleted test must not leave
    a claim without proof. `path::name` names a Rust `fn` or Python `def` in that file,
    `::name` continues the previous path, and a quoted title after a `.mjs` path is a Node
    test's title."""
    text = (REPO / "SECURITY.md").read_text()
    text = text[text.index("\n### ") :]  # the actors, after the notation is explained
    checked, missing = 0, []
    path = None
    for match in re.finditer(r"`([\w./-]+)?::([\w:]+)`|`([\w./-]+[.]mjs)`|\"([^\"]+)\"", text):
        named_path, name, node_file, title = match.groups()
        if node_file:
            path = node_file
            continue
        if title is not None:
            if path and path.endswith(".mjs"):
                source = (REPO / path).read_text()
                checked += 1
                if " ".join(title.rstrip("…").split()) not in source:
                    missing.append(f"{path}: {title}")
            continue
        path = named_path or path
        assert path, f"::{name} has no file before it"
        function = name.split("::")[-1]
        source = (REPO / path).read_text()
        checked += 1
        if not re.search(rf"(fn|def) {function}\(", source):
            missing.append(f"{path}::{name}")
    assert checked > 30
    assert missing == [], f"SECURITY.md names tests that do not exist: {missing}"
