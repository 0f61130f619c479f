package run

import (
	"context"

	"github.com/pulumi/pulumi/sdk/v3/go/common/resource"
)

// Exec runs one script of a command resource where it runs (here, or over SSH); prev holds the last run's
// outputs (nil on create).
type Exec func(ctx context.Context, script string, prev *Outputs) (Outputs, error)

// Create is the create lifecycle both Command resources share: a fresh ID, and the create script run unless this
// is a preview or there is none.
func Create(ctx context.Context, name string, dryRun bool, in Inputs, exec Exec) (string, Outputs, error) {
	id, err := resource.NewUniqueHex(name, 8, 0)
	if err != nil || dryRun || in.Create == nil {
		return id, Outputs{}, err
	}
	out, err := exec(ctx, *in.Create, nil)
	return id, out, err
}

// Update runs the update script (create when there is none) with the previous outputs; in a preview, or with
// neither script, the previous outputs stand.
func Update(ctx context.Context, dryRun bool, in Inputs, prev Outputs, exec Exec) (Outputs, error) {
	script := in.UpdateCommand()
	if dryRun || script == nil {
		return prev, nil
	}
	return exec(ctx, *script, &prev)
}

// Delete runs the delete script from state, if any.
func Delete(ctx context.Context, in Inputs, prev Outputs, exec Exec) error {
	if in.Delete == nil {
		return nil
	}
	_, err := exec(ctx, *in.Delete, &prev)
	return err
}
