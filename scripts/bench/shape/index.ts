// The engine's floor for a program of the control plane program's shape: `steps` steps that do nothing
// (`keys` of them tls keys, the rest local commands running `true`), each depending on one of the level
// before it, in a chain `depth` steps deep, constructed after this stack's last deployment is read back.
// npm run bench reads the shape from the control plane's deployed state (scripts/bench.sh): its no-change up
// beside this one's tells the engine's cost of that many steps from the program's own (its probes, its
// construction, its inputs).
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import * as tls from "@pulumi/tls";
import { leavePromiseTracesUnformatted } from "../../../components/traces";

// As the control plane program does: the SDK's promise traces are not formatted.
leavePromiseTracesUnformatted();
const config = new pulumi.Config();
const steps = config.requireNumber("steps");
const depth = Math.max(1, Math.min(steps, config.requireNumber("depth")));
const keys = config.getNumber("keys") ?? 0;
const lastDeployment = new pulumi.StackReference("last-deployment",
    { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}` });

export = async () => {
    const last = (await lastDeployment.getOutputDetails("steps")).value;
    const levels: pulumi.Resource[][] = [];
    for (let i = 0; i < steps; i++) {
        const level = Math.floor(i * depth / steps);
        const opts = { dependsOn: level === 0 ? [] : [levels[level - 1][0]] };
        (levels[level] ??= []).push(i < keys
            ? new tls.PrivateKey(`key-${i}`, { algorithm: "ED25519" }, opts)
            : new command.local.Command(`step-${i}`, { create: "true", delete: "true" }, opts));
    }
    return { steps, lastSteps: last ?? 0 };
};
