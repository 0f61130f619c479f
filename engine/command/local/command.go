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
