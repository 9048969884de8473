{{/* clara-dicom-adapter names come from the shared library chart. */}}
{{- define "clara-dicom-adapter.fullname" -}}{{ include "clara-common.fullname" . }}{{- end }}
