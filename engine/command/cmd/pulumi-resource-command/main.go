// Command pulumi-resource-command is this project's own implementation of the
// subset of the Pulumi command provider the program uses: command:local:Command
// and command:remote:Command (create/update/delete scripts, triggers, stdin,
// environment, logging, SSH connection with retries and host-key pinning).
//
// The upstream provider module (github.com/pulumi/pulumi-command/provider) has
// no release tag and the Go module proxy reachable here refuses its
// pseudo-versions, so it cannot be built from modules. This binary keeps the
// upstream resource tokens and property names, so the @pulumi/command npm SDK
// talks to it unchanged. Not implemented: CopyToRemote, CopyFile, local.run,
// proxy (bastion) connections, asset/archive outputs.
package main

import (
	"context"
	"fmt"
	"os"

	p "github.com/pulumi/pulumi-go-provider"
	"github.com/pulumi/pulumi-go-provider/infer"

	"kcp.local/engine/command/local"
	"kcp.local/engine/command/remote"
)

// Version is set at build time: -ldflags "-X main.Version=1.2.1".
var Version = "0.0.0-dev"

func main() {
	provider := infer.Provider(infer.Options{
		Resources: []infer.InferredResource{
			infer.Resource(&local.Command{}),
			infer.Resource(&remote.Command{}),
		},
	})
	if err := p.RunProvider(context.Background(), "command", Version, provider); err != nil {
		fmt.Fprintf(os.Stderr, "Error: %s\n", err)
		os.Exit(1)
	}
}
