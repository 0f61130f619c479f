// Package run holds what the local and remote Command resources share: the
// inputs every command has, the captured outputs, and line logging.
package run

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"strings"
	"sync"

	p "github.com/pulumi/pulumi-go-provider"
)

// Inputs common to local and remote commands (same names as @pulumi/command).
type Inputs struct {
	// Triggers replace the resource when they change.
	Triggers *[]any   `pulumi:"triggers,optional" provider:"replaceOnChanges"`
	Create   *string  `pulumi:"create,optional"`
	Update   *string  `pulumi:"update,optional"`
	Delete   *string  `pulumi:"delete,optional"`
	Stdin    *string  `pulumi:"stdin,optional"`
	Logging  *Logging `pulumi:"logging,optional"`
	// Environment of the command's process.
	Environment map[string]string `pulumi:"environment,optional"`
	// AddPreviousOutputInEnv sets PULUMI_COMMAND_STDOUT/STDERR from the last run (default true).
	AddPreviousOutputInEnv *bool `pulumi:"addPreviousOutputInEnv,optional"`
}

// Logging says which of the command's streams are also logged to the engine.
type Logging string

// Outputs of a command run.
type Outputs struct {
	Stdout string `pulumi:"stdout"`
	Stderr string `pulumi:"stderr"`
}

// UpdateCommand is the script an update runs: update, else create.
func (in Inputs) UpdateCommand() *string {
	if in.Update != nil {
		return in.Update
	}
	return in.Create
}

// PreviousOutputEnv is the environment that passes the previous outputs on.
func (in Inputs) PreviousOutputEnv(prev *Outputs) map[string]string {
	if prev == nil || (in.AddPreviousOutputInEnv != nil && !*in.AddPreviousOutputInEnv) {
		return nil
	}
	return map[string]string{"PULUMI_COMMAND_STDOUT": prev.Stdout, "PULUMI_COMMAND_STDERR": prev.Stderr}
}

// Capture collects a stream and logs it line by line to the engine.
type Capture struct {
	buf  bytes.Buffer
	mu   sync.Mutex
	pw   *io.PipeWriter
	done chan struct{}
}

// NewCapture starts a capture; log says whether lines go to the engine log.
func NewCapture(ctx context.Context, log bool) *Capture {
	pr, pw := io.Pipe()
	c := &Capture{pw: pw, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
		for sc.Scan() {
			if log {
				p.GetLogger(ctx).InfoStatus(sc.Text())
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	return c
}

func (c *Capture) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.buf.Write(b)
	c.mu.Unlock()
	return c.pw.Write(b)
}

// String closes the capture and returns what was written, minus one trailing newline.
func (c *Capture) String() string {
	_ = c.pw.Close()
	<-c.done
	c.mu.Lock()
	defer c.mu.Unlock()
	return strings.TrimSuffix(c.buf.String(), "\n")
}

// Logs reports whether stdout and stderr are logged for a Logging value.
func Logs(l *Logging) (stdout, stderr bool) {
	if l == nil {
		return true, true
	}
	switch *l {
	case "none":
		return false, false
	case "stdout":
		return true, false
	case "stderr":
		return false, true
	default:
		return true, true
	}
}
