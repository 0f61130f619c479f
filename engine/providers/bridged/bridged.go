// Package bridged holds what the two bridged providers built here (tls and
// random) share: the provider metadata handed to the Pulumi Terraform bridge
// and a small package schema.
//
// Upstream pulumi-tls and pulumi-random embed a schema.json and a
// bridge-metadata.json produced offline by their tfgen tool. Their provider
// modules are not served by the Go module proxy this project can reach, and
// this project does not copy their generated files, so:
//   - resource tokens and property names are computed by the bridge at start
//     (the same token strategy upstream declares in its resources.go), which is
//     what the @pulumi/tls and @pulumi/random npm SDKs send;
//   - GetSchema answers with a minimal schema (name, version, description):
//     enough for `pulumi plugin ls` and the engine, not for code generation.
package bridged

import (
	"context"
	"encoding/json"
	"fmt"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource/plugin"
)

// EmptyMetadata is valid bridge metadata with no recorded history.
func EmptyMetadata() *tfbridge.MetadataInfo {
	return tfbridge.NewProviderMetadata([]byte("{}"))
}

// Serve runs the provider's gRPC server (or answers --version / --get-provider-info).
func Serve(name, description string, info tfbridge.ProviderInfo) {
	schema, err := json.Marshal(map[string]any{
		"name":        name,
		"version":     info.Version,
		"description": description,
		"meta":        map[string]any{"moduleFormat": "(.*)(?:/[^/]*)"},
	})
	if err != nil {
		panic(fmt.Sprintf("marshal schema: %v", err))
	}
	meta := pf.ProviderMetadata{
		XGetSchema: func(context.Context, plugin.GetSchemaRequest) ([]byte, error) { return schema, nil },
	}
	pf.Main(context.Background(), name, info, meta)
}
