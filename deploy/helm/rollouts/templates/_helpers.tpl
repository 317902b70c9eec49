{{/* The release's full name: <release>-controller (rollouts-controller for release "rollouts"). */}}
{{- define "rollouts.fullname" -}}
{{- default (printf "%s-controller" .Release.Name) .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Prefix of the cluster-wide user roles: rollouts-view, rollouts-edit, ... for release "rollouts". */}}
{{- define "rollouts.rolePrefix" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "rollouts.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rollouts.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "rollouts.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{- define "rollouts.selectorLabels" -}}
app.kubernetes.io/name: rollouts-controller
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "rollouts.labels" -}}
{{ include "rollouts.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "rollouts.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "rollouts.validate" -}}
{{- if not (has .Values.scope (list "cluster" "namespace")) -}}
{{- fail (printf "scope must be cluster or namespace, not %q" .Values.scope) -}}
{{- end -}}
{{- if and .Values.watchNamespace (eq .Values.scope "cluster") -}}
{{- fail "watchNamespace is only used with scope: namespace" -}}
{{- end -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) -}}
{{- fail "more than one replica needs leaderElection.enabled: two controllers would both act" -}}
{{- end -}}
{{- end -}}

{{/* The rules of the object named `name` of kind `kind` in one of deploy/'s plain manifests
     (files/ links to them): the chart grants exactly what deploy/ grants. */}}
{{- define "rollouts.rulesOf" -}}
{{- $want := . -}}
{{- range $doc := ($want.root.Files.Get $want.file | splitList "\n---\n") -}}
{{- $o := fromYaml $doc -}}
{{- if and $o.metadata (eq (toString $o.kind) $want.kind) (eq (toString $o.metadata.name) $want.name) -}}
{{- toYaml $o.rules -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Resources that a namespaced Role cannot grant. */}}
{{- define "rollouts.clusterScoped" -}}
{{- list "clusteranalysistemplates" "tokenreviews" "subjectaccessreviews" | toJson -}}
{{- end -}}
