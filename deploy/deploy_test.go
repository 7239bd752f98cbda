// Package deploy holds ferry's deployment material (Dockerfile, Kubernetes manifests,
// Grafana dashboard). No container engine or cluster runs here, so this test checks what
// can be checked without one: every manifest decodes strictly into the Kubernetes API
// types, every ferry subcommand, flag and FERRY_* variable a manifest uses exists, the
// secrets' example files load with the server's own loaders, the probes and TLS follow the
// rules of docs/security.md, and every metric the dashboard queries is one ferry or the
// Temporal SDK emits.
package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/ferryhq/ferry/internal/cli"
	"github.com/ferryhq/ferry/server"
	"github.com/ferryhq/ferry/workflows"
)

// object is one decoded manifest.
type object struct {
	file string
	kind string
	obj  any
}

// decode reads every document of every deploy/k8s file strictly: a misspelt or misplaced
// field is an error, as `kubectl apply --validate=strict` would make it.
func decode(t *testing.T) []object {
	t.Helper()
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in deploy/k8s: %v", err)
	}
	var out []object
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range regexp.MustCompile(`(?m)^---\s*$`).Split(string(b), -1) {
			if strings.TrimSpace(stripComments(doc)) == "" {
				continue
			}
			var meta struct {
				APIVersion string `json:"apiVersion"`
				Kind       string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i+1, err)
			}
			var obj any
			switch meta.APIVersion + " " + meta.Kind {
			case "v1 Namespace":
				obj = &corev1.Namespace{}
			case "v1 ConfigMap":
				obj = &corev1.ConfigMap{}
			case "v1 Secret":
				obj = &corev1.Secret{}
			case "v1 ServiceAccount":
				obj = &corev1.ServiceAccount{}
			case "v1 Service":
				obj = &corev1.Service{}
			case "apps/v1 Deployment":
				obj = &appsv1.Deployment{}
			case "autoscaling/v2 HorizontalPodAutoscaler":
				obj = &autoscalingv2.HorizontalPodAutoscaler{}
			case "batch/v1 Job":
				obj = &batchv1.Job{}
			default:
				t.Fatalf("%s document %d: %s %s is not a kind this test knows; add it", f, i+1, meta.APIVersion, meta.Kind)
			}
			if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i+1, meta.Kind, err)
			}
			out = append(out, object{file: f, kind: meta.Kind, obj: obj})
		}
	}
	return out
}

func stripComments(doc string) string {
	var keep []string
	for _, l := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}

func TestManifestsDecodeStrictly(t *testing.T) {
	objs := decode(t)
	kinds := map[string]int{}
	for _, o := range objs {
		kinds[o.kind]++
	}
	for _, want := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "Job", "Secret", "ConfigMap", "ServiceAccount"} {
		if kinds[want] == 0 {
			t.Errorf("no %s among the manifests", want)
		}
	}
	if kinds["Deployment"] != 2 {
		t.Errorf("%d Deployments, want the server's and the worker's", kinds["Deployment"])
	}
}

// Every container runs `ferry <subcommand>` with flags and FERRY_* variables that exist;
// each runs as non-root with a read-only root and no capabilities; long-running ones have
// both probes on the right paths.
func TestManifestsUseRealFlagsAndRules(t *testing.T) {
	objs := decode(t)
	root := cli.Command()
	config := map[string]string{} // the ConfigMap's variables, given to containers by envFrom
	secrets := map[string]*corev1.Secret{}
	for _, o := range objs {
		switch v := o.obj.(type) {
		case *corev1.ConfigMap:
			for k, val := range v.Data {
				config[k] = val
			}
		case *corev1.Secret:
			secrets[v.Name] = v
		}
	}
	pods := 0
	for _, o := range objs {
		var spec *corev1.PodSpec
		switch v := o.obj.(type) {
		case *appsv1.Deployment:
			spec = &v.Spec.Template.Spec
			if v.Spec.Selector == nil || v.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != v.Spec.Template.Labels["app.kubernetes.io/name"] {
				t.Errorf("%s: the selector does not match the pod template's labels", v.Name)
			}
		case *batchv1.Job:
			spec = &v.Spec.Template.Spec
		default:
			continue
		}
		pods++
		if sc := spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
			t.Errorf("%s: the pod must run as a non-root user", o.file)
		}
		for _, c := range spec.Containers {
			where := o.file + " container " + c.Name
			if len(c.Args) == 0 {
				t.Fatalf("%s: no args (the image's entrypoint is ferry; args name the subcommand)", where)
			}
			cmd, _, err := root.Find(c.Args[:1])
			if err != nil || cmd == root {
				t.Fatalf("%s: ferry has no subcommand %q", where, c.Args[0])
			}
			flags := flagsOf(cmd)
			for _, a := range c.Args[1:] {
				name, _, _ := strings.Cut(strings.TrimPrefix(a, "--"), "=")
				if !strings.HasPrefix(a, "--") || flags[name] == nil {
					t.Errorf("%s: ferry %s has no flag %q", where, cmd.Name(), a)
				}
			}
			vars := envOf(cmd)
			used := map[string]bool{}
			for k := range config {
				used[k] = true
			}
			for _, e := range c.Env {
				used[e.Name] = true
				if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && (ref.SecretKeyRef.Optional == nil || !*ref.SecretKeyRef.Optional) {
					if s := secrets[ref.SecretKeyRef.Name]; s == nil || s.StringData[ref.SecretKeyRef.Key] == "" {
						t.Errorf("%s: %s reads secret %s key %s, which no manifest defines", where, e.Name, ref.SecretKeyRef.Name, ref.SecretKeyRef.Key)
					}
				}
			}
			for k := range used {
				if strings.HasPrefix(k, "FERRY_") && !vars[k] {
					t.Errorf("%s: ferry %s reads no variable %s", where, cmd.Name(), k)
				}
				if !strings.HasPrefix(k, "FERRY_") && !strings.HasPrefix(k, "OTEL_") {
					t.Errorf("%s: %s is neither a FERRY_* nor an OTEL_* variable", where, k)
				}
			}
			sc := c.SecurityContext
			if sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
				sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
				t.Errorf("%s: wants readOnlyRootFilesystem, no privilege escalation, capabilities drop ALL", where)
			}
			if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
				t.Errorf("%s: wants a CPU request (the HPA scales on it) and a memory limit", where)
			}
			if cmd.Name() == "server" || cmd.Name() == "worker" {
				checkProbes(t, where, c)
			}
			if cmd.Name() == "server" {
				checkServerTLS(t, where, c, spec)
			}
		}
	}
	if pods != 3 {
		t.Errorf("%d pod templates, want server, worker and setup", pods)
	}
}

// flagsOf is a command's flags with the persistent ones it inherits.
func flagsOf(cmd *cobra.Command) map[string]*pflag.Flag {
	out := map[string]*pflag.Flag{}
	add := func(f *pflag.Flag) { out[f.Name] = f }
	cmd.Flags().VisitAll(add)
	cmd.InheritedFlags().VisitAll(add)
	return out
}

// envOf is the FERRY_* variables a command reads: each flag names its variable in its help,
// as "(FERRY_X)", the convention every flag follows (internal/cli's tests read it too).
func envOf(cmd *cobra.Command) map[string]bool {
	out := map[string]bool{}
	re := regexp.MustCompile(`\bFERRY_[A-Z0-9_]+\b`)
	for _, f := range flagsOf(cmd) {
		for _, v := range re.FindAllString(f.Usage, -1) {
			out[v] = true
		}
	}
	return out
}

func checkProbes(t *testing.T, where string, c corev1.Container) {
	t.Helper()
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("%s: liveness must be GET /healthz (it never asks Temporal, so an outage restarts nothing)", where)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("%s: readiness must be GET /readyz", where)
	}
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe} {
		if p == nil || p.HTTPGet == nil {
			continue
		}
		found := false
		for _, port := range c.Ports {
			found = found || port.Name == p.HTTPGet.Port.String()
		}
		if !found {
			t.Errorf("%s: a probe names port %q, which the container does not declare", where, p.HTTPGet.Port.String())
		}
	}
}

// The API carries bearer tokens: off loopback it serves TLS (ferry server refuses
// plaintext there without --insecure), from a mounted Secret, and its probes speak HTTPS.
func checkServerTLS(t *testing.T, where string, c corev1.Container, spec *corev1.PodSpec) {
	t.Helper()
	args := strings.Join(c.Args, " ")
	if !strings.Contains(args, "--tls-cert=") || !strings.Contains(args, "--tls-key=") || strings.Contains(args, "--insecure") {
		t.Errorf("%s: the API must serve TLS (--tls-cert, --tls-key, never --insecure)", where)
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet != nil && c.ReadinessProbe.HTTPGet.Scheme != corev1.URISchemeHTTPS {
		t.Errorf("%s: the probes must use HTTPS, as the API serves only TLS", where)
	}
	mounted := map[string]string{} // mount path -> secret name
	for _, m := range c.VolumeMounts {
		for _, v := range spec.Volumes {
			if v.Name == m.Name && v.Secret != nil {
				mounted[m.MountPath] = v.Secret.SecretName
			}
		}
	}
	for _, a := range c.Args {
		if _, file, ok := strings.Cut(a, "="); ok && strings.HasPrefix(file, "/etc/ferry/") {
			if mounted[filepath.Dir(file)] == "" {
				t.Errorf("%s: %s is not in a mounted Secret", where, a)
			}
		}
	}
}

// The Secret's example token file and policy load with the server's own loaders, so a team
// that edits them from the example starts from something ferry accepts.
func TestSecretExamplesLoad(t *testing.T) {
	dir := t.TempDir()
	for _, o := range decode(t) {
		s, ok := o.obj.(*corev1.Secret)
		if !ok || s.Name != "ferry-server" {
			continue
		}
		for _, k := range []string{"tokens.json", "policy.json"} {
			if err := os.WriteFile(filepath.Join(dir, k), []byte(s.StringData[k]), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := server.LoadTokens(filepath.Join(dir, "tokens.json")); err != nil {
			t.Errorf("tokens.json in the ferry-server Secret: %v", err)
		}
		pol, err := server.LoadPolicy(filepath.Join(dir, "policy.json"))
		if err != nil {
			t.Errorf("policy.json in the ferry-server Secret: %v", err)
		}
		def := server.DefaultPolicy()
		if pol.DNSApproveBy != def.DNSApproveBy || pol.PrimaryApproval != def.PrimaryApproval || pol.ShareApproval != def.ShareApproval {
			t.Errorf("policy.json %+v is said to be the default %+v written out", pol, def)
		}
		return
	}
	t.Fatal("no ferry-server Secret")
}

// The Dockerfile and `make build` stamp the version through the same variable, and the
// image runs as the non-root user.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	const stamp = "-X github.com/ferryhq/ferry/internal/cli.Version="
	if !bytes.Contains(b, []byte(stamp)) || !bytes.Contains(mk, []byte(stamp)) {
		t.Errorf("the Dockerfile and the Makefile must both set %s", stamp)
	}
	_ = cli.Version // the variable the stamp names exists (this would not compile otherwise)
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "USER 65532:65532", "COPY --from=build", "./cmd/ferry"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("the Dockerfile lacks %q", want)
		}
	}
	if n := bytes.Count(b, []byte("\nFROM ")); n != 2 {
		t.Errorf("the Dockerfile has %d stages, want a builder and a runtime", n)
	}
}

// Every metric a dashboard panel queries is ferry's (workflows.Metric*) or the Temporal
// SDK's (its declared names, read from the pinned SDK's source), with the suffixes the
// Prometheus exporter adds (_seconds for timers, _bucket/_sum/_count for histograms).
func TestDashboardQueriesRealMetrics(t *testing.T) {
	b, err := os.ReadFile("grafana/ferry.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&dash); err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, m := range []string{workflows.MetricMigrationsStarted, workflows.MetricMigrationsEnded, workflows.MetricGateEvaluations,
		workflows.MetricRollbacks, workflows.MetricRollbackDuration, workflows.MetricApprovalWait, workflows.MetricRollbackReaction,
		workflows.MetricStepsEnded, workflows.MetricStepDuration} {
		known[m] = true
	}
	for _, m := range sdkMetrics(t) {
		known[m] = true
	}
	re := regexp.MustCompile(`\b(ferry|temporal)_[a-z_]+\b`)
	seen := map[string]bool{}
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q queries nothing", p.Title)
		}
		for _, tg := range p.Targets {
			for _, name := range re.FindAllString(tg.Expr, -1) {
				base := name
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				base = strings.TrimSuffix(base, "_seconds")
				if !known[base] {
					t.Errorf("panel %q queries %s, which neither ferry nor the Temporal SDK emits", p.Title, name)
				}
				seen[base] = true
			}
		}
	}
	for _, m := range []string{workflows.MetricMigrationsStarted, workflows.MetricMigrationsEnded, workflows.MetricRollbacks, workflows.MetricRollbackReaction, workflows.MetricApprovalWait} {
		if !seen[m] {
			t.Errorf("no panel shows %s", m)
		}
	}
}

// sdkMetrics reads the metric names the pinned Temporal SDK declares (an internal package,
// so from its source in the module cache).
func sdkMetrics(t *testing.T) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "go.temporal.io/sdk").Output()
	if err != nil {
		t.Fatalf("locate the Temporal SDK module: %v", err)
	}
	src, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "internal/common/metrics/constants.go"))
	if err != nil {
		t.Fatal(err)
	}
	// Lines of the form: Name = TemporalMetricsPrefix + "workflow_completed" (or another
	// constant + "_suffix", as temporal_request_failure is built).
	consts := map[string]string{"TemporalMetricsPrefix": "temporal_"}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^\s*(\w+)\s*=\s*(\w+)\s*\+\s*"([a-z_]+)"`).FindAllStringSubmatch(string(src), -1) {
		prefix, ok := consts[m[2]]
		if !ok {
			continue
		}
		consts[m[1]] = prefix + m[3]
		names = append(names, prefix+m[3])
	}
	if len(names) < 20 {
		t.Fatalf("read %d metric names from the SDK's source; its layout changed", len(names))
	}
	return names
}
