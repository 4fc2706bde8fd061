{{/* Names and labels. */}}
{{- define "switchyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "switchyard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selector labels of one component: (dict "ctx" $ "component" "gateway") */}}
{{- define "switchyard.selector" -}}
app.kubernetes.io/name: {{ .ctx.Chart.Name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image of one component: (dict "ctx" $ "component" "gateway") */}}
{{- define "switchyard.image" -}}
{{- $tag := default .ctx.Chart.AppVersion .ctx.Values.image.tag -}}
{{- if hasPrefix "@" $tag -}}
{{- printf "%s-%s%s" .ctx.Values.image.repository .component $tag -}}
{{- else -}}
{{- printf "%s-%s:%s" .ctx.Values.image.repository .component $tag -}}
{{- end -}}
{{- end -}}

{{/* NATS_URL: every node of the bundled cluster, or the external cluster's. */}}
{{- define "switchyard.natsURL" -}}
{{- if .Values.nats.enabled -}}
{{- $name := .Values.nats.fullnameOverride -}}
{{- $urls := list -}}
{{- range $i := until (int .Values.nats.config.cluster.replicas) -}}
{{- $urls = append $urls (printf "nats://%s-%d.%s-headless:4222" $name $i $name) -}}
{{- end -}}
{{- join "," $urls -}}
{{- else -}}
{{- required "externalNats.url is required when nats.enabled is false" .Values.externalNats.url -}}
{{- end -}}
{{- end -}}

{{/* OpenTelemetry variables of one component: (dict "ctx" $ "component" "gateway") */}}
{{- define "switchyard.otelEnv" -}}
OTEL_SERVICE_NAME: {{ printf "switchyard-%s" .component | quote }}
{{- with .ctx.Values.otel.endpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- with .ctx.Values.otel.sampler }}
OTEL_TRACES_SAMPLER: {{ . | quote }}
{{- end }}
{{- with .ctx.Values.otel.samplerArg }}
OTEL_TRACES_SAMPLER_ARG: {{ . | quote }}
{{- end }}
{{- end -}}

{{/*
The components: each one's admin port (health, readiness, metrics), its
plain settings (the ConfigMap) and its secrets: Secret key -> the variable
whose _FILE names the mounted key. Mirrors compose.yaml; the helm test holds
every variable to docs/configuration.md (generated from the config code).
*/}}
{{- define "switchyard.components" -}}
{{- $fullname := include "switchyard.fullname" . -}}
{{- $nats := include "switchyard.natsURL" . -}}
{{- $replay := required "replayKeys is required (SWITCHYARD_REPLAY_KEYS: switchyard replay-key)" .Values.replayKeys -}}
gateway:
  adminPort: 8086
  ports: {http: 8080, admin: 8086}
  env:
    GATEWAY_ADDR: ":8080"
    GATEWAY_ADMIN_ADDR: ":8086"
    NATS_URL: {{ $nats | quote }}
    NATS_USER: gateway
    SWITCHYARD_ENV: {{ .Values.environment | quote }}
    LOG_LEVEL: {{ .Values.logLevel | quote }}
  secrets:
    nats-password-gateway: NATS_PASSWORD
    stripe-webhook-secret: STRIPE_WEBHOOK_SECRET
identity:
  adminPort: 8081
  ports: {admin: 8081}
  env:
    IDENTITY_ADDR: ":8081"
    NATS_URL: {{ $nats | quote }}
    NATS_USER: identity
    SWITCHYARD_REPLAY_KEYS: {{ $replay | quote }}
    LOG_LEVEL: {{ .Values.logLevel | quote }}
  secrets:
    nats-password-identity: NATS_PASSWORD
    database-url: DATABASE_URL
crm:
  adminPort: 8082
  ports: {admin: 8082}
  env:
    CRM_ADDR: ":8082"
    NATS_URL: {{ $nats | quote }}
    NATS_USER: crm
    SWITCHYARD_REPLAY_KEYS: {{ $replay | quote }}
    LOG_LEVEL: {{ .Values.logLevel | quote }}
  secrets:
    nats-password-crm: NATS_PASSWORD
    database-url: DATABASE_URL
    hubspot-token: HUBSPOT_TOKEN
support:
  adminPort: 8083
  ports: {admin: 8083}
  env:
    SUPPORT_ADDR: ":8083"
    NATS_URL: {{ $nats | quote }}
    NATS_USER: support
    SWITCHYARD_REPLAY_KEYS: {{ $replay | quote }}
    ZENDESK_BASE_URL: {{ required "support.zendeskBaseURL is required (e.g. https://acme.zendesk.com)" .Values.support.zendeskBaseURL | quote }}
    ZENDESK_EMAIL: {{ required "support.zendeskEmail is required (the agent the API token belongs to)" .Values.support.zendeskEmail | quote }}
    SUPPORT_GROUPS: {{ required "support.groups is required (e.g. Billing=123,Customer Success=456)" .Values.support.groups | quote }}
    LOG_LEVEL: {{ .Values.logLevel | quote }}
  secrets:
    nats-password-support: NATS_PASSWORD
    database-url: DATABASE_URL
    zendesk-api-token: ZENDESK_API_TOKEN
alerts:
  adminPort: 8084
  ports: {admin: 8084}
  env:
    ALERTS_ADDR: ":8084"
    NATS_URL: {{ $nats | quote }}
    NATS_USER: alerts
    SWITCHYARD_REPLAY_KEYS: {{ $replay | quote }}
    SWITCHYARD_OPS_URL: {{ printf "http://%s-projector:%d" $fullname (int .Values.projector.service.port) | quote }}
    SWITCHYARD_CONSOLE_URL: {{ required "alerts.consoleURL is required (where people open the console)" .Values.alerts.consoleURL | quote }}
    LOG_LEVEL: {{ .Values.logLevel | quote }}
  secrets:
    nats-password-alerts: NATS_PASSWORD
    database-url: DATABASE_URL
    slack-webhook-url: SLACK_WEBHOOK_URL
    alerts-ops-token: SWITCHYARD_OPS_TOKEN
projector:
  adminPort: 8085
  ports: {admin: 8085, ops: 8090}
  env:
    PROJECTOR_ADDR: ":8085"
    OPS_ADDR: ":8090"
    {{- with .Values.jaegerUIURL }}
    JAEGER_UI_URL: {{ . | quote }}
    {{- end }}
    GATEWAY_METRICS_URL: {{ printf "http://%s-gateway-admin:8086/metrics" $fullname | quote }}
    SWITCHYARD_ENV: {{ .Values.environment | quote }}
    NATS_URL: {{ $nats | quote }}
    NATS_USER: projector
    OPS_NATS_USER: operator
    SWITCHYARD_REPLAY_KEYS: {{ $replay | quote }}
    LOG_LEVEL: {{ .Values.logLevel | quote }}
  secrets:
    nats-password-projector: NATS_PASSWORD
    nats-password-operator: OPS_NATS_PASSWORD
    database-url: DATABASE_URL
    ops-tokens: SWITCHYARD_OPS_TOKENS
    replay-signing-key: SWITCHYARD_REPLAY_SIGNING_KEY
{{- end -}}

{{/* The pod-level fields every component shares: (dict "ctx" $ "secrets" map) */}}
{{- define "switchyard.secretVolume" -}}
- name: secrets
  secret:
    secretName: {{ .ctx.Values.secret.name }}
    defaultMode: 0440
    items:
      {{- range $key, $_ := .secrets }}
      - key: {{ $key }}
        path: {{ $key }}
      {{- end }}
- name: tmp
  emptyDir:
    sizeLimit: 16Mi
{{- end -}}
