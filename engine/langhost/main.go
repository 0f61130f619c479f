// Command pulumi-language-nodejs is this project's own, minimal Node.js
// language host for the Pulumi engine.
//
// Why it exists: the upstream language host lives in a nested Go module of the
// pulumi repository (sdk/nodejs/cmd/pulumi-language-nodejs) that has no release
// tag, and the Go module proxy this project can reach refuses every version of
// it ("403 This module version is not available"). The CLI itself builds from
// the published github.com/pulumi/pulumi/pkg/v3 module, so this file supplies
// the one missing piece: a gRPC LanguageRuntime server that
//
//   - reports the resource plugins a program needs (GetRequiredPackages), by
//     reading package.json files of node_modules/@*/* packages that declare
//     {"pulumi": {"resource": true}};
//   - runs the program (Run) by launching `node` on the run entry point that
//     ships with the program's own @pulumi/pulumi npm package, passing the
//     monitor/engine addresses and the stack configuration the same way the
//     engine's protocol defines (PULUMI_CONFIG, PULUMI_CONFIG_SECRET_KEYS);
//   - answers the small informational calls (GetPluginInfo, About,
//     InstallDependencies as a no-op: npm ci is the project's job).
//
// It supports what this project uses: TypeScript programs (ts-node through the
// SDK's run script), `typescript`, `tsconfig` and `nodeargs` runtime options.
// It does not implement debugging, bun, sync invokes, policy packs, code
// generation or `pulumi convert`.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/config"
	"github.com/pulumi/pulumi/sdk/v3/go/common/util/rpcutil"
	pulumirpc "github.com/pulumi/pulumi/sdk/v3/proto/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"
)

// Version is set at build time with -ldflags "-X main.Version=...".
var Version = "0.0.0-dev"

const (
	// runModule is the entry point, inside the @pulumi/pulumi npm package, that
	// connects a Node.js program to the resource monitor.
	runModule = "@pulumi/pulumi/cmd/run"
	// The SDK exits with this code once it has already printed an actionable
	// message; the engine then must not print another error.
	exitCodeAlreadyReported = 32
)

type host struct {
	pulumirpc.UnimplementedLanguageRuntimeServer
	engineAddress string
	cancel        context.Context
}

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.String("tracing", "", "accepted for compatibility; ignored")
	runtimeName := flag.String("runtime", "nodejs", "only nodejs is supported")
	flag.Parse()
	if *showVersion {
		fmt.Println(Version)
		return
	}
	if *runtimeName != "nodejs" {
		fmt.Fprintf(os.Stderr, "unsupported runtime %q: only nodejs is supported\n", *runtimeName)
		os.Exit(1)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	cancelChannel := make(chan bool)
	go func() {
		<-ctx.Done()
		close(cancelChannel)
	}()

	var engineAddress string
	if args := flag.Args(); len(args) > 0 {
		engineAddress = args[0]
		// Exit when the engine goes away, like every plugin does.
		if err := rpcutil.Healthcheck(ctx, engineAddress, 5*time.Minute, stop); err != nil {
			fmt.Fprintf(os.Stderr, "could not start the engine health check: %v\n", err)
			os.Exit(1)
		}
	}

	h := &host{engineAddress: engineAddress, cancel: ctx}
	handle, err := rpcutil.ServeWithOptions(rpcutil.ServeOptions{
		Cancel: cancelChannel,
		Init: func(srv *grpc.Server) error {
			pulumirpc.RegisterLanguageRuntimeServer(srv, h)
			return nil
		},
	})
	if err != nil {
		fmt.Fprintf(os.Stderr, "could not start the language host gRPC server: %v\n", err)
		os.Exit(1)
	}
	// The engine reads the port from our first line of output.
	fmt.Printf("%d\n", handle.Port)
	if err := <-handle.Done; err != nil {
		fmt.Fprintf(os.Stderr, "language host stopped serving: %v\n", err)
		os.Exit(1)
	}
}

// Handshake is accepted so the engine does not fall back to older paths; the
// engine address already came on the command line.
func (h *host) Handshake(_ context.Context,
	req *pulumirpc.LanguageHandshakeRequest,
) (*pulumirpc.LanguageHandshakeResponse, error) {
	if h.engineAddress == "" {
		h.engineAddress = req.GetEngineAddress()
	}
	return &pulumirpc.LanguageHandshakeResponse{}, nil
}

func (h *host) GetPluginInfo(context.Context, *emptypb.Empty) (*pulumirpc.PluginInfo, error) {
	return &pulumirpc.PluginInfo{Version: Version}, nil
}

type packageJSON struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Pulumi  struct {
		Resource bool   `json:"resource"`
		Name     string `json:"name"`
		Version  string `json:"version"`
		Server   string `json:"server"`
	} `json:"pulumi"`
}

// nodeModulesFor returns the node_modules directory Node.js would search
// first for a program in dir: the nearest one in dir or an ancestor.
func nodeModulesFor(dir string) string {
	dir, _ = filepath.Abs(dir)
	for {
		candidate := filepath.Join(dir, "node_modules")
		if fi, err := os.Stat(candidate); err == nil && fi.IsDir() {
			return candidate
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// requiredPackages lists resource plugins declared by top-level packages of a
// node_modules directory (name/version from the "pulumi" block, falling back
// to the npm name without scope and the npm version).
func requiredPackages(nodeModules string) ([]*pulumirpc.PackageDependency, error) {
	var dirs []string
	entries, err := os.ReadDir(nodeModules)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		p := filepath.Join(nodeModules, e.Name())
		if strings.HasPrefix(e.Name(), "@") {
			sub, err := os.ReadDir(p)
			if err != nil {
				continue
			}
			for _, s := range sub {
				dirs = append(dirs, filepath.Join(p, s.Name()))
			}
		} else if !strings.HasPrefix(e.Name(), ".") {
			dirs = append(dirs, p)
		}
	}
	sort.Strings(dirs)
	var out []*pulumirpc.PackageDependency
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, "package.json"))
		if err != nil {
			continue
		}
		var pj packageJSON
		if err := json.Unmarshal(b, &pj); err != nil || !pj.Pulumi.Resource {
			continue
		}
		name := pj.Pulumi.Name
		if name == "" {
			name = pj.Name
			if i := strings.LastIndex(name, "/"); i >= 0 {
				name = name[i+1:]
			}
		}
		version := pj.Pulumi.Version
		if version == "" {
			version = pj.Version
		}
		if version != "" && !strings.HasPrefix(version, "v") {
			version = "v" + version
		}
		out = append(out, &pulumirpc.PackageDependency{
			Name: name, Kind: "resource", Version: version, Server: pj.Pulumi.Server,
		})
	}
	return out, nil
}

func (h *host) GetRequiredPackages(_ context.Context,
	req *pulumirpc.GetRequiredPackagesRequest,
) (*pulumirpc.GetRequiredPackagesResponse, error) {
	info := req.GetInfo()
	nm := nodeModulesFor(info.GetProgramDirectory())
	if nm == "" {
		return &pulumirpc.GetRequiredPackagesResponse{}, nil
	}
	pkgs, err := requiredPackages(nm)
	if err != nil {
		return nil, err
	}
	return &pulumirpc.GetRequiredPackagesResponse{Packages: pkgs}, nil
}

// InstallDependencies is a no-op: dependencies are installed with `npm ci`
// before any Pulumi command runs.
func (h *host) InstallDependencies(_ *pulumirpc.InstallDependenciesRequest,
	srv grpc.ServerStreamingServer[pulumirpc.InstallDependenciesResponse],
) error {
	return srv.Send(&pulumirpc.InstallDependenciesResponse{
		Stdout: []byte("pulumi-language-nodejs (kcp): dependencies are installed with npm ci; nothing to do\n"),
	})
}

func (h *host) About(ctx context.Context, _ *pulumirpc.AboutRequest) (*pulumirpc.AboutResponse, error) {
	out, err := exec.CommandContext(ctx, "node", "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("node --version: %w", err)
	}
	path, _ := exec.LookPath("node")
	return &pulumirpc.AboutResponse{
		Executable: path,
		Version:    strings.TrimPrefix(strings.TrimSpace(string(out)), "v"),
	}, nil
}

func (h *host) GetProgramDependencies(context.Context,
	*pulumirpc.GetProgramDependenciesRequest,
) (*pulumirpc.GetProgramDependenciesResponse, error) {
	return nil, status.Error(codes.Unimplemented, "GetProgramDependencies is not supported by this language host")
}

type options struct {
	typescript bool
	tsconfig   string
	nodeargs   []string
}

func parseOptions(m map[string]any) (options, error) {
	o := options{typescript: true}
	if v, ok := m["typescript"]; ok {
		b, ok := v.(bool)
		if !ok {
			return o, errors.New("runtime option typescript must be a boolean")
		}
		o.typescript = b
	}
	if v, ok := m["tsconfig"]; ok {
		s, ok := v.(string)
		if !ok {
			return o, errors.New("runtime option tsconfig must be a string")
		}
		o.tsconfig = s
	}
	if v, ok := m["nodeargs"]; ok {
		s, ok := v.(string)
		if !ok {
			return o, errors.New("runtime option nodeargs must be a string")
		}
		o.nodeargs = strings.Fields(s)
	}
	return o, nil
}

// resolveRunModule asks node itself where the program's @pulumi/pulumi lives,
// so the SDK version that runs is the one in the program's lock file.
func resolveRunModule(ctx context.Context, nodeBin, programDir string) (string, error) {
	cmd := exec.CommandContext(ctx, nodeBin, "-e", "process.stdout.write(require.resolve(process.argv[1]))", runModule)
	cmd.Dir = programDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("could not find %s from %s (run npm ci): %v: %s",
			runModule, programDir, err, strings.TrimSpace(stderr.String()))
	}
	// Run the package directory, as the upstream host does, not its index file.
	return filepath.Dir(string(out)), nil
}

// legacyConfig turns "pkg:key" into "pkg:config:key": the SDK accepts both,
// and older SDKs only the latter.
func legacyConfig(cfg map[string]string) (string, error) {
	m := make(map[string]string, len(cfg))
	for k, v := range cfg {
		key, err := config.ParseKey(k)
		if err != nil {
			return "", err
		}
		m[key.Namespace()+":config:"+key.Name()] = v
	}
	b, err := json.Marshal(m)
	return string(b), err
}

func (h *host) Run(ctx context.Context, req *pulumirpc.RunRequest) (*pulumirpc.RunResponse, error) {
	info := req.GetInfo()
	programDir := info.GetProgramDirectory()
	if programDir == "" {
		programDir = req.GetPwd()
	}
	entry := info.GetEntryPoint()
	if entry == "" {
		entry = req.GetProgram()
	}
	if entry == "" {
		entry = "."
	}
	nodeBin, err := exec.LookPath("node")
	if err != nil {
		return &pulumirpc.RunResponse{Error: "could not find node on the $PATH: " + err.Error()}, nil
	}
	opts, err := parseOptions(info.GetOptions().AsMap())
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	runPath, err := resolveRunModule(ctx, nodeBin, programDir)
	if err != nil {
		return &pulumirpc.RunResponse{Error: err.Error()}, nil
	}
	cfg, err := legacyConfig(req.GetConfig())
	if err != nil {
		return &pulumirpc.RunResponse{Error: "bad configuration: " + err.Error()}, nil
	}
	secretKeys, err := json.Marshal(append([]string{}, req.GetConfigSecretKeys()...))
	if err != nil {
		return nil, err
	}

	args := append([]string{}, opts.nodeargs...)
	args = append(args, runPath)
	add := func(flag, value string) {
		if value != "" {
			args = append(args, "--"+flag, value)
		}
	}
	// The SDK talks to the engine's resource monitor directly.
	add("monitor", req.GetMonitorAddress())
	add("engine", h.engineAddress)
	add("organization", req.GetOrganization())
	add("project", req.GetProject())
	add("root-directory", info.GetRootDirectory())
	add("stack", req.GetStack())
	add("pwd", programDir)
	if req.GetDryRun() {
		args = append(args, "--dry-run")
	}
	add("parallel", strconv.Itoa(int(req.GetParallel())))
	args = append(args, entry)
	args = append(args, req.GetArgs()...)

	env := append(os.Environ(),
		"PULUMI_CONFIG="+cfg,
		"PULUMI_CONFIG_SECRET_KEYS="+string(secretKeys),
	)
	if opts.typescript {
		env = append(env, "PULUMI_NODEJS_TYPESCRIPT=true")
	}
	if opts.tsconfig != "" {
		env = append(env, "PULUMI_NODEJS_TSCONFIG_PATH="+opts.tsconfig)
	}

	cmdCtx, cancel := context.WithCancel(h.cancel)
	defer cancel()
	context.AfterFunc(ctx, cancel)
	cmd := exec.CommandContext(cmdCtx, nodeBin, args...)
	cmd.Dir = programDir
	cmd.Env = env
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	// Node may switch its stdio to non-blocking mode; hand it wrappers so it
	// never shares our file descriptors directly.
	cmd.Stdout = struct{ *os.File }{os.Stdout}
	cmd.Stderr = struct{ *os.File }{os.Stderr}

	if err := cmd.Run(); err != nil {
		_ = os.Stdout.Sync()
		_ = os.Stderr.Sync()
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			if exitErr.ExitCode() == exitCodeAlreadyReported {
				return &pulumirpc.RunResponse{Bail: true}, nil
			}
			return &pulumirpc.RunResponse{
				Error: fmt.Sprintf("Program exited with non-zero exit code: %d", exitErr.ExitCode()),
			}, nil
		}
		return &pulumirpc.RunResponse{Error: "could not run node: " + err.Error()}, nil
	}
	return &pulumirpc.RunResponse{}, nil
}
