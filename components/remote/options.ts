import * as pulumi from "@pulumi/pulumi";

type Dependencies = pulumi.CustomResourceOptions["dependsOn"];

/**
 * Options for a component's children: parented, and waiting for what the component itself was told to
 * wait for (a child waits for its parent's dependencies only indirectly, so the edge is made explicit).
 */
export function childOptions(parent: pulumi.Resource, componentDeps: Dependencies,
    ...more: pulumi.Input<pulumi.Resource>[]): pulumi.CustomResourceOptions {
    return { parent, dependsOn: [...asList(componentDeps), ...more] };
}

export function asList(deps: Dependencies): pulumi.Input<pulumi.Resource>[] {
    if (deps === undefined) {
        return [];
    }
    return Array.isArray(deps) ? deps : [deps as pulumi.Input<pulumi.Resource>];
}
