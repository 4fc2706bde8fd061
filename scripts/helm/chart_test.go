// Package helm checks Switchyard's deployment files with the deployment tools'
// own code: the Helm chart (services/switchyard/deploy/helm/switchyard) with
// Helm's — `helm lint`'s rules and `helm template`'s rendering, then each
// manifest decoded strictly into its Kubernetes API type — and the Prometheus
// rules and Grafana queries with Prometheus's parser (prometheus_test.go). It
// is a module of its own, outside go.work, so Helm's, Kubernetes's and
// Prometheus's dependency trees stay out of the services' modules (`make
// helm`: `GOWORK=off go -C scripts/helm test ./...`).
//
// The chart's dependency, the official NATS chart, is fetched by `helm
// dependency build`, which CI cannot do (no network to its repository): the
// chart is rendered without it — with nats.enabled (the default) and with an
// external NATS — and the values handed to it are checked in
// services/switchyard/deploy (helm_test.go) with nats-server's parser.
package helm_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v4/pkg/action"
	ci "helm.sh/helm/v4/pkg/chart"
	"helm.sh/helm/v4/pkg/chart/common"
	chart "helm.sh/helm/v4/pkg/chart/v2"
	"helm.sh/helm/v4/pkg/chart/v2/lint/support"
	"helm.sh/helm/v4/pkg/chart/v2/loader"
	release "helm.sh/helm/v4/pkg/release/v1"
	releaseutil "helm.sh/helm/v4/pkg/release/v1/util"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"sigs.k8s.io/yaml"
)

const (
	chartDir   = "../../services/switchyard/deploy/helm/switchyard"
	configDoc  = "../../docs/configuration.md"
	natsAuth   = chartDir + "/files/nats-auth.conf"
	secretDir  = "/run/secrets/switchyard"
	release0   = "sy"
	namespace0 = "hub"
)

// components are the chart's Deployments, by the section of
// docs/configuration.md (generated from the config code) that lists what
// each reads.
var components = map[string]string{
	"gateway": "gateway", "identity": "identity", "crm": "crm",
	"support": "support", "alerts": "alerts", "projector": "projector",
}

// requiredValues are the values an operator must set (the chart refuses to
// render without them); nothing here is a secret.
func requiredValues() map[string]any {
	return map[string]any{
		"image": map[string]any{"tag": "1.4.2"},
		// the public half of services/switchyard/deploy's testReplayKey
		"replayKeys": "e36f2cd26cc5f87c228677a25068ca3f0dd2b67fc001bac6cd4047d63f257d80",
		"support": map[string]any{"zendeskBaseURL": "https://acme.zendesk.com", "zendeskEmail": "agent@acme.example",
			"groups": "Billing=123,Customer Success=456"},
		"alerts": map[string]any{"consoleURL": "https://ops.acme.example"},
	}
}

// merge returns a deep copy of base with over written on top.
func merge(base, over map[string]any) map[string]any {
	out := maps.Clone(base)
	for k, v := range over {
		if m, ok := v.(map[string]any); ok {
			if b, ok := out[k].(map[string]any); ok {
				out[k] = merge(b, m)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// loadChart loads the chart as CI has it: without the NATS chart, even
// where `helm dependency build` has put it in charts/ (git ignores it), so
// every checkout renders the same manifests: this chart's own.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	ch, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	ch.SetDependencies()
	return ch
}

// natsFetched reports whether `helm dependency build` has put the NATS
// chart into charts/ (a developer's checkout; never CI's: git ignores it).
func natsFetched(t *testing.T) bool {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(chartDir, "charts", "nats-*.tgz"))
	if err != nil {
		t.Fatal(err)
	}
	return len(m) > 0
}

// TestChartLint runs `helm lint --strict`'s rules. The one message allowed
// is the warning that charts/ lacks the NATS chart, which only `helm
// dependency build` (network) provides.
func TestChartLint(t *testing.T) {
	t.Parallel()
	for name, vals := range map[string]map[string]any{
		"bundled NATS":  requiredValues(),
		"external NATS": merge(requiredValues(), map[string]any{"nats": map[string]any{"enabled": false}, "externalNats": map[string]any{"url": "nats://a:4222,nats://b:4222,nats://c:4222"}}),
	} {
		t.Run(name, func(t *testing.T) {
			lint := action.NewLint()
			lint.Strict = true
			lint.Namespace = namespace0
			lint.KubeVersion = kubeVersion(t)
			res := lint.Run([]string{chartDir}, vals)
			if res.TotalChartsLinted != 1 {
				t.Fatalf("linted %d charts: %v", res.TotalChartsLinted, res.Errors)
			}
			missingDep := 0
			for _, m := range res.Messages {
				if m.Severity == support.WarningSev && strings.Contains(m.Err.Error(), "missing these dependencies: nats") {
					missingDep++
					continue
				}
				if m.Severity > support.InfoSev {
					t.Errorf("lint: %s", m)
				}
			}
			if want := map[bool]int{false: 1, true: 0}[natsFetched(t)]; missingDep != want {
				t.Errorf("lint warned %d times that charts/ lacks the nats dependency, want %d", missingDep, want)
			}
		})
	}

	// Without the operator's values the chart refuses to render, naming what
	// is missing (lint only warns of a failed `required`).
	install := newInstall(t)
	if _, err := install.Run(loadChart(t), nil); err == nil || !strings.Contains(err.Error(), "replayKeys is required") {
		t.Errorf("render with the default values alone: %v, want an error naming replayKeys", err)
	}
}

// kubeVersion is the cluster version the chart is rendered for (Helm's
// client-only default is v1.20, older than the chart supports).
func kubeVersion(t *testing.T) *common.KubeVersion {
	t.Helper()
	v, err := common.ParseKubeVersion("v1.33.0")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// newInstall is `helm template`'s install: client-only, no cluster.
func newInstall(t *testing.T) *action.Install {
	t.Helper()
	install := action.NewInstall(action.NewConfiguration())
	install.DryRunStrategy = action.DryRunClient
	install.ReleaseName = release0
	install.Namespace = namespace0
	install.Replace = true
	install.KubeVersion = kubeVersion(t)
	return install
}

// TestChartDependency: the NATS chart is the official one, at a pinned 1.x
// version, switched by nats.enabled, and never committed (install needs
// `helm dependency build` first; git ignores what it fetches).
func TestChartDependency(t *testing.T) {
	t.Parallel()
	ch := loadChart(t)
	if ch.Metadata.APIVersion != chart.APIVersionV2 {
		t.Errorf("apiVersion %q, want v2", ch.Metadata.APIVersion)
	}
	if len(ch.Metadata.Dependencies) != 1 {
		t.Fatalf("dependencies %+v, want nats alone", ch.Metadata.Dependencies)
	}
	d := ch.Metadata.Dependencies[0]
	if d.Name != "nats" || d.Repository != "https://nats-io.github.io/k8s/helm/charts/" || d.Condition != "nats.enabled" {
		t.Errorf("dependency %+v, want nats from the official repository, condition nats.enabled", d)
	}
	if !regexp.MustCompile(`^1\.[0-9]+\.[0-9]+$`).MatchString(d.Version) {
		t.Errorf("nats chart version %q, want a pinned 1.x.y (the values follow its 1.x schema)", d.Version)
	}
	raw, err := loader.Load(chartDir) // with whatever charts/ holds
	if err != nil {
		t.Fatal(err)
	}
	err = action.CheckDependencies(raw, []ci.Dependency{d})
	if fetched := natsFetched(t); fetched != (err == nil) {
		t.Errorf("CheckDependencies = %v with the NATS chart fetched: %t", err, fetched)
	}
	ignored, err := os.ReadFile("../../.gitignore")
	if err != nil || !strings.Contains(string(ignored), "\nservices/switchyard/deploy/helm/switchyard/charts/\n") {
		t.Errorf(".gitignore does not ignore the chart's charts/ (%v): the NATS chart fetched there must not be committed", err)
	}
}

// render is `helm template` with vals: the manifests, hooks included, each
// split from the others.
func render(t *testing.T, vals map[string]any) (manifests []string, hooks []*release.Hook) {
	t.Helper()
	r, err := newInstall(t).Run(loadChart(t), vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	rel, ok := r.(*release.Release)
	if !ok {
		t.Fatalf("release type %T", r)
	}
	for _, m := range releaseutil.SplitManifests(rel.Manifest) {
		manifests = append(manifests, m)
	}
	for _, h := range rel.Hooks {
		manifests = append(manifests, h.Manifest)
	}
	return manifests, rel.Hooks
}

// objects are the rendered manifests decoded into their API types.
type objects struct {
	deployments map[string]*appsv1.Deployment // by component
	configMaps  map[string]*corev1.ConfigMap  // by name
	services    map[string]*corev1.Service
	pdbs        map[string]*policyv1.PodDisruptionBudget
	ingresses   map[string]*networkingv1.Ingress
	jobs        map[string]*batchv1.Job
}

// decode decodes every manifest strictly into its Kubernetes API type: a
// misspelt or misplaced field fails here, not at `kubectl apply`.
func decode(t *testing.T, manifests []string) objects {
	t.Helper()
	o := objects{map[string]*appsv1.Deployment{}, map[string]*corev1.ConfigMap{}, map[string]*corev1.Service{},
		map[string]*policyv1.PodDisruptionBudget{}, map[string]*networkingv1.Ingress{}, map[string]*batchv1.Job{}}
	seen := map[string]bool{}
	for _, m := range manifests {
		if strings.TrimSpace(m) == "" {
			continue
		}
		var head struct {
			APIVersion string `json:"apiVersion"`
			Kind       string `json:"kind"`
			Metadata   struct {
				Name   string            `json:"name"`
				Labels map[string]string `json:"labels"`
			} `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(m), &head); err != nil {
			t.Fatalf("%v\n%s", err, m)
		}
		id := head.APIVersion + "/" + head.Kind + "/" + head.Metadata.Name
		if seen[id] {
			t.Errorf("%s rendered twice", id)
		}
		seen[id] = true
		if head.Metadata.Labels["app.kubernetes.io/instance"] != release0 {
			t.Errorf("%s: no app.kubernetes.io/instance label", id)
		}
		strict := func(v any) {
			if err := yaml.UnmarshalStrict([]byte(m), v); err != nil {
				t.Errorf("%s: %v", id, err)
			}
		}
		switch head.APIVersion + " " + head.Kind {
		case "apps/v1 Deployment":
			d := new(appsv1.Deployment)
			strict(d)
			o.deployments[d.Spec.Template.Labels["app.kubernetes.io/component"]] = d
		case "v1 ConfigMap":
			c := new(corev1.ConfigMap)
			strict(c)
			o.configMaps[c.Name] = c
		case "v1 Service":
			s := new(corev1.Service)
			strict(s)
			o.services[s.Name] = s
		case "policy/v1 PodDisruptionBudget":
			p := new(policyv1.PodDisruptionBudget)
			strict(p)
			o.pdbs[p.Name] = p
		case "networking.k8s.io/v1 Ingress":
			i := new(networkingv1.Ingress)
			strict(i)
			o.ingresses[i.Name] = i
		case "batch/v1 Job":
			j := new(batchv1.Job)
			strict(j)
			o.jobs[j.Name] = j
		default:
			t.Errorf("unexpected %s", id)
		}
	}
	return o
}

// configVar is a variable a component reads, by docs/configuration.md.
type configVar struct{ secret bool }

// readConfigDoc parses docs/configuration.md (generated from the config
// code): each section's variables and whether they are secrets (NAME_FILE).
func readConfigDoc(t *testing.T) map[string]map[string]configVar {
	t.Helper()
	f, err := os.Open(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| `([A-Z0-9_]+)` \\|[^|]*\\|[^|]*\\| *(yes)?")
	out := map[string]map[string]configVar{}
	var section string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if s, ok := strings.CutPrefix(line, "## "); ok {
			section = s
			out[section] = map[string]configVar{}
			continue
		}
		if m := row.FindStringSubmatch(line); m != nil && section != "" {
			out[section][m[1]] = configVar{secret: m[2] == "yes"}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	for _, s := range append(slices.Collect(maps.Values(components)), "switchyard migrate") {
		if len(out[s]) == 0 {
			t.Fatalf("%s: no variables under ## %s: update this test", configDoc, s)
		}
	}
	return out
}

// checkEnv holds a container's variables (its ConfigMap's and its own) to
// what the component reads: every name is in its section of
// docs/configuration.md (OTEL_* are the SDK's), a secret is only ever given
// as NAME_FILE naming a key of the Secret volume mounted there, and a
// setting given as a value is never a secret.
func checkEnv(t *testing.T, where string, doc map[string]configVar, plain map[string]string, c corev1.Container, pod corev1.PodSpec, secretName string) {
	t.Helper()
	mounted := map[string]bool{} // file paths of the Secret's keys
	for _, vm := range c.VolumeMounts {
		for _, v := range pod.Volumes {
			if v.Name != vm.Name || v.Secret == nil {
				continue
			}
			if v.Secret.SecretName != secretName {
				t.Errorf("%s: volume %s is Secret %q, want %q (secret.name)", where, v.Name, v.Secret.SecretName, secretName)
			}
			if !vm.ReadOnly {
				t.Errorf("%s: the Secret is mounted writable", where)
			}
			for _, item := range v.Secret.Items {
				mounted[path.Join(vm.MountPath, item.Path)] = true
			}
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			t.Errorf("%s: %s comes from valueFrom: give secrets as files (NAME_FILE), settings through the ConfigMap", where, e.Name)
			continue
		}
		plain[e.Name] = e.Value
	}
	for name, value := range plain {
		if strings.HasPrefix(name, "OTEL_") {
			continue
		}
		if base, ok := strings.CutSuffix(name, "_FILE"); ok && doc[base].secret {
			if !mounted[value] {
				t.Errorf("%s: %s=%s names no key of the mounted Secret", where, name, value)
			}
			continue
		}
		v, known := doc[name]
		switch {
		case !known:
			t.Errorf("%s: sets %s, which the component never reads (docs/configuration.md)", where, name)
		case v.secret:
			t.Errorf("%s: %s is a secret given as a value: mount it and set %[2]s_FILE", where, name)
		}
	}
}

// port returns the port of an address such as ":8086".
func port(t *testing.T, addr string) int32 {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return int32(n)
}

func TestChartRender(t *testing.T) {
	t.Parallel()
	doc := readConfigDoc(t)
	const externalURL = "nats://nats-a.msg:4222,nats://nats-b.msg:4222,nats://nats-c.msg:4222"
	cases := []struct {
		name    string
		vals    map[string]any
		natsURL string
		hook    string
	}{
		{
			// The defaults (the subchart is absent here: Helm renders the
			// parent alone) plus the values an operator must set.
			name: "bundled NATS",
			vals: requiredValues(),
			natsURL: "nats://switchyard-nats-0.switchyard-nats-headless:4222,nats://switchyard-nats-1.switchyard-nats-headless:4222," +
				"nats://switchyard-nats-2.switchyard-nats-headless:4222",
			hook: "post-install,pre-upgrade",
		},
		{
			name: "external NATS, ingress, tracing, two of each consumer",
			vals: merge(requiredValues(), map[string]any{
				"nats":         map[string]any{"enabled": false},
				"externalNats": map[string]any{"url": externalURL},
				"otel":         map[string]any{"endpoint": "http://collector.tracing:4318"},
				"gateway":      map[string]any{"ingress": map[string]any{"enabled": true, "host": "hooks.acme.example", "tlsSecretName": "hooks-tls"}},
				"identity":     map[string]any{"replicas": 2},
				"crm":          map[string]any{"replicas": 2},
			}),
			natsURL: externalURL,
			hook:    "pre-install,pre-upgrade",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			manifests, hooks := render(t, tc.vals)
			o := decode(t, manifests)
			bundled := tc.natsURL != externalURL
			otel := ""
			if !bundled {
				otel = "http://collector.tracing:4318"
			}

			if got := slices.Sorted(maps.Keys(o.deployments)); !slices.Equal(got, slices.Sorted(maps.Keys(components))) {
				t.Fatalf("deployments %v, want the six components", got)
			}
			for name, d := range o.deployments {
				where := "deployment " + name
				pod := d.Spec.Template.Spec
				if len(pod.Containers) != 1 {
					t.Fatalf("%s: %d containers", where, len(pod.Containers))
				}
				c := pod.Containers[0]

				cm := o.configMaps[fmt.Sprintf("%s-switchyard-%s", release0, name)]
				if cm == nil || len(c.EnvFrom) != 1 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != cm.Name {
					t.Fatalf("%s: settings not from its ConfigMap (envFrom %+v)", where, c.EnvFrom)
				}
				env := maps.Clone(cm.Data)
				checkEnv(t, where, doc[components[name]], env, c, pod, "switchyard")

				if env["NATS_URL"] != tc.natsURL {
					t.Errorf("%s: NATS_URL %q, want %q", where, env["NATS_URL"], tc.natsURL)
				}
				if env["NATS_USER"] != name || env["NATS_PASSWORD_FILE"] != secretDir+"/nats-password-"+name {
					t.Errorf("%s: NATS login %s / %s, want its own identity and Secret key", where, env["NATS_USER"], env["NATS_PASSWORD_FILE"])
				}
				if env["OTEL_EXPORTER_OTLP_ENDPOINT"] != otel || env["OTEL_SERVICE_NAME"] != "switchyard-"+name {
					t.Errorf("%s: OTEL endpoint %q, service %q; want %q, switchyard-%s", where, env["OTEL_EXPORTER_OTLP_ENDPOINT"], env["OTEL_SERVICE_NAME"], otel, name)
				}

				// Probes on the admin listener, the port the service's
				// <NAME>_ADMIN_ADDR or <NAME>_ADDR binds.
				prefix := strings.ToUpper(name)
				addr := env[prefix+"_ADMIN_ADDR"]
				if addr == "" {
					addr = env[prefix+"_ADDR"]
				}
				admin := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "admin" })
				if admin < 0 || c.Ports[admin].ContainerPort != port(t, addr) {
					t.Errorf("%s: admin port %+v, want the one %s_ADDR binds (%s)", where, c.Ports, prefix, addr)
				}
				for probe, want := range map[*corev1.Probe]string{c.LivenessProbe: "/healthz", c.ReadinessProbe: "/readyz"} {
					if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want || probe.HTTPGet.Port.String() != "admin" {
						t.Errorf("%s: want a probe GET %s on the admin port, got %+v", where, want, probe)
					}
				}

				for _, kind := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					if c.Resources.Requests.Name(kind, "").IsZero() || c.Resources.Limits.Name(kind, "").IsZero() {
						t.Errorf("%s: no %s request and limit", where, kind)
					}
				}

				sc := c.SecurityContext
				if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
					t.Errorf("%s: not runAsNonRoot", where)
				}
				if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
					sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
					sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
					t.Errorf("%s: securityContext %+v, want a read-only root, no privilege escalation, every capability dropped", where, sc)
				}
				if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
					t.Errorf("%s: mounts a service account token it never uses", where)
				}

				wantImage := fmt.Sprintf("registry.example.com/switchyard-%s:1.4.2", name)
				if c.Image != wantImage {
					t.Errorf("%s: image %q, want %q", where, c.Image, wantImage)
				}

				replicas := int32(1)
				if d.Spec.Replicas != nil {
					replicas = *d.Spec.Replicas
				}
				pdb := o.pdbs[d.Name]
				switch {
				case replicas > 1 && (pdb == nil || pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1):
					t.Errorf("%s: %d replicas and no PodDisruptionBudget allowing one down", where, replicas)
				case replicas > 1 && !maps.Equal(pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels):
					t.Errorf("%s: its PodDisruptionBudget selects %v, the pods are %v", where, pdb.Spec.Selector.MatchLabels, d.Spec.Selector.MatchLabels)
				case replicas == 1 && pdb != nil:
					t.Errorf("%s: one replica and a PodDisruptionBudget, which would block every node drain", where)
				}
			}

			// Who talks to whom.
			proj := o.configMaps[release0+"-switchyard-projector"].Data
			if proj["GATEWAY_METRICS_URL"] != "http://"+release0+"-switchyard-gateway-admin:8086/metrics" || o.services[release0+"-switchyard-gateway-admin"] == nil {
				t.Errorf("projector GATEWAY_METRICS_URL %q, want the gateway-admin Service", proj["GATEWAY_METRICS_URL"])
			}
			if got := o.configMaps[release0+"-switchyard-alerts"].Data["SWITCHYARD_OPS_URL"]; got != "http://"+release0+"-switchyard-projector:8090" || o.services[release0+"-switchyard-projector"] == nil {
				t.Errorf("alerts SWITCHYARD_OPS_URL %q, want the projector Service", got)
			}
			for svc, target := range map[string]string{"gateway": "http", "gateway-admin": "admin", "projector": "ops"} {
				s := o.services[release0+"-switchyard-"+svc]
				if s == nil || len(s.Spec.Ports) != 1 || s.Spec.Ports[0].TargetPort.String() != target {
					t.Errorf("service %s: %+v, want one port to the pods' %s port", svc, s, target)
					continue
				}
				comp := strings.TrimSuffix(svc, "-admin")
				if !maps.Equal(s.Spec.Selector, o.deployments[comp].Spec.Selector.MatchLabels) {
					t.Errorf("service %s selects %v, not the %s pods", svc, s.Spec.Selector, comp)
				}
			}
			if ing := o.ingresses[release0+"-switchyard-gateway"]; bundled != (ing == nil) {
				t.Errorf("ingress %v with ingress.enabled=%t", ing, !bundled)
			} else if ing != nil {
				paths := ing.Spec.Rules[0].HTTP.Paths
				if len(paths) != 1 || paths[0].Path != "/webhooks/stripe" || paths[0].Backend.Service.Name != release0+"-switchyard-gateway" || len(ing.Spec.TLS) != 1 {
					t.Errorf("ingress %+v, want the webhook path alone, to the gateway, over TLS", ing.Spec)
				}
			}

			// The NATS users for the bundled cluster: the generated file.
			auth := o.configMaps["switchyard-nats-auth"]
			if bundled {
				want, err := os.ReadFile(natsAuth)
				if err != nil {
					t.Fatal(err)
				}
				if auth == nil || auth.Data["nats-auth.conf"] != string(want) {
					t.Errorf("ConfigMap switchyard-nats-auth does not carry files/nats-auth.conf")
				}
			} else if auth != nil {
				t.Error("the NATS users ConfigMap is rendered without the bundled NATS")
			}

			// migrate: a hook Job, with the stream settings.
			job := o.jobs[release0+"-switchyard-migrate"]
			if job == nil || len(hooks) != 1 || hooks[0].Kind != "Job" {
				t.Fatalf("migrate: job %v, hooks %d; want the one hook Job", job, len(hooks))
			}
			if got := job.Annotations["helm.sh/hook"]; got != tc.hook {
				t.Errorf("migrate hook %q, want %q", got, tc.hook)
			}
			pod := job.Spec.Template.Spec
			c := pod.Containers[0]
			if !slices.Equal(c.Args, []string{"migrate"}) || c.Image != "registry.example.com/switchyard-switchyard:1.4.2" || pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("migrate: args %q, image %s, restart %s; want the CLI's migrate, once", c.Args, c.Image, pod.RestartPolicy)
			}
			env := map[string]string{}
			checkEnv(t, "migrate", doc["switchyard migrate"], env, c, pod, "switchyard")
			if env["NATS_STREAM_REPLICAS"] != "3" || env["NATS_URL"] != tc.natsURL || env["NATS_USER"] != "migrate" {
				t.Errorf("migrate: NATS_STREAM_REPLICAS %q, NATS_URL %q, user %q; want 3, %q, migrate", env["NATS_STREAM_REPLICAS"], env["NATS_URL"], env["NATS_USER"], tc.natsURL)
			}
			if sc := c.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("migrate: securityContext %+v, resources %+v", sc, c.Resources)
			}

			// Stream settings belong to migrate alone.
			for name, cm := range o.configMaps {
				for _, v := range []string{"NATS_STREAM_REPLICAS", "NATS_DUPLICATE_WINDOW", "NATS_STREAM_MAX_AGE", "NATS_DLQ_MAX_MB"} {
					if _, ok := cm.Data[v]; ok {
						t.Errorf("ConfigMap %s sets %s: stream settings belong to migrate alone", name, v)
					}
				}
			}
		})
	}
}

// renderedEnvPath holds each component's environment as the chart renders
// it with requiredValues: services/switchyard/deploy (TestHelmEnvConfigContracts)
// starts each component's configuration loader on it, which this module,
// outside go.work, cannot import.
const renderedEnvPath = "../../services/switchyard/deploy/helm/rendered-env.json"

var update = flag.Bool("update", false, "rewrite "+renderedEnvPath)

// TestChartRenderedEnv writes (-update) or compares renderedEnvPath: every
// component's variables, its ConfigMap's and its container's, and migrate's.
func TestChartRenderedEnv(t *testing.T) {
	t.Parallel()
	o := decode(t, func() []string { m, _ := render(t, requiredValues()); return m }())
	out := map[string]map[string]string{}
	for name, d := range o.deployments {
		env := maps.Clone(o.configMaps[fmt.Sprintf("%s-switchyard-%s", release0, name)].Data)
		for _, e := range d.Spec.Template.Spec.Containers[0].Env {
			env[e.Name] = e.Value
		}
		out[name] = env
	}
	job := o.jobs[release0+"-switchyard-migrate"]
	if job == nil {
		t.Fatal("no migrate Job")
	}
	env := map[string]string{}
	for _, e := range job.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	out["migrate"] = env
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	if *update {
		if err := os.WriteFile(renderedEnvPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(renderedEnvPath)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b) {
		t.Errorf("%s differs from what the chart renders: run `GOWORK=off go -C scripts/helm test -run TestChartRenderedEnv -update` and commit it (services/switchyard/deploy checks it against the config loaders)", renderedEnvPath)
	}
}

// TestChartHasNoSecrets: neither values.yaml nor a template carries a
// credential; rendering with every secret-looking value an operator might
// misplace into values leaves none of them in a manifest except where the
// operator put them on purpose (nowhere, here).
func TestChartHasNoSecrets(t *testing.T) {
	t.Parallel()
	manifests, _ := render(t, requiredValues())
	all := strings.Join(manifests, "\n---\n")
	for _, pattern := range []string{`whsec_`, `sk_live_`, `pat-`, `password: [^<$]`, `hooks\.slack\.com/services`, `postgres://[^@\s]*:[^@\s]*@`} {
		if regexp.MustCompile(pattern).MatchString(all) {
			t.Errorf("a rendered manifest matches %q: a credential in the chart", pattern)
		}
	}
	values, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Every password-ish value in values.yaml is a NATS config variable or a
	// secretKeyRef, never a literal.
	for _, m := range regexp.MustCompile(`(?m)^\s*password:\s*(.+)$`).FindAllSubmatch(values, -1) {
		if !bytes.HasPrefix(m[1], []byte("<< $")) {
			t.Errorf("values.yaml: password %q, want a variable from the Secret", m[1])
		}
	}
	var v map[string]any
	if err := yaml.Unmarshal(values, &v); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(v)
	if bytes.Contains(raw, []byte("whsec_")) {
		t.Error("values.yaml holds a Stripe secret")
	}
}
