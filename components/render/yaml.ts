// A small YAML emitter for the plain objects this program renders (kubeconfigs, the encryption config,
// the scheduler config): maps, lists, strings, numbers and booleans. Strings are quoted whenever YAML
// could read them as anything but the same string, so the output round-trips exactly.

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

const PLAIN = /^[A-Za-z0-9_./][A-Za-z0-9_./:@+=-]*$/;
const RESERVED = /^(true|false|yes|no|on|off|null|~|y|n)$/i;

function scalar(value: string | number | boolean | null): string {
    if (value === null) {
        return "null";
    }
    if (typeof value !== "string") {
        return String(value);
    }
    const plain = PLAIN.test(value) && !RESERVED.test(value) && !/^[0-9.+-]/.test(value) && !value.endsWith(":") && !value.includes(": ");
    return plain ? value : JSON.stringify(value);
}

function isEmptyCollection(value: YamlValue): boolean {
    return (Array.isArray(value) && value.length === 0) ||
        (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length === 0);
}

function lines(value: YamlValue, indent: string): string[] {
    if (Array.isArray(value)) {
        return value.flatMap(item => {
            if (item !== null && typeof item === "object" && !isEmptyCollection(item)) {
                const [first, ...rest] = lines(item, indent + "  ");
                return [`${indent}- ${first.trimStart()}`, ...rest];
            }
            return [`${indent}- ${inline(item)}`];
        });
    }
    if (value !== null && typeof value === "object") {
        return Object.entries(value).flatMap(([key, item]) => {
            if (item !== null && typeof item === "object" && !isEmptyCollection(item)) {
                const nested = Array.isArray(item) ? indent : indent + "  ";
                return [`${indent}${scalar(key)}:`, ...lines(item, nested)];
            }
            return [`${indent}${scalar(key)}: ${inline(item)}`];
        });
    }
    return [indent + scalar(value)];
}

function inline(value: YamlValue): string {
    if (Array.isArray(value)) {
        return "[]";
    }
    if (value !== null && typeof value === "object") {
        return "{}";
    }
    return scalar(value);
}

/** Renders a document; the top level must be a map. */
export function toYaml(document: { [key: string]: YamlValue }): string {
    return lines(document, "").join("\n") + "\n";
}
