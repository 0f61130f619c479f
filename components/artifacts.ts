// Where binaries come from: the upstream release URLs the seed uses, or a mirror laid out like them (the
// mirror base URL replaces only the scheme and host), each with its optional expected sha256.
import { Artifact, ClusterConfig } from "./config";
import { BinarySpec } from "./remote/steps";

const UPSTREAM = {
    etcd: "https://github.com",
    kubernetes: "https://storage.googleapis.com",
};

function base(config: ClusterConfig, upstream: string): string {
    return config.mirrorUrl ? config.mirrorUrl.replace(/\/+$/, "") : upstream;
}

/** Where binaries go, as in the seed. */
export const BIN_DIR = "/usr/local/bin";

/** etcd's release tarball, unpacked: etcd, etcdctl and etcdutl (snapshot status and restore). */
export function etcdBinaries(config: ClusterConfig): BinarySpec {
    const release = `etcd-v${config.etcdVersion}-linux-${config.arch}`;
    return {
        url: `${base(config, UPSTREAM.etcd)}/etcd-io/etcd/releases/download/v${config.etcdVersion}/${release}.tar.gz`,
        sha256: config.sha256.etcd ?? "",
        archiveDir: release,
        binaries: ["etcd", "etcdctl", "etcdutl"],
        installDir: BIN_DIR,
    };
}

/** A Kubernetes server binary, downloaded as a single file. */
export function kubernetesBinary(config: ClusterConfig, name: Exclude<Artifact, "etcd">): BinarySpec {
    return {
        url: `${base(config, UPSTREAM.kubernetes)}/kubernetes-release/release/v${config.kubernetesVersion}` +
            `/bin/linux/${config.arch}/${name}`,
        sha256: config.sha256[name] ?? "",
        binaries: [name],
        installDir: BIN_DIR,
    };
}
