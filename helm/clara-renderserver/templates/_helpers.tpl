{{/* clara-renderserver names come from the shared library chart. */}}
{{- define "clara-renderserver.fullname" -}}{{ include "clara-common.fullname" . }}{{- end }}

{{/* What the trio's three containers share: the one render-server image and the hardening. */}}
{{- define "clara-renderserver.container" -}}
image: {{ include "clara-common.image" (list . .Values.images.renderServer) | quote }}
imagePullPolicy: {{ .Values.images.pullPolicy }}
command: ["clara-stream"]
{{- include "clara-common.containerSecurityContext" . | nindent 0 }}
{{- end }}

{{/* One named container port from a port block (portName, port, optional hostPort). */}}
{{- define "clara-renderserver.port" -}}
- name: {{ .portName }}
  containerPort: {{ .port }}
  protocol: TCP
  {{- with .hostPort }}
  hostPort: {{ . }}
  {{- end }}
{{- end }}

{{/* startup/readiness/liveness as TCP connects to a gRPC port: (list . portName). */}}
{{- define "clara-renderserver.tcpProbes" -}}
{{- $v := (index . 0).Values.probes }}
{{- $port := index . 1 }}
startupProbe:
  tcpSocket: {port: {{ $port }}}
  periodSeconds: 5
  failureThreshold: 60
readinessProbe:
  tcpSocket: {port: {{ $port }}}
  periodSeconds: {{ $v.periodSeconds }}
  failureThreshold: 3
livenessProbe:
  tcpSocket: {port: {{ $port }}}
  periodSeconds: {{ $v.periodSeconds }}
  failureThreshold: {{ $v.failureThreshold }}
{{- end }}
