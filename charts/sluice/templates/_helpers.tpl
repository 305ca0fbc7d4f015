{{/* Chart name. */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: fullnameOverride, else the release name if it contains the chart name, else RELEASE-NAME. */}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "sluice.labels" -}}
helm.sh/chart: {{ include "sluice.chart" . }}
{{ include "sluice.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels: Deployment selector, pod labels, Service selector, PDB, topology spread. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end }}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- /* Never the namespace's "default" account: every pod there would get the ClusterRole. */}}
{{- required "serviceAccount.name is required when serviceAccount.create is false (binding the ClusterRole to the namespace's default account would give it to every pod there)" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sluice.image" -}}
{{- $img := printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- if .Values.image.digest }}
{{- $img = printf "%s@%s" $img .Values.image.digest }}
{{- end }}
{{- $img }}
{{- end }}

{{/* NAMESPACE/NAME given to --publish-service. With watchNamespace, Sluice
watches Services there only, so the published one must live there. */}}
{{- define "sluice.publishService" -}}
{{- $svc := default (printf "%s/%s" .Release.Namespace (include "sluice.fullname" .)) .Values.controller.publishService.pathOverride }}
{{- with .Values.controller.watchNamespace }}
{{- if ne (first (splitList "/" $svc)) . }}
{{- fail (printf "controller.watchNamespace=%s: Sluice then watches Services in %s only, so it could never read the address of %s for --publish-service; install into %s, set controller.publishService.pathOverride to a Service there, or set controller.publishService.enabled=false" . . $svc .) }}
{{- end }}
{{- end }}
{{- $svc }}
{{- end }}

{{/* The namespace of the published Service: the status Lease lives there. */}}
{{- define "sluice.leaseNamespace" -}}
{{- include "sluice.publishService" . | splitList "/" | first }}
{{- end }}

{{/* Whether the PodDisruptionBudget is rendered ("true" or ""). */}}
{{- define "sluice.pdbEnabled" -}}
{{- $c := .Values.controller }}
{{- if and $c.podDisruptionBudget.enabled (or (eq $c.kind "DaemonSet") (gt (int $c.replicaCount) 1) $c.autoscaling.enabled) }}true{{ end }}
{{- end }}

{{/*
A Go-style duration of whole seconds, minutes or hours ("30s", "1m", "1m30s") in seconds;
-1 when it has other units (ms), so the grace-period check is skipped.
*/}}
{{- define "sluice.durationSeconds" -}}
{{- $d := toString . }}
{{- if regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $d }}
{{- $total := 0 }}
{{- range $part := regexFindAll "[0-9]+[hms]" $d -1 }}
{{- $n := trimSuffix "h" (trimSuffix "m" (trimSuffix "s" $part)) | int }}
{{- if hasSuffix "h" $part }}{{ $total = add $total (mul $n 3600) }}{{ else if hasSuffix "m" $part }}{{ $total = add $total (mul $n 60) }}{{ else }}{{ $total = add $total $n }}{{ end }}
{{- end }}
{{- $total }}
{{- else }}-1{{ end }}
{{- end }}
