{{/*
Storage selectable in values: `type: pvc` (a claim made by the chart, or `existingClaim`),
`hostPath` (a node folder mounted directly, as Fleet Command edge boxes use), `hostPathVolume` (the same
folder as a PersistentVolume bound to the chart's claim, as NVIDIA's charts' volume.yaml), or
`emptyDir` (scratch, lost with the pod).
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

{{/* Name of the PersistentVolume of `type: hostPathVolume` (cluster-scoped: the namespace is part of it). */}}
{{- define "clara-common.pvName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s-%s" $root.Release.Namespace (include "clara-common.fullname" $root) (index . 3) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The hostPath PersistentVolume, only for `type: hostPathVolume`, reserved for the chart's claim. */}}
{{- define "clara-common.persistentVolume" -}}
{{- $root := index . 0 }}
{{- $s := index . 2 }}
{{- if and (eq $s.type "hostPathVolume") (not $s.existingClaim) }}
apiVersion: v1
kind: PersistentVolume
metadata:
  name: {{ include "clara-common.pvName" . }}
  labels:
    {{- include "clara-common.labels" $root | nindent 4 }}
  annotations:
    helm.sh/resource-policy: keep
spec:
  capacity:
    storage: {{ $s.size }}
  accessModes: [{{ $s.accessMode | default "ReadWriteOnce" }}]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: {{ $s.storageClassName | quote }}
  claimRef:
    namespace: {{ $root.Release.Namespace }}
    name: {{ printf "%s-%s" (include "clara-common.fullname" $root) (index . 3) }}
  hostPath:
    path: {{ $s.hostPath }}
    type: DirectoryOrCreate
{{- end }}
{{- end }}

{{/* The PersistentVolumeClaim, for `type: pvc` or `hostPathVolume` without `existingClaim`. Same arguments as clara-common.volume. */}}
{{- define "clara-common.claim" -}}
{{- $root := index . 0 }}
{{- $s := index . 2 }}
{{- if and (has $s.type (list "pvc" "hostPathVolume")) (not $s.existingClaim) }}
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
  {{- if eq $s.type "hostPathVolume" }}
  storageClassName: {{ $s.storageClassName | quote }}
  volumeName: {{ include "clara-common.pvName" . }}
  {{- else if $s.storageClassName }}
  storageClassName: {{ $s.storageClassName }}
  {{- end }}
  resources:
    requests:
      storage: {{ $s.size }}
{{- end }}
{{- end }}
