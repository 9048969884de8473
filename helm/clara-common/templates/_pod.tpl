{{/* Pod-level settings: non-root user, seccomp, GPU scheduling (node selector, tolerations, runtime class). */}}
{{- define "clara-common.podSpec" -}}
{{- include "clara-common.pullSecrets" . }}
automountServiceAccountToken: false
securityContext:
  runAsNonRoot: true
  runAsUser: {{ .Values.securityContext.runAsUser }}
  runAsGroup: {{ .Values.securityContext.runAsGroup }}
  fsGroup: {{ .Values.securityContext.fsGroup }}
  seccompProfile:
    type: RuntimeDefault
{{- if and .Values.gpu.enabled .Values.gpu.runtimeClassName }}
runtimeClassName: {{ .Values.gpu.runtimeClassName }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Container-level hardening: no privilege, no escalation, read-only root, no capabilities. */}}
{{- define "clara-common.containerSecurityContext" -}}
securityContext:
  privileged: false
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities:
    drop: ["ALL"]
{{- end }}

{{/* resources, with `gpu.count` of `gpu.resourceName` added to the limits when gpu.enabled. */}}
{{- define "clara-common.resources" -}}
{{- $r := deepCopy (.Values.resources | default dict) }}
{{- if .Values.gpu.enabled }}
{{- $limits := get $r "limits" | default dict }}
{{- $_ := set $limits .Values.gpu.resourceName (.Values.gpu.count | int) }}
{{- $_ := set $r "limits" $limits }}
{{- end }}
resources:
  {{- toYaml $r | nindent 2 }}
{{- end }}

{{/* A writable /tmp (the root filesystem is read-only). */}}
{{- define "clara-common.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit | default "1Gi" }}
{{- end }}
