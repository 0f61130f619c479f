// Reads the stack's config once, validates it before any resource exists, and loads the SSH key; holds every
// resource until the hosts are probed (what must be refused is refused before any resource is registered).
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { CONFIG_KEYS, CONFIG_NAMESPACE, ClusterConfig, DEFAULTS, expandHome, validateConfig } from "./config";
import { SshAccess, sshAccess } from "./remote/host";
import { asList } from "./remote/options";
import { portClashes } from "./preflight";
import { refusal } from "./traces";

// Whether a config value is a secret in the stack file (the SDK's own check, which it does not export in its
// types: the language host passes the secret keys in PULUMI_CONFIG_SECRET_KEYS).
// eslint-disable-next-line @typescript-eslint/no-var-requires
const { isConfigSecret } = require("@pulumi/pulumi/runtime/config") as { isConfigSecret(key: string): boolean };

export interface Stack {
    config: ClusterConfig;
    ssh: SshAccess;
    /** The SSH private key file, when there is one (a preview may go without). */
    keyFile?: string;
}

/** Stack config values arrive as strings; lists, maps and numbers are JSON, as `pulumi config` stores them. */
function rawConfig(errors: string[]): Record<string, unknown> {
    const raw: Record<string, unknown> = {};
    const prefix = `${CONFIG_NAMESPACE}:`;
    for (const [fullKey, value] of Object.entries(pulumi.runtime.allConfig())) {
        if (!fullKey.startsWith(prefix)) {
            continue;
        }
        const key = fullKey.slice(prefix.length);
        const known = (CONFIG_KEYS as string[]).includes(key);
        if (!known || typeof DEFAULTS[key as keyof ClusterConfig] === "string") {
            raw[key] = value;
            continue;
        }
        try {
            raw[key] = JSON.parse(value);
        } catch {
            errors.push(`${fullKey}: ${JSON.stringify(value)} is not a valid ${
                typeof DEFAULTS[key as keyof ClusterConfig] === "number" ? "number" : "list or map"}`);
        }
    }
    return raw;
}

/** The validated config and SSH access, or an error listing every problem (no resource is created). */
export function loadStack(): Stack {
    const parseErrors: string[] = [];
    const raw = rawConfig(parseErrors);
    const { config, errors, warnings } = validateConfig(raw, { exists: file => fs.existsSync(file) });
    const keyPath = expandHome(config.sshPrivateKeyPath);
    const keyFound = fs.existsSync(keyPath);
    const preview = pulumi.runtime.isDryRun();
    const problems = [...parseErrors, ...errors, ...(errors.length > 0 ? [] : portClashes(config))];
    // The encryption key decrypts every Secret in the cluster: it may only come from the stack's secret config.
    if (config.encryptionKey !== "" && !isConfigSecret(`${CONFIG_NAMESPACE}:encryptionKey`)) {
        problems.push(`${CONFIG_NAMESPACE}:encryptionKey: is stored in plain text in the stack file; ` +
            `set it with \`pulumi config set --secret encryptionKey\``);
    }
    if (!keyFound && !preview) {
        problems.push(`${CONFIG_NAMESPACE}:sshPrivateKeyPath: no SSH private key at ${keyPath} ` +
            `(pulumi up needs it to reach the hosts; pulumi preview does not)`);
    }
    if (problems.length > 0) {
        throw refusal(`invalid configuration:\n${problems.map(p => `  - ${p}`).join("\n")}`);
    }
    warnings.forEach(w => pulumi.log.warn(w));
    if (!keyFound) {
        pulumi.log.info(`no SSH private key at ${keyPath}: previewing without reaching the hosts`);
    }
    // The key is a secret from the moment it is read: in state it is encrypted, in logs it is [secret].
    const privateKey = pulumi.secret(keyFound ? fs.readFileSync(keyPath, "utf8") : "preview without an SSH key");
    return { config, ssh: sshAccess(config, privateKey, !keyFound), ...(keyFound ? { keyFile: keyPath } : {}) };
}

/**
 * No resource constructed from now on is registered with the engine before `ready` resolves (each waits for it
 * as for a dependency); when it rejects, none is, and the program fails with its error. Adds no dependency.
 */
export function holdResourcesUntil(ready: Promise<unknown>): void {
    pulumi.runtime.registerStackTransformation(args => {
        const dependsOn: Promise<pulumi.Input<pulumi.Resource>[]> = ready.then(() => asList(args.opts.dependsOn));
        // The registration awaits it later: a rejection is not an unhandled one meanwhile (it is reported once, by the program).
        dependsOn.catch(() => undefined);
        return { props: args.props, opts: { ...args.opts, dependsOn } };
    });
}
