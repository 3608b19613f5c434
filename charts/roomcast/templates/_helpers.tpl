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
RBAC rules the operator needs wherever rooms live: read rooms, write their status, manage
every child kind it owns, and emit Events. No wildcards. rbac roles/rolebindings are here
because the operator creates, per room, a Role that lets the room's workers get/patch that
room's `streamrooms/status`, which Kubernetes allows only to holders of those verbs.
*/}}
{{- define "roomcast.roomRules" -}}
{{- $manage := list "get" "list" "watch" "create" "patch" "update" "delete" -}}
- apiGroups: ["roomcast.dev"]
  resources: ["streamrooms"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["roomcast.dev"]
  resources: ["streamrooms/status"]
  verbs: ["get", "patch", "update"]
- apiGroups: [""]
  resources: ["secrets", "configmaps", "services", "serviceaccounts"]
  verbs: {{ toJson $manage }}
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: {{ toJson $manage }}
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses", "networkpolicies"]
  verbs: {{ toJson $manage }}
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: {{ toJson $manage }}
- apiGroups: ["rbac.authorization.k8s.io"]
  resources: ["roles", "rolebindings"]
  verbs: {{ toJson $manage }}
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end }}
