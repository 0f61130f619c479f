// Pulumi.yaml is rendered from the config's defaults and descriptions, so `pulumi config` users see every
// key the program reads, with the seed's default; a unit test keeps the file in step with this code.
import { CONFIG_KEYS, CONFIG_NAMESPACE, DEFAULTS, DESCRIPTIONS } from "./config";
import { toYaml, YamlValue } from "./render/yaml";

function declaration(value: unknown): { [key: string]: YamlValue } {
    if (typeof value === "string") {
        return { type: "string", default: value };
    }
    if (typeof value === "number") {
        return { type: "integer", default: value };
    }
    if (typeof value === "boolean") {
        return { type: "boolean", default: value };
    }
    // Lists of objects and maps have no simple Pulumi config type: declared by their default alone.
    return { default: value as YamlValue };
}

export function renderProjectFile(): string {
    const config: { [key: string]: YamlValue } = {};
    for (const key of CONFIG_KEYS) {
        config[key] = { description: DESCRIPTIONS[key], ...declaration(DEFAULTS[key]) };
    }
    return "# Rendered from components/config.ts by `npm run gen:project`; edit that file, not this one.\n" + toYaml({
        name: CONFIG_NAMESPACE,
        description: "Kubernetes the hard way, chapter 5: the control plane (etcd, API servers behind an IPVS VIP, " +
            "controller managers, schedulers) installed over SSH",
        // The engine runs the program transpiled only (tsconfig.pulumi.json: noCheck), by SWC through ts-node
        // (its `swc` option), for every user and not only our scripts: the type check is `npm run lint`'s and
        // `npm test`'s.
        runtime: { name: "nodejs", options: { typescript: true, tsconfig: "tsconfig.pulumi.json" } },
        config,
    });
}
