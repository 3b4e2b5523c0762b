package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/residual-go/residual/core/backendtest"
	"github.com/residual-go/residual/core/weights"
	"github.com/residual-go/residual/wasm/worker/budget"
)

// TestConfigGenerator writes the configurations of a three-stage split and
// checks what wrangler will read: the chain of Service Bindings, private
// stages, each stage's assets holding only its shards, the secrets.
func TestConfigGenerator(t *testing.T) {
	model := backendtest.SmallResNet(5)
	model.ShardSize = 8 << 10
	dir := t.TempDir()
	if err := model.WriteDir(dir); err != nil {
		t.Fatal(err)
	}
	m, err := weights.ReadManifest(os.DirFS(dir))
	if err != nil {
		t.Fatal(err)
	}
	whole, err := budget.EstimateStage(m, 0, len(m.Ops), 0, true, budget.Default)
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	o := configOptions{Model: dir, Name: "small", Worker: "rn", Out: out, Main: filepath.Join(out, "w.mjs"),
		Budget: whole.Total - 1, Secrets: "deploy", APIToken: "tok", Origins: "https://a.example", RateLimit: 30, RatePer: 10, RateNS: "7"}
	plan, err := writeConfigs(o)
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Stages) < 2 {
		t.Fatalf("%d stages for a budget under the whole model's cost", len(plan.Stages))
	}
	var key string
	for i, sp := range plan.Stages {
		raw, err := os.ReadFile(filepath.Join(out, sp.Config))
		if err != nil {
			t.Fatal(err)
		}
		body := raw[bytes.IndexByte(raw, '{'):] // after the comment lines
		var cfg map[string]any
		if err := json.Unmarshal(body, &cfg); err != nil {
			t.Fatalf("%s: %v", sp.Config, err)
		}
		vars := cfg["vars"].(map[string]any)
		if cfg["main"] != "w.mjs" || vars["STAGE"] != fmt.Sprint(i) || vars["FIRST"] != fmt.Sprint(sp.Estimate.First) || vars["MODEL"] != "small" {
			t.Errorf("%s: %s", sp.Config, body)
		}
		if _, ok := vars["STAGE_KEY"]; ok {
			t.Errorf("%s: the stage key is a variable in a deploy configuration", sp.Config)
		}
		svc, _ := cfg["services"].([]any)
		if i+1 < len(plan.Stages) {
			if len(svc) != 1 || svc[0].(map[string]any)["service"] != plan.Stages[i+1].Worker {
				t.Errorf("%s: services %v", sp.Config, svc)
			}
		} else if svc != nil {
			t.Errorf("the last stage has a binding: %v", svc)
		}
		if (i > 0) != (cfg["workers_dev"] == false) {
			t.Errorf("%s: workers_dev %v", sp.Config, cfg["workers_dev"])
		}
		if i == 0 && (vars["ALLOWED_ORIGINS"] != "https://a.example" || cfg["ratelimits"] == nil || vars["RATE_LIMIT_PERIOD"] != "10") {
			t.Errorf("front: %s", body)
		}
		files, err := os.ReadDir(filepath.Join(out, fmt.Sprintf("assets-%d", i), "models", "small"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) != 1+len(sp.Shards) {
			t.Errorf("%s: %d files for %d shards", sp.Config, len(files), len(sp.Shards))
		}
		if i == 0 && len(sp.Shards) >= len(m.Shards) {
			t.Errorf("the front's assets hold all %d shards", len(m.Shards))
		}
		var sec map[string]string
		b, err := os.ReadFile(filepath.Join(out, fmt.Sprintf("secrets-%d.json", i)))
		if err != nil || json.Unmarshal(b, &sec) != nil || len(sec["STAGE_KEY"]) != 64 || (i == 0) != (sec["API_TOKEN"] == "tok") {
			t.Errorf("secrets-%d.json: %s %v", i, b, err)
		}
		if key != "" && sec["STAGE_KEY"] != key {
			t.Error("stages with different keys")
		}
		key = sec["STAGE_KEY"]
		if st, _ := os.Stat(filepath.Join(out, fmt.Sprintf("secrets-%d.json", i))); st.Mode().Perm() != 0o600 {
			t.Errorf("secrets-%d.json is %v", i, st.Mode())
		}
	}
	// Regenerating keeps the key, so that a redeploy does not break the
	// stages already running.
	if _, err := writeConfigs(o); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(filepath.Join(out, "secrets-1.json"))
	if !strings.Contains(string(b), key) {
		t.Error("the stage key changed on regeneration")
	}
}
