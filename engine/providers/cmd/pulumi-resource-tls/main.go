// Command pulumi-resource-tls is the Pulumi resource plugin for TLS keys and
// certificates: the Terraform TLS provider served through the Pulumi
// Terraform bridge, configured like upstream pulumi-tls (single "index"
// module, standard tokens such as tls:index/privateKey:PrivateKey).
package main

import (
	"github.com/hashicorp/terraform-provider-tls/shim"
	pf "github.com/pulumi/pulumi-terraform-bridge/v3/pkg/pf/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge"
	"github.com/pulumi/pulumi-terraform-bridge/v3/pkg/tfbridge/tokens"

	"kcp.local/engine/providers/bridged"
)

// Version is set at build time: -ldflags "-X main.Version=5.6.1".
var Version = ""

func main() {
	info := tfbridge.ProviderInfo{
		P:            pf.ShimProvider(shim.NewProvider()),
		Name:         "tls",
		Description:  "A Pulumi package to create TLS resources in Pulumi programs.",
		License:      "Apache-2.0",
		Version:      Version,
		MetadataInfo: bridged.EmptyMetadata(),
		GitHubOrg:    "hashicorp",

		EnableZeroDefaultSchemaVersion: true,
		EnableAccurateBridgePreview:    true,
	}
	info.MustComputeTokens(tokens.SingleModule("tls_", "index", tokens.MakeStandard("tls")))
	bridged.Serve("tls", info.Description, info)
}
