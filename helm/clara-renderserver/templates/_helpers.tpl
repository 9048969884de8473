{{/* clara-renderserver names come from the shared library chart. */}}
{{- define "clara-renderserver.fullname" -}}{{ include "clara-common.fullname" . }}{{- end }}
