{{/*
Storage selectable in values: `type: pvc` (a claim made by the chart, or `existingClaim`),
`hostPath` (Fleet Command edge boxes), or `emptyDir` (scratch, lost with the pod).
*/}}

{{/* A pod volume. Call with (list $ VOLUME_NAME STORAGE_VALUES CLAIM_SUFFIX). */}}
{{- define "clara-common.volume" -}}
{{- $root := index . 0 }}
{{- $s := index . 2 }}
- name: {{ index . 1 }}
{{- if eq $s.type "hostPath" }}
  hostPath:
    path: {{ $s.hostPath }}
    type: DirectoryOrCreate
{{- else if eq $s.type "emptyDir" }}
  emptyDir: {}
{{- else }}
  persistentVolumeClaim:
    claimName: {{ $s.existingClaim | default (printf "%s-%s" (include "clara-common.fullname" $root) (index . 3)) }}
{{- end }}
{{- end }}

{{/* The PersistentVolumeClaim, only for `type: pvc` without `existingClaim`. Same arguments as clara-common.volume. */}}
{{- define "clara-common.claim" -}}
{{- $root := index . 0 }}
{{- $s := index . 2 }}
{{- if and (eq $s.type "pvc") (not $s.existingClaim) }}
apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: {{ printf "%s-%s" (include "clara-common.fullname" $root) (index . 3) }}
  labels:
    {{- include "clara-common.labels" $root | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  accessModes: [{{ $s.accessMode | default "ReadWriteOnce" }}]
  {{- with $s.storageClassName }}
  storageClassName: {{ . }}
  {{- end }}
  resources:
    requests:
      storage: {{ $s.size }}
{{- end }}
{{- end }}
