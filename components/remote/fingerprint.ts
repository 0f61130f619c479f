import * as crypto from "crypto";
import * as pulumi from "@pulumi/pulumi";

/**
 * A short digest of everything a service reads (binary URL and checksum, certificates, keys, configs).
 * Steps embed it in their script so that a change to any input re-runs them. A digest of a key reveals
 * nothing of the key, so it is deliberately not a secret: the plan stays readable.
 */
export function fingerprint(inputs: pulumi.Input<string>[]): pulumi.Output<string> {
    return pulumi.unsecret(pulumi.all(inputs).apply(shortDigest));
}

/** The first 16 hex digits of the sha256 of a value's JSON: what every fingerprint and marker is made of. */
export function shortDigest(value: unknown): string {
    return crypto.createHash("sha256").update(JSON.stringify(value)).digest("hex").slice(0, 16);
}
