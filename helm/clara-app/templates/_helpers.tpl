{{/* The container: `app.command` verbatim, else `clara-stream run NAME` with the mounted config, input and output. */}}
{{- define "clara-app.container" -}}
{{- $a := .Values.app }}
- name: app
  image: {{ include "clara-common.image" (list . .Values.images.app) | quote }}
  imagePullPolicy: {{ .Values.images.pullPolicy }}
  {{- if $a.command }}
  command:
    {{- toYaml $a.command | nindent 4 }}
  {{- else }}
  command: ["clara-stream"]
  args:
    - run
    - {{ $a.name | quote }}
    {{- if $a.config }}
    - --config=/var/holoscan/app.yaml
    {{- end }}
    {{- if $a.input.enabled }}
    - --input=/var/holoscan/input
    {{- end }}
    - --output=/var/holoscan/output
    {{- range $a.set }}
    - --set={{ . }}
    {{- end }}
  {{- end }}
  env:
    - name: HOME
      value: /tmp
    - name: HOLOSCAN_INPUT_PATH
      value: /var/holoscan/input
    - name: HOLOSCAN_OUTPUT_PATH
      value: /var/holoscan/output
    - name: HOLOSCAN_CONFIG_PATH
      value: /var/holoscan/app.yaml
    {{- with $a.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.probes.liveness }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.probes.readiness }}
  readinessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- include "clara-common.resources" . | nindent 2 }}
  {{- include "clara-common.containerSecurityContext" . | nindent 2 }}
  volumeMounts:
    {{- if $a.config }}
    - {name: config, mountPath: /var/holoscan/app.yaml, subPath: app.yaml, readOnly: true}
    {{- end }}
    {{- if $a.input.enabled }}
    - {name: input, mountPath: /var/holoscan/input, readOnly: true}
    {{- end }}
    - {name: output, mountPath: /var/holoscan/output}
    - {name: tmp, mountPath: /tmp}
{{- end }}

{{- define "clara-app.pod" -}}
{{- $a := .Values.app }}
metadata:
  labels:
    {{- include "clara-common.selectorLabels" . | nindent 4 }}
  annotations:
    checksum/config: {{ include "clara-common.checksum" (list . "/configmap.yaml") }}
spec:
  {{- include "clara-common.podSpec" . | nindent 2 }}
  {{- if eq $a.kind "job" }}
  restartPolicy: Never
  {{- end }}
  containers:
    {{- include "clara-app.container" . | nindent 4 }}
  volumes:
    {{- if $a.config }}
    - name: config
      configMap:
        name: {{ include "clara-common.fullname" . }}-config
    {{- end }}
    {{- if $a.input.enabled }}
    {{- include "clara-common.volume" (list . "input" $a.input "input") | nindent 4 }}
    {{- end }}
    {{- include "clara-common.volume" (list . "output" $a.output "output") | nindent 4 }}
    {{- include "clara-common.tmpVolume" . | nindent 4 }}
{{- end }}
