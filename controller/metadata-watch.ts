/**
 * List and watch a resource as metadata only (PartialObjectMetadata, as
 * controller-runtime's metadata informers do): the API server sends each
 * object's metadata and nothing else, so a fleet of pods costs the
 * controller their names, labels and annotations, not their specs and
 * statuses. The informer machinery stays client-node's (ListWatch); only the
 * Accept header of its list and watch requests changes.
 */
import { HttpMethod, RequestContext, Watch, type KubeConfig, type KubernetesListObject, type KubernetesObject, type V1ObjectMeta } from '@kubernetes/client-node';
import { fetch } from 'undici';

/** An object as the API server sends it to a metadata-only client. */
export interface ObjectMetadata extends KubernetesObject {
  metadata: V1ObjectMeta;
}

const AS_METADATA = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1';
const AS_METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1';

/** The cluster's URL and credentials, with every request asking for `accept`. */
function asking(kc: KubeConfig, accept: string): KubeConfig {
  return {
    getCurrentCluster: () => kc.getCurrentCluster(),
    async applySecurityAuthentication(ctx: RequestContext) {
      await kc.applySecurityAuthentication(ctx);
      ctx.setHeaderParam('Accept', accept);
    },
  } as KubeConfig;
}

/** A watch whose events carry metadata only. */
export function metadataWatch(kc: KubeConfig): Watch {
  return new Watch(asking(kc, AS_METADATA));
}

/** Lists `path` as metadata only. */
export function metadataList(kc: KubeConfig, path: string, query: Record<string, string>): () => Promise<KubernetesListObject<ObjectMetadata>> {
  const list = asking(kc, AS_METADATA_LIST);
  return async () => {
    const url = new URL(kc.getCurrentCluster()!.server + path);
    for (const [key, value] of Object.entries(query)) url.searchParams.set(key, value);
    const ctx = new RequestContext(url.toString(), HttpMethod.GET);
    await list.applySecurityAuthentication(ctx);
    const res = await fetch(url, { headers: ctx.getHeaders(), dispatcher: ctx.getDispatcher() as never, signal: AbortSignal.timeout(60_000) });
    if (res.status !== 200) throw new Error(`listing ${path} as metadata: ${res.status} ${(await res.text()).slice(0, 200)}`);
    return (await res.json()) as KubernetesListObject<ObjectMetadata>;
  };
}
