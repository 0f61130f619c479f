// Chapter 5 of "Kubernetes the hard way", as a Pulumi program: etcd, the API servers, the load balancer in
// front of them, then the controller managers and schedulers, on the machines the stack config names.
import { ApiServer } from "./components/apiServer";
import { ControllerManager } from "./components/controllerManager";
import { EtcdClusterHealth, EtcdMember } from "./components/etcd";
import { IpvsLoadBalancer } from "./components/loadBalancer";
import { apiServerUrl, clusterPki } from "./components/pki";
import { hostFor } from "./components/remote/host";
import { Scheduler } from "./components/scheduler";
import { loadStack } from "./components/stack";

// Config is validated before any resource exists.
const { config, ssh } = loadStack();
const controlNodes = config.nodes.map(node => hostFor(node, ssh));
const gateway = hostFor(config.gateway, ssh);

// Chapter 4's certificates, keys, kubeconfigs and encryption config.
const pki = clusterPki(config);

// Installing etcd: every member starts at once (a member only reports ready once a quorum is up), then
// one gate waits until all of them are healthy.
const etcdMembers = controlNodes.map(host => new EtcdMember(`etcd-${host.name}`, { config, host, pki }));
const etcd = new EtcdClusterHealth("etcd-cluster", { config, host: controlNodes[0], members: etcdMembers },
    { dependsOn: etcdMembers });

// Installing kube-apiserver: one node after another, so a changed flag never takes every API server down
// at once and the VIP keeps answering.
const apiServers: ApiServer[] = [];
for (const host of controlNodes) {
    const previous = apiServers[apiServers.length - 1];
    apiServers.push(new ApiServer(`kube-apiserver-${host.name}`, { config, host, pki },
        { dependsOn: previous ? [etcd, previous] : [etcd] }));
}

// The Kubernetes API load balancer: the VIP on every control node's lo, IPVS + ldirectord on the gateway.
const loadBalancer = new IpvsLoadBalancer("api-load-balancer", {
    config, nodes: controlNodes, gateway, pki,
    apiServerFingerprints: apiServers.map(api => api.daemon.fingerprint),
}, { dependsOn: apiServers });

// The remaining control plane components, through the API behind the VIP.
const controllerManagers = controlNodes.map((host, i) => new ControllerManager(`kube-controller-manager-${host.name}`,
    { config, host, pki }, { dependsOn: [loadBalancer, apiServers[i]] }));
const schedulers = controlNodes.map((host, i) => new Scheduler(`kube-scheduler-${host.name}`,
    { config, host, pki }, { dependsOn: [loadBalancer, apiServers[i]] }));

export const apiUrl = apiServerUrl(config);
export const vipUrl = loadBalancer.url;
export const etcdEndpoints = etcdMembers.map(member => member.clientUrl);
export const caCert = pki.caCert;
export const adminKubeconfig = pki.adminKubeconfig;
export const controlPlane = {
    etcd: etcdMembers.length,
    apiServers: apiServers.length,
    controllerManagers: controllerManagers.length,
    schedulers: schedulers.length,
};
