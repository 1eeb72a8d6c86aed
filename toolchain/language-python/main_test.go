package main

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/types/known/structpb"

	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
)

// The Python SDK parses these two variables itself (pulumi.runtime.config), so their shape is the contract.
func TestConfigEnv(t *testing.T) {
	env, err := configEnv(map[string]string{"proj:password": "s3cr3t", "docker:host": "unix:///x.sock"},
		[]string{"proj:password"})
	if err != nil {
		t.Fatal(err)
	}
	if len(env) != 2 {
		t.Fatalf("want PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS, got %q", env)
	}
	var config map[string]string
	if err := json.Unmarshal([]byte(env[0][len("PULUMI_CONFIG="):]), &config); err != nil {
		t.Fatal(err)
	}
	if config["proj:password"] != "s3cr3t" || config["docker:host"] != "unix:///x.sock" {
		t.Fatalf("unexpected PULUMI_CONFIG %v", config)
	}
	if env[1] != `PULUMI_CONFIG_SECRET_KEYS=["proj:password"]` {
		t.Fatalf("unexpected %q", env[1])
	}

	empty, err := configEnv(nil, nil)
	if err != nil || len(empty) != 0 {
		t.Fatalf("no config should set nothing, got %q, %v", empty, err)
	}
}

func TestResolveToolchainOptions(t *testing.T) {
	dir := t.TempDir()
	info := func(opts map[string]any) *pulumirpc.ProgramInfo {
		s, err := structpb.NewStruct(opts)
		if err != nil {
			t.Fatal(err)
		}
		return &pulumirpc.ProgramInfo{RootDirectory: dir, ProgramDirectory: dir, EntryPoint: ".", Options: s}
	}

	tc, err := resolveToolchain(info(map[string]any{"toolchain": "pip", "virtualenv": ".venv"}))
	if err != nil {
		t.Fatal(err)
	}
	venv, err := tc.VirtualEnvPath(t.Context())
	if err != nil || venv != dir+"/.venv" {
		t.Fatalf("virtualenv should resolve against the project root, got %q, %v", venv, err)
	}
	// A venv declared in Pulumi.yaml but missing must be reported (Run turns this into a clear message).
	if err := tc.ValidateVenv(t.Context()); err == nil {
		t.Fatal("missing virtualenv not reported")
	}

	if _, err := resolveToolchain(info(map[string]any{"toolchain": "conda"})); err == nil {
		t.Fatal("unknown toolchain accepted")
	}
	if _, err := resolveToolchain(nil); err == nil {
		t.Fatal("missing program info accepted")
	}
}

// About is the update's metadata: the program's interpreter and its version, from one interpreter start
// (not the toolchain's About, which also imports pip for a version this response does not carry).
func TestAboutReportsTheInterpreter(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Fatal("python3 is needed on PATH for this test")
	}
	dir := t.TempDir()
	opts, err := structpb.NewStruct(map[string]any{"toolchain": "pip"})
	if err != nil {
		t.Fatal(err)
	}
	info := &pulumirpc.ProgramInfo{RootDirectory: dir, ProgramDirectory: dir, EntryPoint: ".", Options: opts}
	resp, err := (&pythonHost{}).About(t.Context(), &pulumirpc.AboutRequest{Info: info})
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(resp.Executable) || strings.Contains(resp.Executable, "\n") {
		t.Fatalf("executable should be one absolute path, got %q", resp.Executable)
	}
	if !strings.HasPrefix(resp.Version, "3.") || strings.Count(resp.Version, ".") != 2 {
		t.Fatalf("version should be Python's x.y.z, got %q", resp.Version)
	}
}
