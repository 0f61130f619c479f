// Package remote is the command:remote:Command resource: a command run on a
// host reached over SSH.
package remote

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/pulumi/pulumi-go-provider/infer"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"

	"kcp.local/engine/command/internal/run"
)

// Connection says how to reach the host (names as in @pulumi/command).
type Connection struct {
	User               *string  `pulumi:"user,optional"`
	Password           *string  `pulumi:"password,optional" provider:"secret"`
	Host               *string  `pulumi:"host"`
	Port               *float64 `pulumi:"port,optional"`
	PrivateKey         *string  `pulumi:"privateKey,optional" provider:"secret"`
	PrivateKeyPassword *string  `pulumi:"privateKeyPassword,optional" provider:"secret"`
	AgentSocketPath    *string  `pulumi:"agentSocketPath,optional"`
	DialErrorLimit     *int     `pulumi:"dialErrorLimit,optional"`
	PerDialTimeout     *int     `pulumi:"perDialTimeout,optional"`
	HostKey            *string  `pulumi:"hostKey,optional"`
}

// Command runs a command on a remote host.
type Command struct{}

// CommandInputs are the resource's inputs.
type CommandInputs struct {
	run.Inputs
	Connection *Connection `pulumi:"connection" provider:"secret"`
}

// CommandOutputs are the inputs plus what the last run printed.
type CommandOutputs struct {
	CommandInputs
	run.Outputs
}

func (c *Connection) clientConfig() (*ssh.ClientConfig, error) {
	user := "root"
	if c.User != nil && *c.User != "" {
		user = *c.User
	}
	cfg := &ssh.ClientConfig{User: user, HostKeyCallback: ssh.InsecureIgnoreHostKey()} //nolint:gosec // upstream default
	if c.HostKey != nil && *c.HostKey != "" {
		key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(*c.HostKey))
		if err != nil {
			return nil, fmt.Errorf("parse hostKey: %w", err)
		}
		cfg.HostKeyCallback = ssh.FixedHostKey(key)
		cfg.HostKeyAlgorithms = []string{key.Type()}
		if key.Type() == ssh.KeyAlgoRSA {
			cfg.HostKeyAlgorithms = []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
		}
	}
	if c.PrivateKey != nil && *c.PrivateKey != "" {
		var signer ssh.Signer
		var err error
		if c.PrivateKeyPassword != nil && *c.PrivateKeyPassword != "" {
			signer, err = ssh.ParsePrivateKeyWithPassphrase([]byte(*c.PrivateKey), []byte(*c.PrivateKeyPassword))
		} else {
			signer, err = ssh.ParsePrivateKey([]byte(*c.PrivateKey))
		}
		if err != nil {
			return nil, fmt.Errorf("parse privateKey: %w", err)
		}
		cfg.Auth = append(cfg.Auth, ssh.PublicKeys(signer))
	}
	if c.Password != nil && *c.Password != "" {
		cfg.Auth = append(cfg.Auth, ssh.Password(*c.Password),
			ssh.KeyboardInteractive(func(_, _ string, qs []string, _ []bool) ([]string, error) {
				answers := make([]string, len(qs))
				for i := range answers {
					answers[i] = *c.Password
				}
				return answers, nil
			}))
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if c.AgentSocketPath != nil && *c.AgentSocketPath != "" {
		sock = *c.AgentSocketPath
	}
	if sock != "" {
		if conn, err := net.Dial("unix", sock); err == nil {
			cfg.Auth = append(cfg.Auth, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
		}
	}
	return cfg, nil
}

// dial connects with the connection's retry policy: dialErrorLimit attempts
// (default 10, -1 unlimited), each bounded by perDialTimeout seconds (default 15).
func (c *Connection) dial(ctx context.Context) (*ssh.Client, error) {
	if c.Host == nil || *c.Host == "" {
		return nil, fmt.Errorf("connection.host is required")
	}
	cfg, err := c.clientConfig()
	if err != nil {
		return nil, err
	}
	port := 22
	if c.Port != nil && *c.Port > 0 {
		port = int(*c.Port)
	}
	limit := 10
	if c.DialErrorLimit != nil {
		limit = *c.DialErrorLimit
	}
	perDial := 15
	if c.PerDialTimeout != nil {
		perDial = *c.PerDialTimeout
	}
	cfg.Timeout = time.Duration(perDial) * time.Second
	addr := net.JoinHostPort(*c.Host, strconv.Itoa(port))
	var lastErr error
	for attempt := 1; limit < 0 || attempt <= limit; attempt++ {
		client, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			return client, nil
		}
		lastErr = err
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(min(attempt, 5)) * time.Second):
		}
	}
	return nil, fmt.Errorf("dial %s: %d attempt(s) failed, last error: %w", addr, limit, lastErr)
}

func (in CommandInputs) exec(ctx context.Context, script string, prev *run.Outputs) (run.Outputs, error) {
	if in.Connection == nil {
		return run.Outputs{}, fmt.Errorf("connection is required")
	}
	client, err := in.Connection.dial(ctx)
	if err != nil {
		return run.Outputs{}, err
	}
	defer client.Close()
	session, err := client.NewSession()
	if err != nil {
		return run.Outputs{}, fmt.Errorf("open SSH session: %w", err)
	}
	defer session.Close()
	env := map[string]string{}
	for k, v := range in.Environment {
		env[k] = v
	}
	for k, v := range in.PreviousOutputEnv(prev) {
		env[k] = v
	}
	for k, v := range env {
		if err := session.Setenv(k, v); err != nil {
			return run.Outputs{}, fmt.Errorf("the SSH server refused environment variable %s (AcceptEnv): %w", k, err)
		}
	}
	if in.Stdin != nil {
		session.Stdin = strings.NewReader(*in.Stdin)
	}
	logOut, logErr := run.Logs(in.Logging)
	stdout, stderr := run.NewCapture(ctx, logOut), run.NewCapture(ctx, logErr)
	session.Stdout, session.Stderr = stdout, stderr
	done := make(chan error, 1)
	go func() { done <- session.Run(script) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = session.Signal(ssh.SIGTERM)
		_ = session.Close()
		err = ctx.Err()
	}
	out := run.Outputs{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		return out, fmt.Errorf("remote command failed: %w: stderr: %s", err, out.Stderr)
	}
	return out, nil
}

// Create runs the create command (not in preview).
func (*Command) Create(ctx context.Context, req infer.CreateRequest[CommandInputs],
) (infer.CreateResponse[CommandOutputs], error) {
	id, out, err := run.Create(ctx, req.Name, req.DryRun, req.Inputs.Inputs, req.Inputs.exec)
	return infer.CreateResponse[CommandOutputs]{ID: id, Output: CommandOutputs{req.Inputs, out}}, err
}

// Update runs the update command, or create when there is none.
func (*Command) Update(ctx context.Context, req infer.UpdateRequest[CommandInputs, CommandOutputs],
) (infer.UpdateResponse[CommandOutputs], error) {
	out, err := run.Update(ctx, req.DryRun, req.Inputs.Inputs, req.State.Outputs, req.Inputs.exec)
	return infer.UpdateResponse[CommandOutputs]{Output: CommandOutputs{req.Inputs, out}}, err
}

// Delete runs the delete command, if any, with the inputs from state.
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandOutputs]) (infer.DeleteResponse, error) {
	return infer.DeleteResponse{}, run.Delete(ctx, req.State.Inputs, req.State.Outputs, req.State.CommandInputs.exec)
}
