{{/* The labels every object carries: the component it belongs to. */}}
{{- define "localcsi.labels" -}}
app.kubernetes.io/part-of: localcsi
app.kubernetes.io/component: {{ . }}
{{- end }}

{{/* The localcsi image: image.repository at image.tag, or at the chart's appVersion. */}}
{{- define "localcsi.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* Pod and container security of the Deployments: nothing but API calls and a unix socket. */}}
{{- define "localcsi.podSecurityContext" -}}
securityContext:
  runAsNonRoot: true
  runAsUser: 65532
  seccompProfile: {type: RuntimeDefault}
{{- end }}

{{- define "localcsi.containerSecurityContext" -}}
securityContext:
  allowPrivilegeEscalation: false
  readOnlyRootFilesystem: true
  capabilities: {drop: ["ALL"]}
{{- end }}

{{/* prometheus.io/* scrape annotations of a pod template (monitoring.podAnnotations): dict "root" $ "port" N */}}
{{- define "localcsi.scrapeAnnotations" -}}
{{- if .root.Values.monitoring.podAnnotations -}}
annotations:
  prometheus.io/scrape: "true"
  prometheus.io/port: {{ .port | quote }}
  prometheus.io/path: /metrics
{{- end }}
{{- end }}
