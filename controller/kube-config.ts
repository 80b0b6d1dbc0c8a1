/**
 * The controller's connection to the API server. client-node gives every
 * request a new undici Agent, so every call (each token review, status write,
 * list) opened its own TLS connection with its own secure context: with a
 * fleet reporting, thousands of them, and the controller's resident memory
 * grew with them. This KubeConfig hands every request the same Agent, so
 * calls share a pool of keep-alive connections. Credentials are still applied
 * per request (a rotated service-account token is read as before).
 */
import { KubeConfig, type RequestContext } from '@kubernetes/client-node';

export class SharedConnectionKubeConfig extends KubeConfig {
  private dispatcher: ReturnType<RequestContext['getDispatcher']>;

  override async applySecurityAuthentication(ctx: RequestContext): Promise<void> {
    await super.applySecurityAuthentication(ctx);
    const own = ctx.getDispatcher();
    if (own) ctx.setDispatcher((this.dispatcher ??= own));
  }
}
