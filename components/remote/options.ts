import * as pulumi from "@pulumi/pulumi";

type Dependencies = pulumi.CustomResourceOptions["dependsOn"];

/**
 * Options for a component's children: parented, and waiting for what the component itself was told to
 * wait for (a child waits for its parent's dependencies only indirectly, so the edge is made explicit).
 */
/** A resource to wait for, or a list of them known only later (rolling.ts: `whereRunning`, once the hosts are probed). */
export type Dependency = pulumi.Input<pulumi.Resource> | Promise<pulumi.Resource[]>;

export function childOptions(parent: pulumi.Resource, componentDeps: Dependencies,
    ...more: Dependency[]): pulumi.CustomResourceOptions {
    const list: Dependency[] = [...asList(componentDeps), ...more];
    if (!list.some(d => d instanceof Promise)) {
        return { parent, dependsOn: list as pulumi.Input<pulumi.Resource>[] };
    }
    // A list known later makes the whole of dependsOn a promise (the SDK takes Input<Input<Resource>[]>).
    const later: Promise<pulumi.Input<pulumi.Resource>[]> = Promise.all(list)
        .then(all => all.flatMap(d => (Array.isArray(d) ? d : [d])));
    return { parent, dependsOn: later };
}

export function asList(deps: Dependencies): pulumi.Input<pulumi.Resource>[] {
    if (deps === undefined) {
        return [];
    }
    return Array.isArray(deps) ? deps : [deps as pulumi.Input<pulumi.Resource>];
}
