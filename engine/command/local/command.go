// Package local is the command:local:Command resource: a command run where
// Pulumi runs.
package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/pulumi/pulumi-go-provider/infer"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"

	"kcp.local/engine/command/internal/run"
)

// Command runs a command on the machine that runs Pulumi.
type Command struct{}

// CommandInputs are the resource's inputs.
type CommandInputs struct {
	run.Inputs
	Dir         *string   `pulumi:"dir,optional"`
	Interpreter *[]string `pulumi:"interpreter,optional"`
}

// CommandOutputs are the inputs plus what the last run printed.
type CommandOutputs struct {
	CommandInputs
	run.Outputs
}

func (in CommandInputs) exec(ctx context.Context, script string, prev *run.Outputs) (run.Outputs, error) {
	interpreter := []string{"/bin/sh", "-c"}
	if in.Interpreter != nil && len(*in.Interpreter) > 0 {
		interpreter = *in.Interpreter
	}
	args := append(append([]string{}, interpreter[1:]...), script)
	cmd := exec.CommandContext(ctx, interpreter[0], args...)
	if in.Dir != nil {
		cmd.Dir = *in.Dir
	}
	cmd.Env = os.Environ()
	for k, v := range in.Environment {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range in.PreviousOutputEnv(prev) {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if in.Stdin != nil {
		cmd.Stdin = strings.NewReader(*in.Stdin)
	}
	logOut, logErr := run.Logs(in.Logging)
	stdout, stderr := run.NewCapture(ctx, logOut), run.NewCapture(ctx, logErr)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	err := cmd.Run()
	out := run.Outputs{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		return out, fmt.Errorf("local command failed: %w: stderr: %s", err, out.Stderr)
	}
	return out, nil
}

// Create runs the create command (not in preview).
func (*Command) Create(ctx context.Context, req infer.CreateRequest[CommandInputs],
) (infer.CreateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs}
	id, err := resource.NewUniqueHex(req.Name, 8, 0)
	if err != nil || req.DryRun || req.Inputs.Create == nil {
		return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, err
	}
	state.Outputs, err = req.Inputs.exec(ctx, *req.Inputs.Create, nil)
	return infer.CreateResponse[CommandOutputs]{ID: id, Output: state}, err
}

// Update runs the update command, or create when there is none.
func (*Command) Update(ctx context.Context, req infer.UpdateRequest[CommandInputs, CommandOutputs],
) (infer.UpdateResponse[CommandOutputs], error) {
	state := CommandOutputs{CommandInputs: req.Inputs, Outputs: req.State.Outputs}
	script := req.Inputs.UpdateCommand()
	if req.DryRun || script == nil {
		return infer.UpdateResponse[CommandOutputs]{Output: state}, nil
	}
	prev := req.State.Outputs
	var err error
	state.Outputs, err = req.Inputs.exec(ctx, *script, &prev)
	return infer.UpdateResponse[CommandOutputs]{Output: state}, err
}

// Delete runs the delete command, if any.
func (*Command) Delete(ctx context.Context, req infer.DeleteRequest[CommandOutputs]) (infer.DeleteResponse, error) {
	if req.State.Delete == nil {
		return infer.DeleteResponse{}, nil
	}
	prev := req.State.Outputs
	_, err := req.State.CommandInputs.exec(ctx, *req.State.Delete, &prev)
	return infer.DeleteResponse{}, err
}
