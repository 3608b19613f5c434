"""A small Kubernetes API server stand-in for the cluster-in-a-box tests.

No real API server (kube-apiserver + etcd) can be obtained on the build machines, and PyPI
`kmock` 0.8's `KubernetesEmulator` stores objects as plain dicts merged on every patch: no
resourceVersion semantics (lists answer `"..."`), no label selectors, no server-side apply (an
apply to a missing object is a 404, never a create), no status subresource, no managed fields,
no garbage collector, and it needs aiohttp. Those are exactly the verbs the operator and the
workers depend on, so this module implements them itself, standard library only:

    kube-rs client --HTTP/1.1--> Handler (routes, Status errors)
        -> Store: objects, one resourceVersion counter, an event log every watch reads from
           -> apply (managed fields per manager, list-map merge), merge / JSON / strategic patch
           -> CRD schema: pruning, defaulting, OpenAPI validation (jsonschema)
        -> GarbageCollector thread: ownerReference GC, foreground / background / orphan

Every known way it differs from a real API server is listed in README.md ("Cluster in a box").
Run it alone with `python3 tests/cluster/apiserver.py --port 8001`.
"""

import base64
import copy
import datetime
import http.server
import json
import pathlib
import re
import ssl
import threading
import time
import urllib.parse
import uuid

import jsonpatch
import jsonschema
import yaml

# The real server refuses request bodies over 3 MiB (etcd's object size limit is 1.5 MiB).
MAX_BODY_BYTES = 3 * 1024 * 1024
BOOKMARK_INTERVAL_SECONDS = 5.0
DEFAULT_WATCH_TIMEOUT_SECONDS = 1800
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
META = "meta.k8s.io/v1"


class Resource:
    """One served resource: where it lives in the URL space and how writes treat it."""

    def __init__(self, group, version, kind, plural, namespaced, status=False, short=(), schema=None,
                 printer_columns=(), dns_label=False):
        self.group, self.version, self.kind, self.plural = group, version, kind, plural
        self.namespaced, self.status, self.short = namespaced, status, list(short)
        self.schema, self.printer_columns, self.dns_label = schema, list(printer_columns), dns_label
        self.list_maps = list_map_paths(schema) if schema else {}
        self.validator = jsonschema.Draft7Validator(to_json_schema(schema)) if schema else None

    @property
    def api_version(self):
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self):
        return f"{self.plural}.{self.group}" if self.group else self.plural


BUILT_IN = [
    Resource("", "v1", "Namespace", "namespaces", False, status=True, short=["ns"], dns_label=True),
    Resource("", "v1", "Secret", "secrets", True),
    Resource("", "v1", "ConfigMap", "configmaps", True, short=["cm"]),
    Resource("", "v1", "ServiceAccount", "serviceaccounts", True, short=["sa"]),
    Resource("", "v1", "Service", "services", True, status=True, short=["svc"], dns_label=True),
    Resource("", "v1", "Pod", "pods", True, status=True, short=["po"]),
    Resource("", "v1", "Event", "events", True, short=["ev"]),
    Resource("apps", "v1", "Deployment", "deployments", True, status=True, short=["deploy"]),
    Resource("apps", "v1", "ReplicaSet", "replicasets", True, status=True, short=["rs"]),
    Resource("rbac.authorization.k8s.io", "v1", "Role", "roles", True),
    Resource("rbac.authorization.k8s.io", "v1", "RoleBinding", "rolebindings", True),
    Resource("networking.k8s.io", "v1", "Ingress", "ingresses", True, status=True, short=["ing"]),
    Resource("networking.k8s.io", "v1", "NetworkPolicy", "networkpolicies", True, short=["netpol"]),
    Resource("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets", True, status=True, short=["pdb"]),
    Resource("events.k8s.io", "v1", "Event", "events", True, short=["ev"]),
    Resource("coordination.k8s.io", "v1", "Lease", "leases", True),
    Resource("apiextensions.k8s.io", "v1", "CustomResourceDefinition", "customresourcedefinitions", False,
             status=True, short=["crd", "crds"]),
]


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class ApiError(Exception):
    """Answered as a `Status` object shaped like the real server's."""

    def __init__(self, code, reason, message, details=None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self):
        body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            body["details"] = self.details
        return body


def not_found(res, name):
    return ApiError(404, "NotFound", f'{res.qualified} "{name}" not found',
                    {"name": name, "group": res.group, "kind": res.plural})


def invalid(res, name, causes):
    text = "; ".join(f"{c['field']}: {c['message']}" for c in causes)
    return ApiError(422, "Invalid", f'{res.kind}.{res.group or "core"} "{name}" is invalid: {text}',
                    {"name": name, "group": res.group, "kind": res.kind,
                     "causes": [{"reason": c.get("reason", "FieldValueInvalid"), "message": c["message"],
                                 "field": c["field"]} for c in causes]})


# ---------------------------------------------------------------- CRD schema: structural bits

def list_map_paths(schema, path=()):
    """{field path (list items as '*'): key names} for every `x-kubernetes-list-type: map`."""
    out = {}
    if not isinstance(schema, dict):
        return out
    if schema.get("x-kubernetes-list-type") == "map":
        out[path] = list(schema.get("x-kubernetes-list-map-keys", []))
    for name, sub in (schema.get("properties") or {}).items():
        out.update(list_map_paths(sub, path + (name,)))
    if isinstance(schema.get("items"), dict):
        out.update(list_map_paths(schema["items"], path + ("*",)))
    if isinstance(schema.get("additionalProperties"), dict):
        out.update(list_map_paths(schema["additionalProperties"], path + ("*",)))
    return out


def to_json_schema(schema):
    """The CRD's OpenAPI v3 subset as JSON Schema: `nullable`, int-or-string, Kubernetes
    extensions (CEL rules are not evaluated: see README)."""
    if isinstance(schema, list):
        return [to_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key.startswith("x-kubernetes-") or key in ("nullable", "default", "format", "description"):
            continue
        if key in ("properties", "patternProperties"):
            out[key] = {k: to_json_schema(v) for k, v in value.items()}
        else:
            out[key] = to_json_schema(value)
    if schema.get("x-kubernetes-int-or-string"):
        out.pop("type", None)
        out["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("nullable") and "type" in out:
        out["type"] = [out["type"], "null"]
    if schema.get("nullable") and "enum" in out:
        out["enum"] = list(out["enum"]) + [None]
    return out


def prune_and_default(value, schema):
    """Drop unknown fields and non-nullable nulls, then fill defaults (the real server's
    order: prune, default)."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict) and schema.get("type") == "object":
        props = schema.get("properties")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for key in [k for k in value if k not in props]:
                del value[key]
        for key, sub in (props or {}).items():
            if key in value and value[key] is None and not sub.get("nullable"):
                del value[key]
            if key not in value and "default" in sub:
                value[key] = copy.deepcopy(sub["default"])
            if key in value:
                value[key] = prune_and_default(value[key], sub)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in value:
                value[key] = prune_and_default(value[key], extra)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [prune_and_default(item, schema["items"]) for item in value]
    return value


# ---------------------------------------------------------------- field paths (managed fields)

IDENTITY = {"apiVersion", "kind"}
SERVER_META = {"name", "namespace", "uid", "resourceVersion", "creationTimestamp", "generation",
               "managedFields", "deletionTimestamp", "selfLink", "generateName"}


def item_key(item, keys):
    return json.dumps({k: item.get(k) for k in keys}, sort_keys=True, separators=(",", ":"))


def field_paths(value, list_maps, pattern=(), path=()):
    """Leaf paths a value sets. A path is a tuple of ('f', name) and ('k', key JSON) steps; lists
    that are not list-maps are atomic (owned whole)."""
    if isinstance(value, dict):
        out = set()
        for name, sub in value.items():
            if not path and name in IDENTITY:
                continue
            if path == (("f", "metadata"),) and name in SERVER_META:
                continue
            out |= field_paths(sub, list_maps, pattern + (name,), path + (("f", name),))
        return out or ({path} if path else set())
    if isinstance(value, list) and pattern in list_maps:
        keys = list_maps[pattern]
        out = set()
        for item in value:
            if isinstance(item, dict):
                step = path + (("k", item_key(item, keys)),)
                out.add(step + ((".", ""),))
                out |= field_paths(item, list_maps, pattern + ("*",), step)
        return out
    return {path}


def get_at(obj, path):
    for kind, name in path:
        if kind == ".":
            return obj
        if kind == "f":
            if not isinstance(obj, dict) or name not in obj:
                return KeyError
            obj = obj[name]
        else:
            if not isinstance(obj, list):
                return KeyError
            keys = list(json.loads(name))
            match = [i for i in obj if isinstance(i, dict) and item_key(i, keys) == name]
            if not match:
                return KeyError
            obj = match[0]
    return obj


def remove_at(obj, path):
    """Remove the field (or list-map entry, for a path ending in '.') at `path`."""
    if path[-1][0] == ".":
        path = path[:-1]
    parent = get_at(obj, path[:-1]) if len(path) > 1 else obj
    kind, name = path[-1]
    if kind == "f" and isinstance(parent, dict):
        parent.pop(name, None)
    elif kind == "k" and isinstance(parent, list):
        keys = list(json.loads(name))
        parent[:] = [i for i in parent if not (isinstance(i, dict) and item_key(i, keys) == name)]


def merge_applied(live, applied, list_maps, pattern=()):
    """Apply-configuration merge: maps recursively, list-maps by key, everything else replaced."""
    if isinstance(live, dict) and isinstance(applied, dict):
        out = dict(live)
        for key, value in applied.items():
            out[key] = merge_applied(live.get(key), value, list_maps, pattern + (key,))
        return out
    if isinstance(live, list) and isinstance(applied, list) and pattern in list_maps:
        keys = list_maps[pattern]
        out = [copy.deepcopy(i) for i in live]
        for item in applied:
            index = next((n for n, i in enumerate(out) if isinstance(i, dict) and isinstance(item, dict)
                          and item_key(i, keys) == item_key(item, keys)), None)
            if index is None:
                out.append(copy.deepcopy(item))
            else:
                out[index] = merge_applied(out[index], item, list_maps, pattern + ("*",))
        return out
    return copy.deepcopy(applied)


def fields_v1(paths):
    """Managed paths in the real `FieldsV1` shape: {"f:status": {"f:phase": {}}}."""
    tree = {}
    for path in sorted(paths):
        node = tree
        for kind, name in path:
            node = node.setdefault("." if kind == "." else f"{kind}:{name}", {})
    return tree


def show_path(path):
    return "".join(f".{n}" if k == "f" else (f"[{n}]" if k == "k" else "") for k, n in path)


def json_merge(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = json_merge(out.get(key), value)
    return out


# ---------------------------------------------------------------- selectors

LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
SELECTOR_TERM = re.compile(
    r"^\s*(?P<key>[A-Za-z0-9._/-]+)\s*(?P<op>!=|==|=|in(?=\s*\()|notin(?=\s*\())?\s*(?P<value>.*?)\s*$")


def parse_label_selector(text):
    """Label selector terms: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a)`, `k`, `!k`."""
    if not text:
        return []
    terms, depth, start = [], 0, 0
    for n, ch in enumerate(text):
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            terms.append(text[start:n])
            start = n + 1
    terms.append(text[start:])
    out = []
    for op, key, value in parse_terms(terms):
        for v in value if isinstance(value, set) else [value] if value is not None else []:
            if len(v) > 63 or not LABEL_VALUE.match(v):
                raise ApiError(400, "BadRequest", f"unable to parse requirement: invalid label value: {v!r}")
        out.append((op, key, value))
    return out


def parse_terms(terms):
    """(operator, key, value) of each selector term; values are checked by the caller."""
    out = []
    for term in terms:
        term = term.strip()
        if term.startswith("!"):
            out.append(("!", term[1:].strip(), None))
            continue
        m = SELECTOR_TERM.match(term)
        if not m or not m.group("key"):
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        op = (m.group("op") or "").strip()
        value = m.group("value")
        if op in ("in", "notin"):
            if not (value.startswith("(") and value.endswith(")")):
                raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
            out.append((op, m.group("key"), {v.strip() for v in value[1:-1].split(",")}))
        elif op:
            out.append(("!=" if op == "!=" else "=", m.group("key"), value))
        elif value:
            raise ApiError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        else:
            out.append(("exists", m.group("key"), None))
    return out


def labels_match(selector, labels):
    labels = labels or {}
    for op, key, value in selector:
        have = labels.get(key)
        if op == "=" and have != value:
            return False
        if op == "!=" and have == value:
            return False
        if op == "in" and have not in value:
            return False
        if op == "notin" and have in value:
            return False
        if op == "exists" and key not in labels:
            return False
        if op == "!" and key in labels:
            return False
    return True


def parse_field_selector(text):
    out = []
    for term in filter(None, (t.strip() for t in (text or "").split(","))):
        m = re.match(r"^([A-Za-z.]+)\s*(!=|==|=)\s*(.*)$", term)
        if not m or m.group(1) not in ("metadata.name", "metadata.namespace"):
            raise ApiError(400, "BadRequest", f'"{term}" is not a known field selector: only '
                           '"metadata.name", "metadata.namespace"')
        out.append((m.group(1).split(".")[1], m.group(2) != "!=", m.group(3)))
    return out


def fields_match(selector, obj):
    meta = obj.get("metadata", {})
    return all((meta.get(field) == value) == equal for field, equal, value in selector)


# ---------------------------------------------------------------- the store

class Store:
    """Objects, the resourceVersion counter and the event log watches read from. One lock."""

    def __init__(self):
        self.cond = threading.Condition()
        # Set on shutdown: open watches end.
        self.closed = threading.Event()
        self.rv = 1
        self.objects = {}  # (plural-qualified, namespace, name) -> object
        self.events = []  # (rv, resource qualified name, type, old object, new object)
        self.resources = {}
        # Owners being deleted in the foreground: their dependents go the same way.
        self.foreground_uids = set()
        for res in BUILT_IN:
            self.resources[(res.group, res.version, res.plural)] = res

    # --- resources
    def resource(self, group, version, plural):
        res = self.resources.get((group, version, plural))
        if res is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return res

    def register_crd(self, crd):
        spec = crd.get("spec", {})
        names = spec.get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            self.resources[(spec["group"], version["name"], names["plural"])] = Resource(
                spec["group"], version["name"], names["kind"], names["plural"],
                spec.get("scope") == "Namespaced", status="status" in (version.get("subresources") or {}),
                short=names.get("shortNames", []), schema=(version.get("schema") or {}).get("openAPIV3Schema"),
                printer_columns=version.get("additionalPrinterColumns", []))

    # --- reads
    def get(self, res, namespace, name):
        obj = self.objects.get((res.qualified, namespace, name))
        if obj is None:
            raise not_found(res, name)
        return copy.deepcopy(obj)

    def list(self, res, namespace, labels, fields):
        items = [copy.deepcopy(o) for (q, ns, _), o in sorted(self.objects.items())
                 if q == res.qualified and (namespace is None or ns == namespace)
                 and labels_match(labels, o["metadata"].get("labels")) and fields_match(fields, o)]
        return items, str(self.rv)

    # --- writes (caller holds the lock)
    def _record(self, res, kind, old, new):
        self.events.append((int(new["metadata"]["resourceVersion"]), res.qualified, kind, old, new))
        self.cond.notify_all()

    def _bump(self, obj):
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)

    def _check_namespace(self, res, namespace):
        if res.namespaced and ("namespaces", None, namespace) not in self.objects:
            raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                           {"name": namespace, "kind": "namespaces"})

    def _validate(self, res, obj):
        name = obj["metadata"].get("name", "")
        rule, limit = (DNS_LABEL, 63) if res.dns_label else (DNS_SUBDOMAIN, 253)
        causes = []
        if not name:
            causes.append({"field": "metadata.name", "message": "Required value: name or generateName is required",
                           "reason": "FieldValueRequired"})
        elif not rule.match(name) or len(name) > limit:
            causes.append({"field": "metadata.name", "message": f"Invalid value: {name!r}: a lowercase RFC 1123 "
                           f"{'label' if res.dns_label else 'subdomain'} must consist of lower case alphanumeric "
                           "characters, '-' or '.'"})
        refs = obj["metadata"].get("ownerReferences") or []
        for n, ref in enumerate(refs):
            for field in ("apiVersion", "kind", "name", "uid"):
                if not isinstance(ref, dict) or not ref.get(field):
                    causes.append({"field": f"metadata.ownerReferences[{n}].{field}",
                                   "message": "Required value", "reason": "FieldValueRequired"})
        if sum(1 for r in refs if isinstance(r, dict) and r.get("controller")) > 1:
            causes.append({"field": "metadata.ownerReferences",
                           "message": "Invalid value: only one reference can have Controller set to true"})
        if res.validator is not None:
            body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
            for error in sorted(res.validator.iter_errors(body), key=lambda e: list(e.absolute_path)):
                field = ".".join(str(p) for p in error.absolute_path) or "<root>"
                causes.append({"field": field, "message": error.message})
        if causes:
            raise invalid(res, name, causes)

    def _prepare(self, res, obj):
        if res.schema is not None:
            metadata = obj.pop("metadata")
            prune_and_default(obj, res.schema)
            obj["metadata"] = metadata
        obj["apiVersion"], obj["kind"] = res.api_version, res.kind

    def create(self, res, namespace, body, manager, subresource=None, managed=None):
        obj = copy.deepcopy(body)
        if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
            raise ApiError(400, "BadRequest", "the body of the request is not a JSON object")
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + uuid.uuid4().hex[:5]
        if res.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(400, "BadRequest", "the namespace of the provided object does not match "
                               "the namespace sent on the request")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        if res.status and subresource != "status":
            obj.pop("status", None)
        self._prepare(res, obj)
        self._validate(res, obj)
        key = (res.qualified, namespace if res.namespaced else None, meta["name"])
        if key in self.objects:
            raise ApiError(409, "AlreadyExists", f'{res.qualified} "{meta["name"]}" already exists',
                           {"name": meta["name"], "group": res.group, "kind": res.plural})
        if res.namespaced:
            self._check_namespace(res, namespace)
        for field in ("resourceVersion", "deletionTimestamp", "managedFields"):
            meta.pop(field, None)
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
        if res.plural == "namespaces":
            obj["status"] = {"phase": "Active"}
        if managed is None:
            managed = {(manager, "Update", subresource): field_paths(obj, res.list_maps)}
        self._store(res, key, None, obj, managed)
        if res.plural == "customresourcedefinitions":
            self.register_crd(obj)
        return copy.deepcopy(obj)

    def _store(self, res, key, old, obj, managed):
        obj["_managed"] = managed
        self._render_managed(obj)
        self._bump(obj)
        self.objects[key] = obj
        self._record(res, "ADDED" if old is None else "MODIFIED", old, obj)

    @staticmethod
    def _render_managed(obj):
        entries = []
        for (manager, operation, subresource), paths in sorted(obj["_managed"].items(),
                                                               key=lambda e: (e[0][0], e[0][1], e[0][2] or "")):
            entry = {"manager": manager, "operation": operation, "apiVersion": obj["apiVersion"],
                     "time": now_rfc3339(), "fieldsType": "FieldsV1", "fieldsV1": fields_v1(paths)}
            if subresource:
                entry["subresource"] = subresource
            entries.append(entry)
        obj["metadata"]["managedFields"] = entries

    def update(self, res, namespace, name, change, manager, subresource, apply=None):
        """Write `change(old) -> new` (or an apply) through the same checks as the real server."""
        key = (res.qualified, namespace if res.namespaced else None, name)
        old = self.objects.get(key)
        if old is None:
            raise not_found(res, name)
        managed = {k: set(v) for k, v in old["_managed"].items()}
        current = {k: v for k, v in copy.deepcopy(old).items() if k != "_managed"}
        if apply is not None:
            new = self._apply(res, current, apply, managed, subresource)
        else:
            new = change(copy.deepcopy(current))
            if not isinstance(new, dict) or not isinstance(new.get("metadata"), dict):
                raise ApiError(400, "BadRequest", "the patched object is not a Kubernetes object")
        meta, old_meta = new["metadata"], old["metadata"]
        # A resourceVersion in an update or patch body is a precondition.
        if apply is None and meta.get("resourceVersion") not in (None, "", old_meta["resourceVersion"]):
            raise ApiError(409, "Conflict", f'Operation cannot be fulfilled on {res.qualified} "{name}": the '
                           "object has been modified; please apply your changes to the latest version and try "
                           "again", {"name": name, "group": res.group, "kind": res.plural})
        if meta.get("name") not in (None, name):
            raise invalid(res, name, [{"field": "metadata.name", "message": "field is immutable"}])
        for field in ("uid", "creationTimestamp", "namespace", "generation", "deletionTimestamp", "name"):
            if field in old_meta:
                meta[field] = old_meta[field]
            else:
                meta.pop(field, None)
        # The status subresource writes status only; the main resource never writes it.
        if res.status and subresource == "status":
            kept = copy.deepcopy(current)
            if "status" in new:
                kept["status"] = new["status"]
            else:
                kept.pop("status", None)
            new = kept
        elif res.status:
            if "status" in current:
                new["status"] = copy.deepcopy(current["status"])
            else:
                new.pop("status", None)
        self._prepare(res, new)
        self._validate(res, new)
        new["metadata"]["resourceVersion"] = old_meta["resourceVersion"]
        new["metadata"].pop("managedFields", None)
        current["metadata"].pop("managedFields", None)
        if apply is None:
            changed = field_paths(new, res.list_maps) - field_paths(current, res.list_maps) | {
                p for p in field_paths(new, res.list_maps) & field_paths(current, res.list_maps)
                if get_at(new, p) != get_at(current, p)}
            gone = field_paths(current, res.list_maps) - field_paths(new, res.list_maps)
            for paths in managed.values():
                paths -= changed | gone
            if changed:
                managed.setdefault((manager or "unknown", "Update", subresource), set()).update(changed)
        managed = {k: v for k, v in managed.items() if v}
        # A write that changes nothing is not a write: no new resourceVersion, no event.
        if new == current and managed == old["_managed"]:
            return copy.deepcopy({k: v for k, v in old.items() if k != "_managed"})
        if {k: v for k, v in new.items() if k not in ("metadata", "status")} != \
                {k: v for k, v in current.items() if k not in ("metadata", "status")}:
            new["metadata"]["generation"] = old_meta.get("generation", 1) + 1
        self._store(res, key, old, new, managed)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(res, key)
        return self.view(new)

    def _apply(self, res, live, applied, managed, subresource):
        """Server-side apply of `applied` by `manager` onto `live`, updating `managed`."""
        manager, force, config = applied
        if config.get("apiVersion") != res.api_version or config.get("kind") != res.kind:
            raise ApiError(400, "BadRequest", f"apply patch must name apiVersion {res.api_version} and kind "
                           f"{res.kind}, got {config.get('apiVersion')} {config.get('kind')}")
        if res.status and subresource == "status":
            config = {k: v for k, v in config.items() if k in ("apiVersion", "kind", "metadata", "status")}
        elif res.status:
            config = {k: v for k, v in config.items() if k != "status"}
        paths = field_paths(config, res.list_maps)
        conflicts = {}
        for (other, _, _), owned in managed.items():
            if other == manager:
                continue
            for path in paths & owned:
                if get_at(live, path) != get_at(config, path):
                    conflicts.setdefault(path, set()).add(other)
        if conflicts and not force:
            causes = [{"reason": "FieldManagerConflict", "field": show_path(p),
                       "message": f'conflict with "{m}"'} for p, ms in sorted(conflicts.items()) for m in sorted(ms)]
            raise ApiError(409, "Conflict", f"Apply failed with {len(causes)} conflict(s): "
                           + "; ".join(f"{c['message']}: {c['field']}" for c in causes),
                           {"name": live["metadata"]["name"], "group": res.group, "kind": res.plural,
                            "causes": causes})
        mine = (manager, "Apply", subresource)
        released = managed.get(mine, set()) - paths
        others = set().union(set(), *(v for k, v in managed.items() if k != mine))
        new = copy.deepcopy(live)
        # Whole list-map entries first (found by their key fields, which must still be there),
        # then fields, deepest first; an entry's key fields go only with the entry.
        for path in sorted(released, key=lambda p: (p[-1][0] != ".", -len(p))):
            is_key = len(path) > 1 and path[-2][0] == "k" and path[-1][1] in json.loads(path[-2][1])
            if path not in others and not is_key:
                remove_at(new, path)
        new = merge_applied(new, {k: v for k, v in config.items() if k not in IDENTITY}, res.list_maps)
        for key, owned in managed.items():
            if key != mine:
                owned -= set(conflicts)
        managed[mine] = paths
        return new

    def apply(self, res, namespace, name, subresource, manager, force, config):
        """Server-side apply: creates the object when it is missing (not through /status)."""
        key = (res.qualified, namespace if res.namespaced else None, name)
        if key in self.objects:
            return self.update(res, namespace, name, None, manager, subresource, apply=(manager, force, config))
        if subresource == "status":
            raise not_found(res, name)
        meta = config.get("metadata") or {}
        if meta.get("name") not in (None, name):
            raise ApiError(400, "BadRequest", "the name of the object does not match the name on the URL")
        skeleton = {"apiVersion": res.api_version, "kind": res.kind, "metadata": {"name": name}}
        managed = {}
        new = self._apply(res, skeleton, (manager, force, config), managed, subresource)
        new["metadata"]["name"] = name
        return self.create(res, namespace, new, manager, managed=managed)

    def delete(self, res, namespace, name, propagation):
        key = (res.qualified, namespace if res.namespaced else None, name)
        obj = self.objects.get(key)
        if obj is None:
            raise not_found(res, name)
        if propagation == "Orphan":
            for dep_key, dep in list(self.objects.items()):
                refs = dep["metadata"].get("ownerReferences") or []
                if any(r.get("uid") == obj["metadata"]["uid"] for r in refs):
                    self._rewrite(dep_key, lambda d: d["metadata"].__setitem__(
                        "ownerReferences", [r for r in refs if r.get("uid") != obj["metadata"]["uid"]]))
        finalizers = list(obj["metadata"].get("finalizers") or [])
        if propagation == "Foreground" and "foregroundDeletion" not in finalizers:
            finalizers.append("foregroundDeletion")
        if finalizers:
            if not obj["metadata"].get("deletionTimestamp"):
                def mark(o):
                    o["metadata"]["deletionTimestamp"] = now_rfc3339()
                    o["metadata"]["finalizers"] = finalizers
                self._rewrite(key, mark)
            return self.view(self.objects[key])
        self._remove(res, key)
        return self.view(obj)

    def _rewrite(self, key, edit):
        old = self.objects[key]
        new = copy.deepcopy(old)
        edit(new)
        new["_managed"] = old["_managed"]
        self._store(self.resources_by_qualified(key[0]), key, old, new, old["_managed"])

    def resources_by_qualified(self, qualified):
        return next(r for r in self.resources.values() if r.qualified == qualified)

    def _remove(self, res, key):
        obj = self.objects.pop(key)
        gone = copy.deepcopy(obj)
        self._bump(gone)
        self._record(res, "DELETED", obj, gone)
        if res.plural == "namespaces":
            for other in [k for k in self.objects if k[1] == key[2] and k[0] != "namespaces"]:
                self._remove(self.resources_by_qualified(other[0]), other)

    # --- garbage collection (caller holds the lock)
    def collect_garbage(self):
        """One pass of the garbage collector; True when it changed anything."""
        uids = {o["metadata"]["uid"]: k for k, o in self.objects.items()}
        for key, obj in list(self.objects.items()):
            if key not in self.objects:
                continue
            meta = obj["metadata"]
            refs = meta.get("ownerReferences") or []
            # An owner is gone when no object in the dependent's namespace has its uid.
            alive = [r for r in refs if r.get("uid") in uids and uids[r["uid"]][1] in (key[1], None)]
            if refs and not alive and not meta.get("deletionTimestamp"):
                owner_foreground = any(r.get("uid") in self.foreground_uids for r in refs)
                self.delete(self.resources_by_qualified(key[0]), key[1], key[2],
                            "Foreground" if owner_foreground else "Background")
                return True
            if "foregroundDeletion" in (meta.get("finalizers") or []) and meta.get("deletionTimestamp"):
                uid = meta["uid"]
                self.foreground_uids.add(uid)
                blocking = [d for d in self.objects.values() if any(
                    r.get("uid") == uid and r.get("blockOwnerDeletion")
                    for r in d["metadata"].get("ownerReferences") or [])]
                dependents = [k for k, d in self.objects.items() if any(
                    r.get("uid") == uid for r in d["metadata"].get("ownerReferences") or [])]
                for dep in dependents:
                    if not self.objects[dep]["metadata"].get("deletionTimestamp"):
                        self.delete(self.resources_by_qualified(dep[0]), dep[1], dep[2], "Foreground")
                        return True
                if not blocking:
                    self._rewrite(key, lambda o: o["metadata"].__setitem__(
                        "finalizers", [f for f in o["metadata"]["finalizers"] if f != "foregroundDeletion"]))
                    if not self.objects[key]["metadata"]["finalizers"]:
                        self._remove(self.resources_by_qualified(key[0]), key)
                    return True
        return False

    @staticmethod
    def view(obj):
        return copy.deepcopy({k: v for k, v in obj.items() if k != "_managed"})


# ---------------------------------------------------------------- presentation

def partial_metadata(obj):
    return {"apiVersion": META, "kind": "PartialObjectMetadata", "metadata": obj["metadata"]}


def wants(accept, as_kind):
    return f"as={as_kind}" in (accept or "").replace(" ", "")


def printer_cell(obj, json_path):
    """Value of an additionalPrinterColumns JSONPath (the simple `.a.b` form CRDs use)."""
    value = obj
    for part in json_path.lstrip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def table(res, items):
    columns = [{"name": "Name", "type": "string", "format": "name"}] + [
        {"name": c["name"], "type": c["type"], "format": c.get("format", "")} for c in res.printer_columns]
    if not res.printer_columns:
        columns.append({"name": "Created At", "type": "date", "format": ""})
    rows = []
    for obj in items:
        cells = [obj["metadata"]["name"]] + ([printer_cell(obj, c["jsonPath"]) for c in res.printer_columns]
                                             or [obj["metadata"].get("creationTimestamp")])
        rows.append({"cells": cells, "object": partial_metadata(obj)})
    return {"kind": "Table", "apiVersion": META, "metadata": {}, "columnDefinitions": columns, "rows": rows}


# ---------------------------------------------------------------- HTTP

PATCH_TYPES = {
    "application/apply-patch+yaml": "apply",
    "application/apply-patch+cbor": "unsupported",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/json-patch+json": "json",
}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "roomcast-apiserver-standin/0.1"
    store: Store = None

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        if getattr(self.server, "verbose", False):
            super().log_message(format, *args)

    # --- plumbing
    def send_json(self, code, body):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            # Read what was sent (bounded) so the client sees the answer, then hang up.
            self.close_connection = True
            remaining = min(length, 16 * MAX_BODY_BYTES)
            while remaining > 0:
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise ApiError(413, "RequestEntityTooLarge", "the request body is too large")
        raw = self.rfile.read(length) if length else b""
        return raw

    def parse_body(self, raw, as_yaml=False):
        try:
            return yaml.safe_load(raw) if as_yaml else json.loads(raw or b"null")
        except (ValueError, RecursionError, yaml.YAMLError) as e:
            raise ApiError(400, "BadRequest", f"the body of the request cannot be decoded: {e}") from e

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()}
        try:
            raw = self.read_body() if method in ("POST", "PUT", "PATCH", "DELETE") else b""
            parts = [urllib.parse.unquote(p) for p in url.path.strip("/").split("/") if p]
            if method == "GET" and self.discovery(parts):
                return
            self.serve_resource(method, parts, query, raw)
        except ApiError as e:
            self.send_json(e.code, e.status())
        except (BrokenPipeError, ConnectionResetError):
            pass
        except RecursionError:
            self.send_json(400, ApiError(400, "BadRequest", "the object is nested too deeply").status())
        except Exception as e:  # noqa: BLE001 (answered like the real server's panic handler)
            self.send_json(500, ApiError(500, "InternalError", f"an error on the server ({e!r}) has "
                                         "prevented the request from succeeding").status())

    def discovery(self, parts):
        store = self.store
        if parts == ["version"]:
            self.send_json(200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0-roomcast-standin",
                                 "platform": "linux/amd64"})
            return True
        if parts in (["healthz"], ["readyz"], ["livez"]):
            data = b"ok"
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
            return True
        if parts == ["api"]:
            self.send_json(200, {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []})
            return True
        with store.cond:
            resources = list(store.resources.values())
        if parts == ["apis"]:
            groups = {}
            for r in resources:
                if r.group:
                    groups.setdefault(r.group, set()).add(r.version)
            self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": [
                {"name": g, "versions": [{"groupVersion": f"{g}/{v}", "version": v} for v in sorted(vs)],
                 "preferredVersion": {"groupVersion": f"{g}/{sorted(vs)[-1]}", "version": sorted(vs)[-1]}}
                for g, vs in sorted(groups.items())]})
            return True
        if parts in (["api", "v1"],) or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", "v1") if parts[0] == "api" else (parts[1], parts[2])
            listed = [r for r in resources if r.group == group and r.version == version]
            if not listed:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            out = []
            for r in listed:
                verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
                out.append({"name": r.plural, "singularName": r.kind.lower(), "namespaced": r.namespaced,
                            "kind": r.kind, "verbs": verbs, "shortNames": r.short})
                if r.status:
                    out.append({"name": f"{r.plural}/status", "singularName": "", "namespaced": r.namespaced,
                                "kind": r.kind, "verbs": ["get", "patch", "update"]})
            self.send_json(200, {"kind": "APIResourceList", "apiVersion": "v1",
                                 "groupVersion": r.api_version, "resources": out})
            return True
        return False

    def locate(self, parts):
        """(resource, namespace, name, subresource) of a resource URL."""
        if parts[:2] == ["api", "v1"]:
            group, version, rest = "", "v1", parts[2:]
        elif len(parts) >= 3 and parts[0] == "apis":
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        namespace = None
        if len(rest) >= 3 and rest[0] == "namespaces":
            with self.store.cond:
                known = (group, version, rest[2]) in self.store.resources
            if known:
                namespace, rest = rest[1], rest[2:]
        if not rest or len(rest) > 3:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        res = self.store.resource(group, version, rest[0])
        if res.namespaced != (namespace is not None) and (len(rest) > 1 or self.command != "GET"):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        name = rest[1] if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub is not None and not (sub == "status" and res.status):
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        return res, namespace, name, sub

    def manager(self, query):
        manager = query.get("fieldManager")
        if manager is not None and (not manager or len(manager) > 128):
            raise ApiError(422, "Invalid", "fieldManager: Invalid value: must be 1 to 128 characters")
        return manager or (self.headers.get("User-Agent") or "unknown").split("/")[0]

    def serve_resource(self, method, parts, query, raw):
        res, namespace, name, sub = self.locate(parts)
        store = self.store
        accept = self.headers.get("Accept", "")
        if method == "GET" and name is None:
            labels = parse_label_selector(query.get("labelSelector"))
            fields = parse_field_selector(query.get("fieldSelector"))
            if query.get("watch") in ("1", "true"):
                return self.watch(res, namespace, labels, fields, query, accept)
            with store.cond:
                items, rv = store.list(res, namespace, labels, fields)
            if wants(accept, "Table"):
                return self.send_json(200, table(res, items))
            if wants(accept, "PartialObjectMetadataList"):
                return self.send_json(200, {"kind": "PartialObjectMetadataList", "apiVersion": META,
                                            "metadata": {"resourceVersion": rv},
                                            "items": [partial_metadata(o) for o in items]})
            return self.send_json(200, {"kind": f"{res.kind}List", "apiVersion": res.api_version,
                                        "metadata": {"resourceVersion": rv},
                                        "items": [Store.view(o) for o in items]})
        if query.get("dryRun"):
            raise ApiError(400, "BadRequest", "dryRun is not supported by this API server stand-in")
        if method == "POST" and name is None:
            body = self.parse_body(raw)
            with store.cond:
                obj = store.create(res, namespace, body, self.manager(query))
            return self.send_json(201, Store.view(obj))
        if name is None:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on a collection")
        if method == "GET":
            with store.cond:
                obj = store.get(res, namespace, name)
            obj = Store.view(obj)
            return self.send_json(200, partial_metadata(obj) if wants(accept, "PartialObjectMetadata") else obj)
        if method == "DELETE":
            options = self.parse_body(raw) if raw else {}
            propagation = (options or {}).get("propagationPolicy") or query.get("propagationPolicy") or "Background"
            if propagation not in ("Background", "Foreground", "Orphan"):
                raise ApiError(400, "BadRequest", f"unknown propagationPolicy {propagation!r}")
            with store.cond:
                obj = store.delete(res, namespace, name, propagation)
            return self.send_json(200, obj)
        if method == "PUT":
            body = self.parse_body(raw)

            def replace(_old):
                return copy.deepcopy(body)
            with store.cond:
                obj = store.update(res, namespace, name, replace, self.manager(query), sub)
            return self.send_json(200, obj)
        if method == "PATCH":
            kind = PATCH_TYPES.get(self.headers.get("Content-Type", "").split(";")[0].strip())
            if kind in (None, "unsupported"):
                raise ApiError(415, "UnsupportedMediaType",
                               f"the body of the request was in an unknown format - accepted media types "
                               f"include: {', '.join(k for k, v in PATCH_TYPES.items() if v != 'unsupported')}")
            return self.patch(res, namespace, name, sub, kind, raw, query)
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported")

    def patch(self, res, namespace, name, sub, kind, raw, query):
        store = self.store
        manager = self.manager(query)
        if kind == "apply":
            if not query.get("fieldManager"):
                raise ApiError(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: "
                               "Required value: is required for apply patch")
            config = self.parse_body(raw, as_yaml=True)
            if not isinstance(config, dict):
                raise ApiError(400, "BadRequest", "an apply patch must be an object")
            force = query.get("force") in ("true", "1")
            with store.cond:
                obj = store.apply(res, namespace, name, sub, manager, force, config)
            return self.send_json(200, Store.view(obj))
        body = self.parse_body(raw)

        def change(old):
            if kind == "json":
                try:
                    return jsonpatch.JsonPatch(body).apply(old)
                except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, TypeError) as e:
                    raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our "
                                   f"request: {e}") from e
            if not isinstance(body, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be an object")
            return json_merge(old, body)
        with store.cond:
            obj = store.update(res, namespace, name, change, manager, sub)
        return self.send_json(200, obj)

    # --- watch
    def watch(self, res, namespace, labels, fields, query, accept):
        store = self.store
        meta_only = wants(accept, "PartialObjectMetadata")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1")
        timeout = min(int(query.get("timeoutSeconds") or DEFAULT_WATCH_TIMEOUT_SECONDS),
                      DEFAULT_WATCH_TIMEOUT_SECONDS)
        since = query.get("resourceVersion") or "0"
        if not since.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

        def show(obj):
            obj = Store.view(obj)
            return partial_metadata(obj) if meta_only else obj

        def send(kind, obj):
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            self.wfile.flush()

        def matches(obj):
            return obj is not None and (namespace is None or obj["metadata"].get("namespace") == namespace) \
                and labels_match(labels, obj["metadata"].get("labels")) and fields_match(fields, obj)

        deadline = time.monotonic() + timeout
        next_bookmark = time.monotonic() + BOOKMARK_INTERVAL_SECONDS
        with store.cond:
            index = len(store.events)
            if since == "0":
                # "Any" resourceVersion: the current state as synthetic ADDED events first.
                items, rv = store.list(res, namespace, labels, fields)
                position = int(rv)
                pending = [("ADDED", o) for o in items]
            else:
                position, pending = int(since), []
                index = next((n for n, e in enumerate(store.events) if e[0] > position), len(store.events))
        try:
            for kind, obj in pending:
                send(kind, show(obj))
            while time.monotonic() < deadline and not store.closed.is_set():
                with store.cond:
                    store.cond.wait(timeout=0.5)
                    fresh = [e for e in store.events[index:] if e[1] == res.qualified]
                    index = len(store.events)
                    current = store.rv
                for rv, _, kind, old, new in fresh:
                    position = rv
                    was, now = matches(old), matches(new)
                    if kind == "DELETED":
                        if was:
                            send("DELETED", show(new))
                    elif now:
                        send("MODIFIED" if was else "ADDED", show(new))
                    elif was:
                        # Left the selector: watchers see it go.
                        send("DELETED", show(new))
                if bookmarks and time.monotonic() >= next_bookmark:
                    kind = "PartialObjectMetadata" if meta_only else res.kind
                    send("BOOKMARK", {"kind": kind, "apiVersion": META if meta_only else res.api_version,
                                      "metadata": {"resourceVersion": str(max(position, current))}})
                    next_bookmark = time.monotonic() + BOOKMARK_INTERVAL_SECONDS
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True


class _TlsServer(http.server.ThreadingHTTPServer):
    """Serves HTTPS when given a context. The handshake runs in the connection's own thread
    (`finish_request`), so a client that stalls it holds up no one else."""

    tls = None

    def finish_request(self, request, client_address):
        if self.tls is not None:
            try:
                request.settimeout(10)
                request = self.tls.wrap_socket(request, server_side=True)
                request.settimeout(None)
            except (ssl.SSLError, OSError):
                request.close()
                return
        super().finish_request(request, client_address)


class ApiServer:
    """The stand-in on `host`:`port` (0: a free port), with its garbage collector thread.

    With `tls=(certfile, keyfile)` it serves HTTPS, as a real API server does: the workers in
    the mini-kubelet's pods reach it with in-cluster configuration (service account token and
    `ca.crt`), which kube-rs only speaks over TLS."""

    def __init__(self, port=0, verbose=False, host="127.0.0.1", tls=None):
        self.store = Store()
        handler = type("BoundHandler", (Handler,), {"store": self.store})
        self.httpd = _TlsServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.httpd.verbose = verbose
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.httpd.tls = context
        self.scheme = "https" if tls is not None else "http"
        self.host = host
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True),
                        threading.Thread(target=self._gc_loop, daemon=True)]

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self):
        for thread in self.threads:
            thread.start()
        return self

    def stop(self):
        self.stopping.set()
        self.store.closed.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def _gc_loop(self):
        # Asynchronous like the real garbage collector: dependents go shortly after their owner.
        while not self.stopping.wait(0.2):
            with self.store.cond:
                while self.store.collect_garbage():
                    pass

    def kubeconfig(self, namespace="default", ca_file=None):
        """A kubeconfig for this server; over TLS the cluster entry carries the CA, as a real
        cluster's does."""
        cluster = {"server": self.url}
        if ca_file is not None:
            cluster["certificate-authority-data"] = base64.b64encode(pathlib.Path(ca_file).read_bytes()).decode()
        return yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "box",
            "clusters": [{"name": "box", "cluster": cluster}],
            "users": [{"name": "box", "user": {"token": "cluster-in-a-box"}}],
            "contexts": [{"name": "box", "context": {"cluster": "box", "user": "box", "namespace": namespace}}],
        })


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    server = ApiServer(args.port, args.verbose).start()
    print(f"serving on {server.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()
