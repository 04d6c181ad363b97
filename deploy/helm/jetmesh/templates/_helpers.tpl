{{/* Names. */}}
{{- define "jetmesh.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "jetmesh.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jetmesh.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "jetmesh.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "jetmesh.selectorLabels" -}}
app.kubernetes.io/name: {{ include "jetmesh.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "jetmesh.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "jetmesh.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "jetmesh.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* External mode: the control plane against an existing NATS. */}}
{{- define "jetmesh.external" -}}
{{- if .Values.nats.external.urls -}}true{{- end -}}
{{- end -}}

{{- define "jetmesh.externalURLs" -}}
{{- if kindIs "string" .Values.nats.external.urls -}}
{{- .Values.nats.external.urls -}}
{{- else -}}
{{- join "," .Values.nats.external.urls -}}
{{- end -}}
{{- end -}}

{{- define "jetmesh.scheme" -}}
{{- if .Values.tls.secretName -}}HTTPS{{- else -}}HTTP{{- end -}}
{{- end -}}

{{/*
GOMEMLIMIT: goMemLimitPercent of the memory limit, for limits written in Mi or Gi; other
forms get the whole limit from the downward API.
*/}}
{{- define "jetmesh.gomemlimit" -}}
{{- $limit := toString (dig "limits" "memory" "" .Values.resources) -}}
{{- if regexMatch "^[0-9]+Gi$" $limit -}}
- name: GOMEMLIMIT
  value: {{ printf "%dMiB" (div (mul (trimSuffix "Gi" $limit | atoi) 1024 .Values.goMemLimitPercent) 100) | quote }}
{{- else if regexMatch "^[0-9]+Mi$" $limit -}}
- name: GOMEMLIMIT
  value: {{ printf "%dMiB" (div (mul (trimSuffix "Mi" $limit | atoi) .Values.goMemLimitPercent) 100) | quote }}
{{- else if $limit -}}
- name: GOMEMLIMIT
  valueFrom:
    resourceFieldRef:
      resource: limits.memory
{{- end -}}
{{- end -}}

{{/* The pod's security context: non-root, no privilege escalation, read-only root. */}}
{{- define "jetmesh.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "jetmesh.probes" -}}
startupProbe:
  httpGet: {path: /healthz, port: http, scheme: {{ include "jetmesh.scheme" . }}}
  periodSeconds: 2
  failureThreshold: 90
readinessProbe:
  httpGet: {path: /readyz, port: http, scheme: {{ include "jetmesh.scheme" . }}}
  periodSeconds: 5
  failureThreshold: 2
livenessProbe:
  httpGet: {path: /healthz, port: http, scheme: {{ include "jetmesh.scheme" . }}}
  periodSeconds: 10
  failureThreshold: 6
{{- end -}}

{{/* Seconds to let endpoints drop the pod before SIGTERM starts the drain. */}}
{{- define "jetmesh.preStopSeconds" -}}5{{- end -}}
