{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "together-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's resources. */}}
{{- define "together-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "together-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "together-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "together-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "together-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: together-operator
{{- end -}}

{{- define "together-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "together-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "together-operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the operator-wide API key, or "" when there is none. */}}
{{- define "together-operator.apiKeySecretName" -}}
{{- if .Values.together.apiKey.existingSecret -}}
{{- .Values.together.apiKey.existingSecret -}}
{{- else if .Values.together.apiKey.value -}}
{{- printf "%s-api-key" (include "together-operator.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/*
What the operator does in the namespaces it watches, by purpose. Granted cluster-wide (ClusterRole)
when watching all namespaces, or by a Role in each watched namespace. Nothing else: no delete of
TogetherEndpoints (deletion is the user's; the operator only removes its finalizer, a patch), no list
or watch of Secrets (each one is read by name, on use), no wildcard.
*/}}
{{- define "together-operator.namespacedRules" -}}
# kopf watches TogetherEndpoints and patches them: its finalizer and its together.ai/* annotations.
- apiGroups: [together.ai]
  resources: [togetherendpoints]
  verbs: [list, watch, patch]
# The operator writes status and conditions through the status subresource.
- apiGroups: [together.ai]
  resources: [togetherendpoints/status]
  verbs: [patch]
# TogetherBudgets are read (the limits a create, start or scale-up must fit), never changed; the
# operator writes only their status (what the namespace commits).
- apiGroups: [together.ai]
  resources: [togetherbudgets]
  verbs: [list, watch]
- apiGroups: [together.ai]
  resources: [togetherbudgets/status]
  verbs: [patch]
# Events on TogetherEndpoints (Creating, Started, Stalled reasons, ...), posted by kopf.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# spec.apiKeySecretRef: the named Secret is read on every use (rotation needs no restart), and
# patched to carry the in-use finalizer together.ai/secret-in-use while deleting an endpoint needs it.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, patch]
# spec.connection.configMapName: the ConfigMap the operator publishes, owns and withdraws.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, patch, delete]
{{- end -}}
