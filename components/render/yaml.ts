// YAML for the plain objects this program renders (kubeconfigs, the encryption config, the scheduler config,
// Pulumi.yaml), written by the `yaml` package. Kubernetes reads YAML 1.1 (go-yaml v2), where "on", "yes" or
// "1:20" are not strings: the output is written for a YAML 1.1 reader, so every string reads back as the same
// string in 1.1 and in 1.2. Lists sit at their key's indent, as kubectl writes kubeconfigs; no line is folded.
import { stringify } from "yaml";

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

/** Renders a document; the top level must be a map. */
export function toYaml(document: { [key: string]: YamlValue }): string {
    return stringify(document, { version: "1.1", indentSeq: false, lineWidth: 0 });
}
