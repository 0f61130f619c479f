// Command pulumi-resource-random is the Pulumi resource plugin for random
// values: the Terraform random provider served through the Pulumi Terraform
// bridge, configured like upstream pulumi-random (tokens such as
// random:index/randomPassword:RandomPassword).
package main

import (
	"context"
	"errors"

	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"
	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
	"github.com/terraform-providers/terraform-provider-random/shim"

	"kcp.local/engine/providers/bridged"
)

// Version is set at build time: -ldflags "-X main.Version=4.21.2".
var Version = ""

// bytesID makes random_bytes' ID its base64 value, the attribute the
// Terraform resource uses as identity.
func bytesID(_ context.Context, state resource.PropertyMap) (resource.ID, error) {
	v, ok := state["base64"]
	if !ok {
		return "", errors.New("random_bytes state has no base64 property")
	}
	if v.IsSecret() {
		v = v.SecretValue().Element
	}
	if !v.IsString() {
		return "", errors.New("random_bytes base64 property is not a string")
	}
	return resource.ID(v.StringValue()), nil
}

func main() {
	info := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(shim.NewProvider()),
		Name:         "random",
		Description:  "A Pulumi package to safely use randomness in Pulumi programs.",
		License:      "Apache-2.0",
		Version:      Version,
		MetadataInfo: bridged.EmptyMetadata(),
		Resources: map[string]*tfbridge.ResourceInfo{
			"random_bytes": {ComputeID: bytesID},
		},
		EnableAccurateBridgePreview: true,
		EnableRawStateDelta:         true,
	}
	makeToken := func(module, name string) (string, error) {
		return tokens.MakeStandard("random")(module, "Random"+name)
	}
	info.MustComputeTokens(tokens.SingleModule("random_", "index", makeToken))
	bridged.Serve("random", info.Description, info)
}
