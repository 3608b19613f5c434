{{/*
Chart name, overridable with nameOverride. Trimmed to 63 characters (a DNS label).
*/}}
{{- define "roomcast.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name prefix of every object: the release name when it already contains the chart
name, else `<release>-<chart>`. Trimmed so `<fullname>-operator` stays a DNS label.
*/}}
{{- define "roomcast.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 54 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Name of the operator's Deployment, Service, Roles and bindings.
*/}}
{{- define "roomcast.operatorName" -}}
{{- printf "%s-operator" (include "roomcast.fullname" .) }}
{{- end }}

{{/*
`helm.sh/chart` label value.
*/}}
{{- define "roomcast.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of the operator pods. Immutable on a Deployment: never add to them.
*/}}
{{- define "roomcast.selectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{/*
Standard labels on every object the chart creates.
*/}}
{{- define "roomcast.labels" -}}
{{ include "roomcast.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "roomcast.chart" . }}
{{- end }}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "roomcast.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "roomcast.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The operator image, `repository:tag`, the tag defaulting to the chart's appVersion.
*/}}
{{- define "roomcast.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
Leader election is on when asked for, and always with more than one replica: two
operators reconciling the same rooms would fight over every child object.
*/}}
{{- define "roomcast.leaderElection" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ else }}false{{ end }}
{{- end }}

{{/*
A map of labels as the operator's `key=value,key=value` selector flags take it (sorted; null
gives "", which the operator reads as "every namespace").
*/}}
{{- define "roomcast.selectorFlag" -}}
{{- $labels := . | default dict }}
{{- $pairs := list }}
{{- range $key := keys $labels | sortAlpha }}
{{- $pairs = append $pairs (printf "%s=%s" $key (get $labels $key)) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}

{{/*
RBAC rules the operator needs wherever rooms live, verb by verb from what it calls. No
wildcards, and `update` only on `streamrooms/finalizers` (everything else is server-side
apply: `patch`, plus `create` when the object does not exist yet).

- streamrooms: list/watch (the controller's watch). Nothing writes the spec.
- streamrooms/status: patch (status apply); get only because the per-room worker Role grants
  get+patch on it, and Kubernetes lets a subject create a Role only with what it holds itself.
- streamrooms/finalizers: update. Every child's owner reference sets blockOwnerDeletion, and
  clusters with the OwnerReferencesPermissionEnforcement admission plugin (OpenShift, for
  one) accept that only from a subject that may update the owner's finalizers.
- secrets: get as well (the keys Secret is read from the API before a key is generated, so a
  stale cache never replaces one; the default S3 / MongoDB Secrets are read by name; a room's
  own stream key Secret is read when it changed). list/watch also serve a metadata-only watch
  of every Secret (unlabelled too): a change to a Secret a room names reconciles the room, and
  a missing one is reported on it (SecretNotFound).
- other children: get (before applying a child the cache does not prove is the room's own,
  its metadata is read: a name held by anything else is a ChildConflict, never overwritten),
  list/watch (caches), create/patch (apply), delete (children a room no longer wants). Roles and RoleBindings are the per-room worker Role (get/patch on one
  room's status) and its binding.
- events.k8s.io events: create, patch (series). Core events are never written.
None can carry resourceNames: children are named `<room>-<suffix>` for rooms that do not
exist yet, and Kubernetes never applies resourceNames to create, list or watch.
*/}}
{{- define "roomcast.roomRules" -}}
{{- $children := list "get" "list" "watch" "create" "patch" "delete" -}}
- apiGroups: ["roomcast.dev"]
  resources: ["streamrooms"]
  verbs: ["list", "watch"]
- apiGroups: ["roomcast.dev"]
  resources: ["streamrooms/status"]
  verbs: ["get", "patch"]
- apiGroups: ["roomcast.dev"]
  resources: ["streamrooms/finalizers"]
  verbs: ["update"]
- apiGroups: [""]
  resources: ["secrets", "configmaps", "services", "serviceaccounts"]
  verbs: {{ toJson $children }}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: {{ toJson $children }}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: {{ toJson $children }}
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: {{ toJson $children }}
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: {{ toJson $children }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}

{{/*
The ingest gateway: object names, and the labels of its pods (the operator's
ROOMCAST_INGEST_GATEWAY_POD_LABELS names the same ones, so rooms' NetworkPolicies admit them).
*/}}
{{- define "roomcast.gatewayName" -}}
{{- printf "%s-ingest" (include "roomcast.fullname" .) }}
{{- end }}

{{- define "roomcast.gatewayRoutesName" -}}
{{- printf "%s-ingest-routes" (include "roomcast.fullname" .) }}
{{- end }}

{{- define "roomcast.gatewayRoutingKeyName" -}}
{{- printf "%s-ingest-routing-key" (include "roomcast.fullname" .) }}
{{- end }}

{{- define "roomcast.gatewaySelectorLabels" -}}
app.kubernetes.io/name: {{ include "roomcast.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: ingest-gateway
{{- end }}

{{- define "roomcast.gatewayLabels" -}}
{{ include "roomcast.gatewaySelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "roomcast.chart" . }}
{{- end }}

{{/*
The RTMPS certificate's Secret. Checked here, so a gateway without a certificate or a host
fails the install with the value to set instead of pods that never start.
*/}}
{{- define "roomcast.gatewayTlsSecret" -}}
{{- $gw := .Values.ingestGateway }}
{{- if not $gw.host }}
{{- fail "ingestGateway.enabled needs ingestGateway.host: the DNS name streamers publish to (rtmps://<host>/live)" }}
{{- end }}
{{- $issuer := $gw.tls.certManager.issuerRef }}
{{- if and (not $gw.tls.secretName) (not $issuer.name) }}
{{- fail "ingestGateway.enabled needs a certificate for RTMPS: set ingestGateway.tls.secretName (a kubernetes.io/tls Secret in the release namespace) or ingestGateway.tls.certManager.issuerRef (cert-manager issues one for ingestGateway.host)" }}
{{- end }}
{{- default (printf "%s-tls" (include "roomcast.gatewayName" .)) $gw.tls.secretName }}
{{- end }}

{{/*
`rtmps://<host>[:<port>]/live`: what streamers type and rooms' status shows.
*/}}
{{- define "roomcast.gatewayUrl" -}}
{{- $port := int .Values.ingestGateway.service.ports.rtmps }}
{{- if eq $port 443 }}
{{- printf "rtmps://%s/live" .Values.ingestGateway.host }}
{{- else }}
{{- printf "rtmps://%s:%d/live" .Values.ingestGateway.host $port }}
{{- end }}
{{- end }}

{{/*
Egress every release pod needs (the argument is `networkPolicy.egress.apiServer`): DNS at the
cluster's resolver pods, and the API server at its CIDRs or, without any, on its ports at any
address but the cloud metadata ones (the rule rooms' policies follow).
*/}}
{{- define "roomcast.policyEgressCommon" -}}
# DNS: the cluster's resolver pods only.
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: kube-system
      podSelector:
        matchLabels:
          k8s-app: kube-dns
  ports:
    - {protocol: UDP, port: 53}
    - {protocol: TCP, port: 53}
# The API server.
- to:
    {{- if .cidrs }}
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . | quote }}
    {{- end }}
    {{- else }}
    - ipBlock:
        cidr: 0.0.0.0/0
        except: [169.254.0.0/16, 100.100.100.200/32]
    - ipBlock:
        cidr: ::/0
        except: [fe80::/10, fd00:ec2::254/128]
    {{- end }}
  ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}

{{/*
A namespaceSelector (as flow-style JSON) from namespace labels; null or empty selects every
namespace.
*/}}
{{- define "roomcast.namespaceSelector" -}}
{{- if . }}{{ dict "matchLabels" . | toJson }}{{ else }}{}{{ end }}
{{- end }}
