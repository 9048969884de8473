{{/* Names and labels, as `helm create` writes them. */}}
{{- define "clara-common.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clara-common.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "clara-common.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "clara-common.selectorLabels" -}}
app.kubernetes.io/name: {{ include "clara-common.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "clara-common.labels" -}}
helm.sh/chart: {{ include "clara-common.chart" . }}
{{ include "clara-common.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: clara-stream
{{- end }}

{{/* Image reference: [registry/]namespace/NAME:TAG-cpu|cuda (the CUDA build when gpu.enabled). Call with (list $ NAME). */}}
{{- define "clara-common.image" -}}
{{- $root := index . 0 }}
{{- $i := $root.Values.images }}
{{- $prefix := ternary (printf "%s/" $i.registry) "" (ne $i.registry "") }}
{{- printf "%s%s/%s:%s-%s" $prefix $i.namespace (index . 1) $i.tag (ternary "cuda" "cpu" $root.Values.gpu.enabled) }}
{{- end }}

{{- define "clara-common.pullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}
