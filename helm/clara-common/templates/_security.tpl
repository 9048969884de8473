{{/*
API token Secret. The services listen on 0.0.0.0 inside the pod, so a token is always set: `auth.token`,
else an `auth.existingSecret`, else the token already stored in the release's Secret (kept across upgrades),
else a new random one.
*/}}
{{- define "clara-common.tokenSecretName" -}}
{{- .Values.auth.existingSecret | default (printf "%s-token" (include "clara-common.fullname" .)) }}
{{- end }}

{{- define "clara-common.tokenSecret" -}}
{{- if not .Values.auth.existingSecret }}
{{- $name := include "clara-common.tokenSecretName" . }}
{{- $token := .Values.auth.token }}
{{- if not $token }}
{{- $old := (lookup "v1" "Secret" .Release.Namespace $name).data | default dict }}
{{- $token = get $old .Values.auth.secretKey | b64dec | default (randAlphaNum 40) }}
{{- end }}
apiVersion: v1
kind: Secret
metadata:
  name: {{ $name }}
  labels:
    {{- include "clara-common.labels" . | nindent 4 }}
type: Opaque
data:
  {{ .Values.auth.secretKey }}: {{ $token | b64enc | quote }}
{{- end }}
{{- end }}

{{/* Env var NAME read from the token Secret. Call with (list $ NAME). */}}
{{- define "clara-common.tokenEnv" -}}
{{- $root := index . 0 }}
- name: {{ index . 1 }}
  valueFrom:
    secretKeyRef:
      name: {{ include "clara-common.tokenSecretName" $root }}
      key: {{ $root.Values.auth.secretKey }}
{{- end }}

{{/*
NetworkPolicy: ingress only on the listed container ports (from `networkPolicy.ingressFrom` peers, or any
source when empty); egress as `networkPolicy.egress` (default: all). Call with (list $ PORTS).
*/}}
{{- define "clara-common.networkPolicy" -}}
{{- $root := index . 0 }}
{{- $ports := index . 1 }}
{{- if $root.Values.networkPolicy.enabled }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "clara-common.fullname" $root }}
  labels:
    {{- include "clara-common.labels" $root | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "clara-common.selectorLabels" $root | nindent 6 }}
  policyTypes: [Ingress, Egress]
  {{- if $ports }}
  ingress:
    - ports:
        {{- range $ports }}
        - port: {{ . }}
          protocol: TCP
        {{- end }}
      {{- with $root.Values.networkPolicy.ingressFrom }}
      from:
        {{- toYaml . | nindent 8 }}
      {{- end }}
  {{- else }}
  ingress: []
  {{- end }}
  egress:
    {{- toYaml ($root.Values.networkPolicy.egress | default (list dict)) | nindent 4 }}
{{- end }}
{{- end }}

{{/* Checksum of a rendered template, so a config change rolls the pods. Call with (list $ TEMPLATE_PATH). */}}
{{- define "clara-common.checksum" -}}
{{- $root := index . 0 }}
{{- include (print $root.Template.BasePath (index . 1)) $root | sha256sum }}
{{- end }}
