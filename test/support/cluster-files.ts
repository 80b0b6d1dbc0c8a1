/**
 * The configuration files of the e2e cluster's node (test/support/cluster.ts),
 * one function each: containerd's, the CNI network's, the kubelet's,
 * kube-proxy's and CoreDNS's. The settings these machines need are explained
 * in ../shared/notes/real-cluster.md; each is marked where it is set.
 */

export interface NodeLayout {
  /** The cluster's own folder: state, sockets, configs and logs of every part. */
  dir: string;
  nodeIp: string;
  nodeName: string;
  podCidr: string;
  serviceCidr: string;
  pauseImage: string;
  cniBin: string;
}

export const containerdSocket = (l: NodeLayout) => `${l.dir}/containerd/containerd.sock`;

export function containerdConfig(l: NodeLayout): string {
  return `version = 3
root = "${l.dir}/containerd/root"
state = "${l.dir}/containerd/state"
[grpc]
  address = "${containerdSocket(l)}"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "overlayfs"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "${l.pauseImage}"
[plugins."io.containerd.cri.v1.runtime"]
  # The VM's capability bounding set lacks CAP_SYS_RESOURCE: without this every sandbox fails in runc.
  restrict_oom_score_adj = true
  disable_apparmor = true
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["${l.cniBin}"]
    conf_dir = "${l.dir}/cni"
  [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
      SystemdCgroup = false
`;
}

/** A bridge with masquerading and hairpin (a pod reaches itself through its Service), host-local addresses, and port mapping. */
export function cniConfig(l: NodeLayout): string {
  return JSON.stringify({
    cniVersion: '1.0.0',
    name: 'breakwater-e2e',
    plugins: [
      { type: 'bridge', bridge: 'bwe2e0', isGateway: true, ipMasq: true, hairpinMode: true, ipam: { type: 'host-local', ranges: [[{ subnet: l.podCidr }]], routes: [{ dst: '0.0.0.0/0' }] } },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  });
}

export function kubeletConfig(l: NodeLayout): string {
  return `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: ${l.nodeIp}
# 1.37 refuses cgroup v1 unless told; this kernel has v1 hierarchies.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix://${containerdSocket(l)}
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: ${l.dir}/pki/ca.crt}
authorization: {mode: Webhook}
tlsCertFile: ${l.dir}/pki/kubelet-serving.crt
tlsPrivateKeyFile: ${l.dir}/pki/kubelet-serving.key
# CoreDNS runs on the node's address (corefile below).
clusterDNS: [${l.nodeIp}]
clusterDomain: cluster.local
podCIDR: ${l.podCidr}
resolvConf: /etc/resolv.conf
# A busy disk must not evict the test's pods, nor collect its imported images.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
`;
}

export function kubeProxyConfig(l: NodeLayout): string {
  return `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clusterCIDR: ${l.podCidr}
hostnameOverride: ${l.nodeName}
clientConnection: {kubeconfig: ${l.dir}/kube-proxy.kubeconfig}
conntrack: {maxPerCore: 0}
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
`;
}

/** CoreDNS on the node's address (port 53), serving the cluster's names from the API server; the pods' resolver. */
export function corefile(l: NodeLayout): string {
  return `.:53 {
    bind ${l.nodeIp}
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig ${l.dir}/admin.kubeconfig
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . /etc/resolv.conf
    cache 5
}
`;
}
