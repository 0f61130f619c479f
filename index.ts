// Chapter 5 of "Kubernetes the hard way", as a Pulumi program: etcd, the API servers, the load balancer in
// front of them, then the controller managers and schedulers, on the machines the stack config names.
import * as pulumi from "@pulumi/pulumi";
import { ApiServer } from "./components/apiServer";
import { Machine } from "./components/config";
import { EtcdBackup, EtcdRestoreUpload, restoreSpec } from "./components/backup";
import { ControllerManager } from "./components/controllerManager";
import { EtcdClusterHealth, EtcdMember, etcdMembersFingerprint } from "./components/etcd";
import { IpvsLoadBalancer } from "./components/loadBalancer";
import { apiServerUrl, caChangeProblem, clusterPki } from "./components/pki";
import { DepartureWhich, EtcdDepartures, joinerOf, MembershipRecord, planMembership } from "./components/membership";
import { hostFor } from "./components/remote/host";
import { oneAtATime } from "./components/remote/rolling";
import { driftMarkers as allDriftMarkers, usePreviousMarkers, withDriftRepairs } from "./components/remote/drift";
import { connectProbes, knownSums, knownVersions, probed, sshProbeRunner, startProbes, useKnownSums, useKnownVersions } from "./components/remote/probe";
import { sshSettings } from "./components/remote/ssh";
import { Scheduler } from "./components/scheduler";
import { Preflight, refuseByPreflight } from "./components/preflight";
import { holdResourcesUntil, loadStack } from "./components/stack";
import { leavePromiseTracesUnformatted, refusal } from "./components/traces";
import { dropSdkDebugLogs } from "./components/sdkLogs";

// The stack traces the SDK takes for every promise are left unformatted: they are shown only on request.
leavePromiseTracesUnformatted();
// The SDK's debug lines, which print every secret output in plain text, are dropped (components/sdkLogs.ts).
dropSdkDebugLogs();

// Config is validated before any resource exists.
const { config, ssh, keyFile } = loadStack();
const controlNodes = config.nodes.map(node => hostFor(node, ssh));
const gateway = hostFor(config.gateway, ssh);
// Drift: every host is probed once, over one SSH session each; the sessions open now (key exchange, login,
// sudo) and wait for their script while the program is constructed (startProbes, at the end).
connectProbes(keyFile === undefined ? undefined : sshProbeRunner(sshSettings(ssh), keyFile), "no SSH private key",
    [...config.nodes, config.gateway]);

// The last deployment's stack outputs, read back from this very stack before anything else: the drift markers
// (components/remote/drift.ts) and etcd's membership (components/membership.ts).
const lastDeployment = new pulumi.StackReference("last-deployment",
    { name: `${pulumi.getOrganization()}/${pulumi.getProject()}/${pulumi.getStack()}` });
const lastOutput = <T>(name: string) => lastDeployment.getOutputDetails(name).then(d => d.value as T | undefined);

export = async () => {
    const previousMarkers = await lastOutput<Record<string, string>>("driftMarkers");
    // The binaries' sums and `--version` lines the last run's probes read: not read again while each file's
    // identity holds.
    useKnownSums(await lastOutput("probeSums"));
    useKnownVersions(await lastOutput("probeVersions"));
    // A stack deployed before the API servers' drain existed gets its gateway steps beside a running load
    // balancer: they act when created, this once (components/apiServer.ts).
    const drainOnCreate = (await lastOutput<string>("apiUrl")) !== undefined && (await lastOutput<string>("apiServerDrain")) === undefined;
    // Membership: who joins, who leaves, in what order; a change that could lose quorum is refused here,
    // before any resource.
    const membership = planMembership(config, await lastOutput<MembershipRecord>("etcdMembership"), previousMarkers);
    // A CA does not roll: pkiDir's must be the one the cluster runs with (components/pki.ts).
    const caProblem = caChangeProblem(config, await lastOutput<string>("caCert"), membership.newCluster);
    if (caProblem !== undefined) {
        throw refusal(`refused before any change:\n  - ${caProblem}`);
    }

    // Drift: every host is probed once, over one SSH session, once the program is constructed (below, at the
    // end); no resource is registered before, and none at all when a host cannot be probed or a preflight
    // check refuses (components/preflight.ts: the version skew policy, a port held by another program; in
    // preview too).
    const checked = probed().then(facts => refuseByPreflight(config, config.nodes, facts));
    holdResourcesUntil(checked);
    usePreviousMarkers(Promise.resolve(previousMarkers));
    // Each drift-aware step's marker, the next run's previous one. When the probes or the version skew policy
    // refuse, it fails at once, and with it the program (the error is reported once, from here).
    const markersOnceChecked = checked.then(() => allDriftMarkers());
    markersOnceChecked.catch(() => undefined);

    // Chapter 4's certificates, keys, kubeconfigs and encryption config.
    const pki = clusterPki(config);

    // Preflight: read-only checks on every control node (the version skew policy) before any host changes.
    const preflight = new Preflight("preflight", { config, nodes: controlNodes });

    // No data lost (components/backup.ts): before any change that restarts, adds or removes an etcd member, a
    // snapshot of etcd is taken where pulumi runs, and every etcd step waits for it, so a failed snapshot stops
    // the change before anything on a host changes; an up that changes nothing takes none. With restoreFrom (a
    // new stack), the snapshot is copied to every node and each member's data dir is restored from it. A drift
    // repair of a member's service restarts it too: a snapshot first.
    const backup = new EtcdBackup("etcd-backup-before-change", {
        config, ssh, when: "change",
        fingerprint: withDriftRepairs(etcdMembersFingerprint(config, pki, membership.joins),
            config.nodes.map(n => `etcd-${n.name}-service`)),
    }, { dependsOn: [preflight] });
    const restore = restoreSpec(config);
    const restoreUpload = restore && new EtcdRestoreUpload("etcd-restore",
        { config, ssh, restore, done: !membership.newCluster }, { dependsOn: [preflight, backup] });

    // Nodes that leave: once the load balancer has drained them, their dead etcd members (all of them, when
    // nodes join in the same up) leave the cluster before any member joins or restarts; the others leave once
    // the API servers have rolled (below); everything on them is then deleted, as destroy deletes it.
    const leave = (name: string, which: DepartureWhich, leaving: Machine[], after: pulumi.Resource[]) => new EtcdDepartures(name,
        { config, ssh, leaving, via: membership.kept[0] ?? config.nodes[0], which }, { dependsOn: [preflight, backup, ...after] });
    const departures = leave("etcd-departures", membership.joining.length > 0 ? "all" : "unhealthy", membership.leaving, []);

    // On an empty stack every daemon below is installed and started on all nodes at once: none runs yet, so
    // nothing can restart out of turn. On a deployed stack a change (a flag, a version, a certificate, a join)
    // reaches one node at a time, each once the one before it is back (components/remote/rolling.ts).
    const inTurn = { allAtOnce: membership.newCluster };

    // Installing etcd: every member starts at once (a member only reports ready once a quorum is up), then
    // one gate waits until all of them are healthy. A change restarts one member at a time, each once the
    // cluster is healthy with the one before it back: quorum is never lost. A leader hands its leadership to
    // the member before it first, so a roll changes leaders as seldom as it can. Nodes that join come first,
    // one at a time, each added as a learner and promoted once caught up; the kept members roll after them.
    // A leader hands its leadership to the node before it in `nodes` (the member that restarted just before
    // it, in a roll without joins): named the same in every run, so the step does not change with the order.
    const byName = new Map(controlNodes.map(host => [host.name, host]));
    const members = oneAtATime(membership.order.map(n => byName.get(n.name)!), (host, previous: EtcdMember | undefined) =>
        new EtcdMember(`etcd-${host.name}`, {
            // A node that joins later starts empty and takes the cluster's data from the others.
            config, host, pki, rollAfter: previous?.service, restore: membership.joins[host.name].state === "new" ? restore : undefined,
            handOffTo: config.nodes[config.nodes.findIndex(n => n.name === host.name) - 1]?.name,
            join: membership.joins[host.name], joiner: joinerOf(host, membership.joins[host.name]),
        }, { dependsOn: [preflight, backup, departures, ...(restoreUpload ? [restoreUpload] : [])] }), inTurn);
    const etcdMembers = controlNodes.map(host => members.find(m => m.memberName === host.name)!);
    const etcd = new EtcdClusterHealth("etcd-cluster", { config, host: controlNodes[0], members: etcdMembers },
        { dependsOn: etcdMembers });
    // destroy deletes this before the members it depends on, while etcd still runs: its delete takes the snapshot.
    new EtcdBackup("etcd-backup-before-destroy", { config, ssh, when: "destroy" }, { dependsOn: [etcd, ...etcdMembers] });

    // Installing kube-apiserver, after etcd (the version skew policy's order). A change restarts one API
    // server at a time, each taken out of the load balancer first and back in before the next, so the VIP
    // keeps answering.
    const apiServers = oneAtATime(controlNodes, (host, previous: ApiServer | undefined) =>
        new ApiServer(`kube-apiserver-${host.name}`, { config, host, gateway, ssh, pki, rollAfter: previous?.rolled, drainOnCreate },
            { dependsOn: [etcd] }), inTurn);

    // The healthy members of nodes that leave, once no API server uses them.
    leave("etcd-departures-after-roll", "rest", membership.joining.length > 0 ? [] : membership.leaving,
        [etcd, ...apiServers.map(api => api.rolled)]);

    // The Kubernetes API load balancer: the VIP on every control node's lo, IPVS + ldirectord on the gateway,
    // installed alongside etcd and the API servers; its gates wait until it serves from every API server. A
    // node that leaves is drained first (the etcd departures above wait for that); one that joins is added to
    // ldirectord.cf once its API server answers. On a deployed stack ldirectord.cf changes only once the API
    // servers' roll is over (its reload would put the one a roll took out back in); an empty stack rolls nothing.
    const loadBalancer = new IpvsLoadBalancer("api-load-balancer", {
        config, nodes: controlNodes, gateway, ssh, pki, apiServers, leaving: membership.leaving,
        joiningApiServers: apiServers.filter(api => membership.joining.some(j => j.name === api.node)).map(api => api.daemon.ready),
        rolls: membership.newCluster ? [] : apiServers.map(api => api.rolled),
        apiServerFingerprints: apiServers.map(api => api.daemon.fingerprint),
    }, { dependsOn: [preflight] });

    // The remaining control plane components, through the API at the VIP's name, which on a control node is
    // its own API server (the VIP is on its lo): installed alongside the rest, started (and restarted for an
    // upgrade) only once every API server is (the version skew policy's order) and the node holds the VIP. They
    // do not wait for the gateway.
    const api = (i: number) => [...apiServers, loadBalancer.nodeVips[i]];
    const controllerManagers = oneAtATime(controlNodes, (host, previous: ControllerManager | undefined, i) =>
        new ControllerManager(`kube-controller-manager-${host.name}`,
            { config, host, pki, rollAfter: previous?.daemon.service, api: api(i) }, { dependsOn: [preflight] }), inTurn);
    const schedulers = oneAtATime(controlNodes, (host, previous: Scheduler | undefined, i) =>
        new Scheduler(`kube-scheduler-${host.name}`,
            { config, host, pki, rollAfter: previous?.daemon.service, api: api(i) }, { dependsOn: [preflight] }), inTurn);

    // Every step has said what it observes: probe each host once, all together.
    void startProbes();

    return {
        // The first output: it fails when the probes or the version skew policy refuse.
        driftMarkers: markersOnceChecked,
        // What this run's probes read of the binaries, with each file's identity: the next run's known sums.
        probeSums: probed().then(knownSums, () => ({})),
        // And the lines the binaries' --version printed, with each binary's identity.
        probeVersions: probed().then(knownVersions, () => ({})),
        // Who the etcd members are and how each first started: the next run plans membership changes from it.
        etcdMembership: membership.record,
        apiUrl: apiServerUrl(config),
        // Every API server restart is drained through the gateway (its steps exist): read back by the next run.
        apiServerDrain: "gateway",
        vipUrl: loadBalancer.url,
        etcdEndpoints: etcdMembers.map(member => member.clientUrl),
        caCert: pki.caCert,
        adminKubeconfig: pki.adminKubeconfig,
        // A secret: keep it (pulumi config set --secret encryptionKey) to restore a snapshot's Secrets after destroy.
        encryptionKey: pki.encryptionKey,
        controlPlane: {
            etcd: etcdMembers.length,
            apiServers: apiServers.length,
            controllerManagers: controllerManagers.length,
            schedulers: schedulers.length,
        },
    };
};
