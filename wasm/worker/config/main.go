// Command config writes the Cloudflare Worker's stage configurations: `go
// run ./wasm/worker/config -model DIR -out OUT` splits the converted model in
// DIR into stages (budget.Plan) and writes, for each, a wrangler
// configuration (OUT/stage-K.jsonc, K = 0 the front), the static assets it
// reads its slice from (the front: the site given with -site, else
// OUT/assets-0; the others: OUT/assets-K, holding the manifest and only the
// shards of their slice, hard-linked), and OUT/plan.json (the split, each
// stage's estimate, its CPU limit). Every stage runs the same wasm binary;
// its op range comes from its variables.
//
// make worker-config runs it as js/wasm under node, the target the stages
// run on, so that the plan's memory figures are the stages' own to the
// byte (the simd GEMM's workspace, part of the scratch, depends on the
// vector width: 4 MB more in wasm than on an AVX-512 host). Run natively,
// the plan may be a little short; each stage checks its estimate again
// when it loads.
//
// Secrets: -secrets dev puts a fresh random STAGE_KEY (and -api-token) in
// every configuration's vars, for wrangler dev; -secrets deploy writes
// OUT/secrets-K.json (mode 0600) for `wrangler deploy --secrets-file`,
// reusing the STAGE_KEY of an earlier run, so that redeploying does not
// break the stages already running.
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/residual-go/residual/core"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// compatibilityDate is the Workers runtime version the stages are written for.
const compatibilityDate = "2026-11-01"

// configOptions are the generator's flags.
type configOptions struct {
	Model     string // converted model directory
	Name      string // its name under models/ (default: the directory's base name)
	Worker    string // the front Worker's name; stage K is Worker-stage-K
	Out       string
	Main      string // the entry module (dist/worker/worker.mjs)
	Site      string // static site for the front (holds models/Name/), or ""
	Budget    int64
	Secrets   string // "dev", "deploy" or "none"
	APIToken  string
	Origins   string
	RateLimit int // requests per RatePeriod per client; 0: no rate limit
	RatePer   int // 10 or 60 seconds (the binding's choices)
	RateNS    string
	Vars      []string // extra KEY=VALUE for every stage
}

// stagePlan is plan.json's entry for one stage.
type stagePlan struct {
	Worker   string          `json:"worker"`
	Config   string          `json:"config"`
	Assets   string          `json:"assets"`
	FirstOp  string          `json:"first_op"`
	LastOp   string          `json:"last_op"`
	Input    core.Boundary   `json:"input"`
	Output   core.Boundary   `json:"output"`
	Shards   []string        `json:"shards"`
	MACs     int64           `json:"macs"`   // multiply-adds per crop
	CPUMs    int64           `json:"cpu_ms"` // limits.cpu_ms
	Estimate budget.Estimate `json:"estimate"`
}

// planFile is plan.json.
type planFile struct {
	Model  string      `json:"model"`
	Name   string      `json:"name"`
	Budget int64       `json:"budget"`
	Digest string      `json:"manifest_sha256"`
	Stages []stagePlan `json:"stages"`
}

func main() {
	if err := configMain(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "config:", err)
		os.Exit(1)
	}
}

func configMain(args []string) error {
	var o configOptions
	fl := flag.NewFlagSet("config", flag.ContinueOnError)
	fl.StringVar(&o.Model, "model", "", "converted model directory (manifest.json + shards)")
	fl.StringVar(&o.Name, "name", "", "the model's name under models/ in the assets (default: the directory's base name)")
	fl.StringVar(&o.Worker, "worker", "residual", "the front Worker's name; stage K is named NAME-stage-K")
	fl.StringVar(&o.Out, "out", "", "output directory")
	fl.StringVar(&o.Main, "main", "dist/worker/worker.mjs", "the entry module every stage runs")
	fl.StringVar(&o.Site, "site", "", "static site the front serves (must hold models/NAME/); empty: the front serves only the API")
	fl.Int64Var(&o.Budget, "budget", budget.DefaultStage, "memory budget of a stage in bytes")
	fl.StringVar(&o.Secrets, "secrets", "none", "dev: STAGE_KEY (and -api-token) in the vars; deploy: secrets-K.json files for wrangler deploy --secrets-file; none")
	fl.StringVar(&o.APIToken, "api-token", os.Getenv("RESIDUAL_API_TOKEN"), "API token the front requires (default $RESIDUAL_API_TOKEN; empty: none)")
	fl.StringVar(&o.Origins, "origins", "", "comma-separated origins allowed by CORS (empty: any)")
	fl.IntVar(&o.RateLimit, "rate-limit", 0, "requests per -rate-period per client (0: no rate limit)")
	fl.IntVar(&o.RatePer, "rate-period", 60, "the rate limit's period in seconds: 10 or 60")
	fl.StringVar(&o.RateNS, "rate-namespace", "1001", "the rate limit's namespace_id (a positive integer unique in the account)")
	vars := fl.String("vars", "", "extra variables for every stage: KEY=VALUE,KEY=VALUE")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if *vars != "" {
		o.Vars = strings.Split(*vars, ",")
	}
	if o.Model == "" || o.Out == "" {
		return errors.New("config: -model and -out are required")
	}
	p, err := writeConfigs(o)
	if err != nil {
		return err
	}
	for i, s := range p.Stages {
		e := s.Estimate
		fmt.Printf("stage %d %-28s ops [%d, %d) %s .. %s: weights %s, estimate %s, %.2f GMAC/crop, cpu_ms %d\n",
			i, s.Worker, e.First, e.End, s.FirstOp, s.LastOp, budget.MB(e.Weights), budget.MB(e.Total), float64(s.MACs)/1e9, s.CPUMs)
	}
	return nil
}

// writeConfigs plans the stages and writes every file; it returns the plan.
func writeConfigs(o configOptions) (*planFile, error) {
	if o.Name == "" {
		o.Name = filepath.Base(filepath.Clean(o.Model))
	}
	if o.RatePer != 10 && o.RatePer != 60 {
		return nil, fmt.Errorf("config: -rate-period %d: Cloudflare's rate limiting takes 10 or 60 seconds", o.RatePer)
	}
	if o.Secrets != "dev" && o.Secrets != "deploy" && o.Secrets != "none" {
		return nil, fmt.Errorf("config: -secrets %q: dev, deploy or none", o.Secrets)
	}
	raw, err := os.ReadFile(filepath.Join(o.Model, weights.ManifestFile))
	if err != nil {
		return nil, err
	}
	m, err := weights.ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	est, err := budget.Plan(m, o.Budget, true)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, err
	}
	plan := &planFile{Model: m.Model, Name: o.Name, Budget: o.Budget, Digest: manifestDigest(raw)}
	key, err := stageKey(o)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(est))
	for i := range est {
		names[i] = o.Worker
		if i > 0 {
			names[i] = fmt.Sprintf("%s-stage-%d", o.Worker, i)
		}
	}
	for i, e := range est {
		p, err := core.Compile(m, core.CompileOptions{First: e.First, End: e.End})
		if err != nil {
			return nil, err
		}
		sp := stagePlan{Worker: names[i], Config: fmt.Sprintf("stage-%d.jsonc", i), FirstOp: m.Ops[e.First].Name, LastOp: m.Ops[e.End-1].Name,
			MACs: programMACs(p), Estimate: e}
		in, out := p.Values[p.Input], p.Values[p.Output]
		sp.Input, sp.Output = core.Boundary{Blob: in.Blob, Shape: in.Shape}, core.Boundary{Blob: out.Blob, Shape: out.Shape}
		sp.CPUMs = cpuLimit(sp.MACs)
		shards := map[int]bool{}
		for _, t := range p.Tensors() {
			shards[t.Shard] = true
		}
		if i == 0 && m.Preprocess.MeanTensor != "" {
			for j := range m.Tensors {
				if m.Tensors[j].Name == m.Preprocess.MeanTensor {
					shards[m.Tensors[j].Shard] = true
				}
			}
		}
		for k := range shards {
			sp.Shards = append(sp.Shards, m.Shards[k].File)
		}
		sort.Strings(sp.Shards)

		// The assets: the front's site, or a directory of the slice's files.
		if i == 0 && o.Site != "" {
			have, err := os.ReadFile(filepath.Join(o.Site, "models", o.Name, weights.ManifestFile))
			if err != nil {
				return nil, fmt.Errorf("config: the site %s does not hold the model %s: %w (build it with make web)", o.Site, o.Name, err)
			}
			if string(have) != string(raw) {
				return nil, fmt.Errorf("config: %s/models/%s/manifest.json differs from %s's: rebuild the site (make web)", o.Site, o.Name, o.Model)
			}
			sp.Assets = o.Site
		} else {
			sp.Assets = filepath.Join(o.Out, fmt.Sprintf("assets-%d", i))
			if err := linkAssets(sp.Assets, o.Name, o.Model, sp.Shards); err != nil {
				return nil, err
			}
		}
		cfg, err := stageConfig(o, plan.Name, sp, i, len(est), names, key)
		if err != nil {
			return nil, err
		}
		if err := writeJSONC(filepath.Join(o.Out, sp.Config), cfg, i, len(est)); err != nil {
			return nil, err
		}
		if o.Secrets == "deploy" {
			secrets := map[string]string{}
			if len(est) > 1 {
				secrets["STAGE_KEY"] = key
			}
			if i == 0 && o.APIToken != "" {
				secrets["API_TOKEN"] = o.APIToken
			}
			b, _ := json.MarshalIndent(secrets, "", "  ")
			if err := os.WriteFile(filepath.Join(o.Out, fmt.Sprintf("secrets-%d.json", i)), append(b, '\n'), 0o600); err != nil {
				return nil, err
			}
		}
		plan.Stages = append(plan.Stages, sp)
	}
	b, err := json.MarshalIndent(plan, "", "  ")
	if err != nil {
		return nil, err
	}
	return plan, os.WriteFile(filepath.Join(o.Out, "plan.json"), append(b, '\n'), 0o644)
}

// stageConfig is the wrangler configuration of stage i of n.
func stageConfig(o configOptions, name string, sp stagePlan, i, n int, workers []string, key string) (map[string]any, error) {
	rel := func(path string) (string, error) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		out, err := filepath.Abs(o.Out)
		if err != nil {
			return "", err
		}
		return filepath.Rel(out, abs)
	}
	main, err := rel(o.Main)
	if err != nil {
		return nil, err
	}
	assets, err := rel(sp.Assets)
	if err != nil {
		return nil, err
	}
	e := sp.Estimate
	vars := map[string]string{
		// What the stage may use: the budget it was planned for. The front
		// admits a request when it fits in what its slice leaves of it.
		"MEMORY_BUDGET": strconv.FormatInt(o.Budget, 10),
		"MODEL":         name,
		"STAGE":         strconv.Itoa(i),
		"STAGES":        strconv.Itoa(n),
		"FIRST":         strconv.Itoa(e.First),
		"END":           strconv.Itoa(e.End),
		"WORKER":        workers[i],
	}
	if i+1 < n {
		vars["NEXT_NAME"] = workers[i+1]
	}
	if i == 0 {
		if o.Origins != "" {
			vars["ALLOWED_ORIGINS"] = o.Origins
		}
		if o.RateLimit > 0 {
			vars["RATE_LIMIT_PERIOD"] = strconv.Itoa(o.RatePer)
		}
	}
	if o.Secrets == "dev" {
		if n > 1 {
			vars["STAGE_KEY"] = key
		}
		if i == 0 && o.APIToken != "" {
			vars["API_TOKEN"] = o.APIToken
		}
	}
	for _, kv := range o.Vars {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("config: -vars %q: want KEY=VALUE", kv)
		}
		vars[k] = v
	}
	cfg := map[string]any{
		"name":               workers[i],
		"main":               filepath.ToSlash(main),
		"compatibility_date": compatibilityDate,
		"vars":               vars,
		"limits":             map[string]any{"cpu_ms": sp.CPUMs},
		"observability":      map[string]any{"enabled": false},
	}
	a := map[string]any{"directory": filepath.ToSlash(assets), "binding": "ASSETS", "run_worker_first": true}
	if i == 0 && o.Site != "" {
		// The page and the models are public; only the API runs the Worker.
		a["run_worker_first"] = []string{"/classify", "/healthz"}
	}
	cfg["assets"] = a
	if i > 0 {
		// No public route: a stage is reached only through the binding of
		// the stage before it (and refuses requests without the stage key).
		cfg["workers_dev"] = false
		cfg["preview_urls"] = false
	}
	if i+1 < n {
		cfg["services"] = []map[string]string{{"binding": "NEXT", "service": workers[i+1]}}
	}
	if i == 0 && o.RateLimit > 0 {
		cfg["ratelimits"] = []map[string]any{{"name": "RATE_LIMITER", "namespace_id": o.RateNS,
			"simple": map[string]int{"limit": o.RateLimit, "period": o.RatePer}}}
	}
	return cfg, nil
}

func writeJSONC(path string, cfg map[string]any, i, n int) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	role := "the front Worker: the public API, preprocessing and the first slice"
	if i > 0 {
		role = fmt.Sprintf("stage %d of %d, reached only through the Service Binding of stage %d", i, n-1, i-1)
	}
	head := fmt.Sprintf("// Generated by `go run ./wasm/worker/config` (wasm/worker/config/main.go): do not edit,\n// regenerate. Stage %d of the pipeline, %s.\n", i, role)
	return os.WriteFile(path, append([]byte(head), append(b, '\n')...), 0o644)
}

// linkAssets makes dir/models/name/ hold the manifest and the given shards
// of the model directory src, hard-linked (copied across file systems).
func linkAssets(dir, name, src string, shards []string) error {
	dst := filepath.Join(dir, "models", name)
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, f := range append([]string{weights.ManifestFile}, shards...) {
		from, to := filepath.Join(src, f), filepath.Join(dst, f)
		if err := os.Link(from, to); err == nil {
			continue
		}
		if err := copyFile(from, to); err != nil {
			return err
		}
	}
	return nil
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// stageKey returns the key the stages share: fresh for dev, else the one
// of an earlier deploy configuration in the output directory, if any.
func stageKey(o configOptions) (string, error) {
	if o.Secrets == "deploy" {
		if b, err := os.ReadFile(filepath.Join(o.Out, "secrets-0.json")); err == nil {
			var s map[string]string
			if json.Unmarshal(b, &s) == nil && len(s["STAGE_KEY"]) >= 32 {
				return s["STAGE_KEY"], nil
			}
		}
	}
	var k [32]byte
	if _, err := rand.Read(k[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(k[:]), nil
}

// programMACs counts the multiply-adds of one crop through p's
// convolutions and inner products (the rest is a rounding error).
func programMACs(p *core.Program) int64 {
	var n int64
	for _, s := range p.Steps {
		switch s.Kind {
		case weights.OpConv:
			c := s.Conv
			n += int64(c.OutC) * int64(c.OutH*c.OutW) * int64(c.InC/c.Group) * int64(c.KH*c.KW)
		case weights.OpInnerProduct:
			in := p.Values[s.In[0]].Size
			n += int64(in) * int64(p.Values[s.Out].Size)
		}
	}
	return n
}

// cpuLimit is a stage's limits.cpu_ms: ten crops at 1 GMAC/s (a tenth of
// what this machine's WebAssembly build did, about 10 GMAC/s: Cloudflare's
// cores may be slower, and a limit that stops a legitimate request is worse
// than one that lets a runaway one run longer), plus 10 s for the first
// request's load (fetch and sha256 of up to 90 MB), within the Paid plan's
// 30 s to 300 s. A limit only caps a request; what is billed is the CPU
// time used.
func cpuLimit(macs int64) int64 {
	ms := int64(math.Ceil(float64(budget.MaxBatch)*float64(macs)/1e9*1000)) + 10_000
	return min(max(ms, 30_000), 300_000)
}

// manifestDigest is the hex sha256 of manifest.json's bytes (what the stage
// messages carry).
func manifestDigest(raw []byte) string {
	d := sha256.Sum256(raw)
	return hex.EncodeToString(d[:])
}
