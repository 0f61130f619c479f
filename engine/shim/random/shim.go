// Package shim exposes the Terraform random provider to the Pulumi bridge.
//
// Same arrangement as engine/shim/tls: the module path sits under the
// provider's module path so it may import the provider's internal package,
// and engine/providers/go.mod points at this folder with a replace directive.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	randomprovider "github.com/terraform-providers/terraform-provider-random/internal/provider"
)

// NewProvider returns the Terraform Plugin Framework provider for random.
func NewProvider() provider.Provider { return randomprovider.New() }
