// Package shim exposes the Terraform TLS provider to the Pulumi bridge.
//
// The provider's implementation is in an internal package of
// github.com/hashicorp/terraform-provider-tls. Go lets a package import an
// internal package only from inside the tree rooted at its parent, so this
// module takes a path under the provider's own module path and is wired in by
// a local replace directive (engine/providers/go.mod). It is this project's
// own code; it holds nothing but this constructor.
package shim

import (
	"github.com/hashicorp/terraform-plugin-framework/provider"
	tlsprovider "github.com/hashicorp/terraform-provider-tls/internal/provider"
)

// NewProvider returns the Terraform Plugin Framework provider for TLS.
func NewProvider() provider.Provider { return tlsprovider.New() }
