import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";

/**
 * A short digest of everything a service reads (binary URL and checksum, certificates, keys, configs).
 * Steps embed it in their script so that a change to any input re-runs them. A digest of a key reveals
 * nothing of the key, so it is deliberately not a secret: the plan stays readable.
 */
export function fingerprint(inputs: pulumi.Input<string>[]): pulumi.Output<string> {
    return pulumi.unsecret(pulumi.all(inputs).apply(values =>
        crypto.createHash("sha256").update(JSON.stringify(values)).digest("hex").slice(0, 16)));
}
