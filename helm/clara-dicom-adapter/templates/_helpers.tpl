{{/* clara-dicom-adapter names come from the shared library chart. */}}
{{- define "clara-dicom-adapter.fullname" -}}{{ include "clara-common.fullname" . }}{{- end }}

{{/* celery: the broker and database URLs from their Secrets (env, never args: they hold passwords). */}}
{{- define "clara-dicom-adapter.celeryEnv" -}}
- name: CLARA_STREAM_BROKER_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.broker.urlSecret | required "broker.urlSecret: expected a Secret name for scheduler.backend celery; got none" }}, key: {{ .Values.broker.urlKey }}}
- name: CLARA_STREAM_DATABASE_URL
  valueFrom:
    secretKeyRef: {name: {{ .Values.database.urlSecret | required "database.urlSecret: expected a Secret name for scheduler.backend celery; got none" }}, key: {{ .Values.database.urlKey }}}
{{- end }}

{{/* The worker's own names: its labels differ from the adapter's, so neither Deployment nor policy selects the other's pods. */}}
{{- define "clara-dicom-adapter.workerSelectorLabels" -}}
app.kubernetes.io/name: {{ include "clara-common.name" . }}-worker
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: worker
{{- end }}
