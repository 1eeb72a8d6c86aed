// pulumi-language-python is tfbox's own minimal Pulumi language host for Python.
//
// Why it exists: the upstream host (module github.com/pulumi/pulumi/sdk/python/cmd/pulumi-language-python/v3)
// is not served by the Go module mirror reachable from our build machines, and release tarballs are not
// reachable either. Everything it needs is in github.com/pulumi/pulumi/sdk/v3, which is served, so this host
// re-implements only what tfbox uses: running a program (preview/up/refresh/destroy), running Python policy
// packs (RunPlugin), installing dependencies and the informational calls. Everything else answers
// codes.Unimplemented, which the engine treats as "old host" and falls back where it can.
//
// Like upstream, the program itself runs through the `pulumi-language-python-exec` script shipped in the sdk/v3
// module (python/cmd/), which this binary expects next to itself (or on PATH).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/pulumi/pulumi/sdk/v3/go/common/util/cmdutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/logging"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	"github.com/pulumi/pulumi/sdk/v3/go/common/version"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"github.com/pulumi/pulumi/sdk/v3/python/toolchain"
)

// execScriptName is the Python shim that configures the SDK from argv and runs the user's program.
const execScriptName = "pulumi-language-python-exec"

// engineHealthInterval is how often the host asks the engine whether it is still there. Upstream hosts ask
// every 5 minutes, so a host whose CLI was killed (Ctrl-C twice, an OOM kill, a CI timeout) outlives it by up
// to 5 minutes, with the program it runs; a local health call every 2 s costs nothing measurable.
const engineHealthInterval = 2 * time.Second

// exitCodeUserActionable is what the exec script (and pulumi.policy) exit with after they already logged the
// error through the engine; we then ask the engine to bail without printing a second, less useful message.
const exitCodeUserActionable = 32

func main() {
	// The engine may prepend logging/tracing flags (see buildPluginArguments in sdk/v3) before the positional
	// engine address. Upstream hosts also accept -root/-virtualenv/-toolchain/-typechecker; accept and ignore
	// those too (options come from ProgramInfo) so a stray flag never stops the host from starting.
	tracing := flag.String("tracing", "", "Zipkin-compatible tracing endpoint (ignored)")
	// Some sdk/v3 dependencies (glog) register -logtostderr and -v on the default flag set already; define
	// only what is missing so the same command line parses either way. InitLogging reads them back by name.
	for _, name := range []string{"logtostderr", "logflow"} {
		if flag.Lookup(name) == nil {
			flag.Bool(name, false, "logging setting passed down by the engine")
		}
	}
	if flag.Lookup("v") == nil {
		flag.Int("v", 0, "log verbosity")
	}
	for _, name := range []string{"root", "virtualenv", "toolchain", "typechecker"} {
		flag.String(name, "", "ignored: read from the program's runtime options instead")
	}
	flag.Parse()
	logging.InitLogging(false, 0, flag.Lookup("logflow").Value.String() == "true")

	engineAddress := ""
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
	}

	execScript, err := findExecScript()
	if err != nil {
		cmdutil.Exit(err)
	}

	// Cancelled when the engine stops answering: the server stops, and a running program is killed with it.
	ctx, cancel := context.WithCancel(context.Background())
	stop := make(chan bool)
	go func() {
		<-ctx.Done()
		close(stop)
		// GracefulStop waits for running calls; the program was killed, give them a moment, then go.
		time.Sleep(10 * time.Second)
		os.Exit(1)
	}()
	host := &pythonHost{execScript: execScript, tracing: *tracing, ctx: ctx, cancel: cancel}
	host.setEngineAddress(engineAddress)
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: stop,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, host)
			return nil
		},
	})
	if err != nil {
		cmdutil.Exit(fmt.Errorf("could not start language host RPC server: %w", err))
	}

	// Plugin start-up protocol: the first line on stdout is the port the engine dials.
	fmt.Printf("%d\n", handle.Port)

	if err := <-handle.Done; err != nil {
		cmdutil.Exit(fmt.Errorf("language host RPC stopped serving: %w", err))
	}
}

// findExecScript looks for the exec shim next to this binary first (how ensure.sh lays out its bin dir, and
// how release tarballs do it), then on PATH.
func findExecScript() (string, error) {
	if self, err := os.Executable(); err == nil {
		candidate := filepath.Join(filepath.Dir(self), execScriptName)
		if _, err := os.Stat(candidate); err == nil {
			return candidate, nil
		}
	}
	path, err := exec.LookPath(execScriptName)
	if err != nil {
		return "", fmt.Errorf("could not find %s next to the language host or on PATH: %w", execScriptName, err)
	}
	return path, nil
}

type pythonHost struct {
	pulumirpc.UnimplementedLanguageRuntimeServer

	execScript string
	tracing    string

	// ctx ends when the engine is gone (watchEngine); cancel ends it.
	ctx         context.Context
	cancel      context.CancelFunc
	watchEngine sync.Once

	// engineAddress comes from argv, or from Handshake when the engine attaches to an already running host
	// (PULUMI_DEBUG_LANGUAGES) and there was no argv; gRPC calls run concurrently, hence the lock.
	mu            sync.Mutex
	engineAddress string
}

func (h *pythonHost) setEngineAddress(addr string) {
	h.mu.Lock()
	h.engineAddress = addr
	h.mu.Unlock()
	if addr == "" {
		return
	}
	// The host serves one engine: once its address is known, exit when it stops answering.
	h.watchEngine.Do(func() {
		if err := rpcutil.Healthcheck(h.ctx, addr, engineHealthInterval, h.cancel); err != nil {
			logging.V(3).Infof("cannot watch the engine at %s: %v", addr, err)
		}
	})
}

func (h *pythonHost) getEngineAddress() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.engineAddress
}

// boundToEngine is ctx, also cancelled when the engine is gone: a program or policy pack run under it dies with
// the call or with the host, whichever ends first.
func (h *pythonHost) boundToEngine(ctx context.Context) (context.Context, context.CancelFunc) {
	runCtx, cancel := context.WithCancel(ctx)
	unwatch := context.AfterFunc(h.ctx, cancel)
	return runCtx, func() { unwatch(); cancel() }
}

var _ pulumirpc.LanguageRuntimeServer = (*pythonHost)(nil)

// Handshake records the engine address; the root/program directories it carries are not needed because
// every later request brings its own ProgramInfo.
func (h *pythonHost) Handshake(
	_ context.Context, req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if req.GetEngineAddress() != "" {
		h.setEngineAddress(req.GetEngineAddress())
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *pythonHost) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: version.Version}, nil
}

// resolveToolchain maps Pulumi.yaml's `runtime.options` (toolchain, virtualenv, typechecker) onto the sdk's
// python/toolchain package, which knows how to find and activate pip/poetry/uv virtualenvs.
func resolveToolchain(info *pulumirpc.ProgramInfo) (toolchain.Toolchain, error) {
	if info == nil {
		return nil, status.Error(codes.InvalidArgument, "missing program info")
	}
	opts := toolchain.PythonOptions{
		Root:       info.GetRootDirectory(),
		ProgramDir: info.GetProgramDirectory(),
		Toolchain:  toolchain.Pip,
	}
	raw := map[string]any{}
	if info.GetOptions() != nil {
		raw = info.GetOptions().AsMap()
	}
	if v, ok := raw["virtualenv"].(string); ok {
		opts.Virtualenv = v
	}
	switch tc, _ := raw["toolchain"].(string); tc {
	case "":
		// Like upstream: detect uv.lock/poetry.lock, else pip.
		opts.Toolchain = toolchain.Auto
	case "pip":
	case "poetry":
		opts.Toolchain = toolchain.Poetry
	case "uv":
		opts.Toolchain = toolchain.Uv
	default:
		return nil, fmt.Errorf("unsupported python toolchain %q (expected pip, poetry or uv)", tc)
	}
	switch tcName, _ := raw["typechecker"].(string); tcName {
	case "":
	case "mypy", "pyright":
		// Type checking before Run is an upstream convenience tfbox does not rely on (CI runs mypy itself).
		logging.V(3).Infof("typechecker %q requested; this minimal host does not run it", tcName)
	default:
		return nil, fmt.Errorf("unsupported typechecker %q", tcName)
	}
	return toolchain.ResolveToolchain(opts)
}

// Run executes the program through the exec shim inside the project's virtualenv.
func (h *pythonHost) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	// A missing venv is a user error worth a clear message, not a Python traceback.
	if err := tc.ValidateVenv(ctx); err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}

	args := []string{h.execScript}
	add := func(flagName, value string) {
		if value != "" {
			args = append(args, "--"+flagName, value)
		}
	}
	add("monitor", req.GetMonitorAddress())
	add("engine", h.getEngineAddress())
	add("project", req.GetProject())
	add("stack", req.GetStack())
	add("pwd", req.GetPwd())
	add("dry_run", strconv.FormatBool(req.GetDryRun()))
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	add("organization", req.GetOrganization())
	add("root_directory", req.GetInfo().GetRootDirectory())
	add("tracing", h.tracing)
	program := req.GetProgram()
	if program == "" {
		// The exec shim runs a directory's __main__.py, like `python <dir>`.
		program = "."
	}
	args = append(args, program)
	args = append(args, req.GetArgs()...)

	runCtx, stopRun := h.boundToEngine(ctx)
	defer stopRun()
	cmd, err := tc.Command(runCtx, args...)
	if err != nil {
		return nil, err
	}
	cmd.Dir = req.GetPwd()
	env, err := configEnv(req.GetConfig(), req.GetConfigSecretKeys())
	if err != nil {
		return nil, err
	}
	if cmd.Env == nil {
		cmd.Env = os.Environ()
	}
	// Unbuffered so print() output and log lines reach the engine in order, as they happen.
	cmd.Env = append(cmd.Env, append(env, "PYTHONUNBUFFERED=1")...)
	// The engine turns our stdout/stderr into diagnostics for the update, so the program inherits them.
	cmd.Stdout = os.Stdout
	cmd.Stderr = os.Stderr

	logging.V(5).Infof("language host running %s %s", cmd.Path, strings.Join(cmd.Args[1:], " "))
	if err := cmd.Run(); err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeUserActionable {
				// The shim already reported the exception (with traceback) through the engine's log.
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		if ctx.Err() != nil {
			return nil, status.FromContextError(ctx.Err()).Err()
		}
		return &pulumirpc.RunResponse{
			Error: fmt.Sprintf("Problem executing program (could not run language executor): %v", err),
		}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}

// configEnv encodes stack config the way the Python SDK reads it (pulumi.runtime.get_config_env and
// get_config_secret_keys_env): a JSON object of "<ns>:<key>" -> string, and a JSON list of secret keys.
func configEnv(config map[string]string, secretKeys []string) ([]string, error) {
	var env []string
	if len(config) > 0 {
		b, err := json.Marshal(config)
		if err != nil {
			return nil, fmt.Errorf("serializing config: %w", err)
		}
		env = append(env, "PULUMI_CONFIG="+string(b))
	}
	if len(secretKeys) > 0 {
		b, err := json.Marshal(secretKeys)
		if err != nil {
			return nil, fmt.Errorf("serializing secret config keys: %w", err)
		}
		env = append(env, "PULUMI_CONFIG_SECRET_KEYS="+string(b))
	}
	return env, nil
}

// pluginManifest is the part of a Python provider SDK's pulumi-plugin.json we use.
type pluginManifest struct {
	Resource         bool            `json:"resource"`
	Name             string          `json:"name"`
	Version          string          `json:"version"`
	Server           string          `json:"server"`
	Parameterization json.RawMessage `json:"parameterization"`
}

// GetRequiredPackages reports the provider plugins the program's installed SDKs ask for, so that the engine
// knows them before Run (e.g. for `pulumi plugin install` and imports). Provider SDKs such as pulumi_docker
// ship a pulumi-plugin.json inside their package directory.
func (h *pythonHost) GetRequiredPackages(
	ctx context.Context, req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		// Upstream tolerates a missing venv here (the engine loads plugins on demand later).
		logging.V(3).Infof("GetRequiredPackages: %v", err)
		return &pulumirpc.GetRequiredPackagesResponse{}, nil
	}
	dirs, err := sitePackages(ctx, tc)
	if err != nil {
		return nil, err
	}
	var pkgs []*pulumirpc.PackageDependency
	seen := map[string]bool{}
	for _, dir := range dirs {
		manifests, _ := filepath.Glob(filepath.Join(dir, "*", "pulumi-plugin.json"))
		sort.Strings(manifests)
		for _, path := range manifests {
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			var m pluginManifest
			if err := json.Unmarshal(b, &m); err != nil {
				logging.V(3).Infof("ignoring unreadable %s: %v", path, err)
				continue
			}
			// Parameterized packages would need PackageParameterization; tfbox uses none, so skip them.
			if !m.Resource || m.Name == "" || len(m.Parameterization) > 0 {
				continue
			}
			key := m.Name + "@" + m.Version
			if seen[key] {
				continue
			}
			seen[key] = true
			pkgs = append(pkgs, &pulumirpc.PackageDependency{
				Name: m.Name, Kind: "resource", Version: m.Version, Server: m.Server,
			})
		}
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

// sitePackages asks the environment's interpreter for its site-packages directories, which works for venvs
// and the ambient interpreter alike without guessing lib/pythonX.Y layouts.
func sitePackages(ctx context.Context, tc toolchain.Toolchain) ([]string, error) {
	out, err := pythonOutput(ctx, tc, "listing site-packages", "import json, site; print(json.dumps(site.getsitepackages()))")
	if err != nil {
		return nil, err
	}
	var dirs []string
	if err := json.Unmarshal(out, &dirs); err != nil {
		return nil, fmt.Errorf("listing site-packages: %w", err)
	}
	return dirs, nil
}

// pythonOutput runs one line of Python with the environment's interpreter and returns what it printed.
func pythonOutput(ctx context.Context, tc toolchain.Toolchain, what, code string) ([]byte, error) {
	cmd, err := tc.Command(ctx, "-c", code)
	if err != nil {
		return nil, err
	}
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return out, nil
}

// streamWriter forwards a child's output as gRPC stream messages; mu serializes Send across the two writers.
type streamWriter struct {
	mu   *sync.Mutex
	send func(b []byte) error
}

func (w streamWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	// Copy: gRPC may hold on to the slice after Send returns and the caller reuses p.
	if err := w.send(append([]byte(nil), p...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// InstallDependencies creates the virtualenv if needed and installs requirements.txt (pip) or the lock file
// (poetry/uv), streaming the tool's output back to the engine (`pulumi install`, policy pack installs).
func (h *pythonHost) InstallDependencies(
	req *pulumirpc.InstallDependenciesRequest, server pulumirpc.LanguageRuntime_InstallDependenciesServer,
) error {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	mu := &sync.Mutex{}
	stdout := streamWriter{mu: mu, send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stdout: b})
	}}
	stderr := streamWriter{mu: mu, send: func(b []byte) error {
		return server.Send(&pulumirpc.InstallDependenciesResponse{Stderr: b})
	}}
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetDirectory()
	}
	return tc.InstallDependencies(server.Context(), dir, req.GetUseLanguageVersionTools(), true, stdout, stderr)
}

func (h *pythonHost) About(ctx context.Context, req *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	// Not tc.About: it also runs `python -m pip --version` (about 0.6 s of pip's imports on every
	// `pulumi up`, which asks for this as update metadata) for a pip version this response never carries.
	// One interpreter start gives both fields.
	out, err := pythonOutput(ctx, tc, "asking python for its executable and version",
		"import platform, sys; print(sys.executable); print(platform.python_version())")
	if err != nil {
		return nil, err
	}
	executable, version, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	parsed, err := toolchain.ParsePythonVersion(version)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.AboutResponse{
		Executable: strings.TrimSpace(executable),
		Version:    parsed.String(),
	}, nil
}

func (h *pythonHost) GetProgramDependencies(
	ctx context.Context, req *pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return nil, err
	}
	deps, err := tc.ListPackages(ctx, req.GetTransitiveDependencies())
	if err != nil {
		return nil, err
	}
	out := make([]*pulumirpc.DependencyInfo, 0, len(deps))
	for _, d := range deps {
		out = append(out, &pulumirpc.DependencyInfo{Name: d.Name, Version: d.Version})
	}
	return &pulumirpc.GetProgramDependenciesResponse{Dependencies: out}, nil
}

// RunPlugin starts a plugin written in Python. The 3.260 engine routes every Python policy pack through here
// when it finds this language host (sdk/v3 resource/plugin: NewPolicyAnalyzer -> newPlugin on a directory
// with PulumiPolicy.yaml -> LanguageRuntime.RunPlugin, Kind "analyzer", Args [engineAddress]). For analyzers
// we run the SDK's policy entry point `python -m pulumi.policy <engine> <program dir>`, which runs the pack's
// __main__.py; pulumi_policy then serves the Analyzer gRPC API and prints its port on stdout, which we relay.
// Providers written in Python (Kind "resource", PulumiPlugin.yaml) are not something tfbox uses: Unimplemented.
func (h *pythonHost) RunPlugin(
	req *pulumirpc.RunPluginRequest, server pulumirpc.LanguageRuntime_RunPluginServer,
) error {
	ctx := server.Context()
	tc, err := resolveToolchain(req.GetInfo())
	if err != nil {
		return err
	}
	if err := tc.ValidateVenv(ctx); err != nil {
		return err
	}
	dir := req.GetInfo().GetProgramDirectory()
	if dir == "" {
		dir = req.GetPwd()
	}

	if req.GetKind() != "analyzer" {
		return status.Errorf(codes.Unimplemented, "this minimal host runs only policy packs, not %q plugins", req.GetKind())
	}
	args := append([]string{"-u", "-m", "pulumi.policy"}, req.GetArgs()...)
	args = append(args, dir)
	runCtx, stopRun := h.boundToEngine(ctx)
	defer stopRun()
	cmd, err := tc.Command(runCtx, args...)
	if err != nil {
		return err
	}
	// The engine passes the plugin's whole environment (its own plus PULUMI_* for policy packs); re-apply the
	// venv activation on top of it.
	env := req.GetEnv()
	if len(env) == 0 {
		env = os.Environ()
	}
	if venv, err := tc.VirtualEnvPath(ctx); err == nil && venv != "" {
		env = toolchain.ActivateVirtualEnv(env, venv)
	}
	cmd.Env = append(env, "PYTHONUNBUFFERED=1")
	cmd.Dir = req.GetPwd()
	if cmd.Dir == "" {
		cmd.Dir = dir
	}

	mu := &sync.Mutex{}
	cmd.Stdout = streamWriter{mu: mu, send: func(b []byte) error {
		return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stdout{Stdout: b}})
	}}
	cmd.Stderr = streamWriter{mu: mu, send: func(b []byte) error {
		return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Stderr{Stderr: b}})
	}}
	runErr := cmd.Run()
	code := 0
	if runErr != nil {
		var exitErr *exec.ExitError
		if !errors.As(runErr, &exitErr) {
			return runErr
		}
		code = exitErr.ExitCode()
	}
	mu.Lock()
	defer mu.Unlock()
	return server.Send(&pulumirpc.RunPluginResponse{Output: &pulumirpc.RunPluginResponse_Exitcode{Exitcode: int32(code)}})
}
