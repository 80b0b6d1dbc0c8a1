/**
 * The real-cluster e2e's fleet budget (issue 29): a Redis in the cluster (an
 * image of Debian's redis-server, scripts/build-redis-image.sh) with its
 * password in a Secret labelled for Breakwater, a policy whose budget the
 * fleet of its pods shares through it, and an app of several replicas that
 * spends it. The test judges what the replicas billed together by what the
 * app saw: every plain answer says the tokens it used.
 */
export const REDIS_IMAGE = 'localhost/breakwater-e2e/redis:7';
export const REDIS_ARCHIVE = '/var/tmp/breakwater-e2e-redis.tar';
/** The fleet's tokens per hour. */
export const FLEET_TOKENS = 3000;
export const FLEET_REPLICAS = 3;

export const redis = (password: string) => `apiVersion: v1
kind: Secret
metadata: {name: redis, namespace: e2e-shop, labels: {breakwater.dev/credential: "true"}}
stringData: {password: ${password}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: redis, namespace: e2e-shop}
spec:
  replicas: 1
  selector: {matchLabels: {app: redis}}
  template:
    metadata: {labels: {app: redis, breakwater.dev/inject: "false"}}
    spec:
      containers:
        - name: redis
          image: ${REDIS_IMAGE}
          imagePullPolicy: Never
          env: [{name: REDIS_PASSWORD, valueFrom: {secretKeyRef: {name: redis, key: password}}}]
          args: [--bind, 0.0.0.0, --save, "", --appendonly, "no", --requirepass, $(REDIS_PASSWORD)]
          ports: [{containerPort: 6379}]
          readinessProbe: {tcpSocket: {port: 6379}, periodSeconds: 1}
---
apiVersion: v1
kind: Service
metadata: {name: redis, namespace: e2e-shop}
spec:
  selector: {app: redis}
  ports: [{port: 6379, targetPort: 6379}]
`;

/** The policy of the fleet's pods: one budget for all of them, kept in the Redis above. */
export const FLEET_POLICY = `apiVersion: breakwater.dev/v1alpha1
kind: ResiliencePolicy
metadata: {name: fleet, namespace: e2e-shop}
spec:
  podSelector: {matchLabels: {app: fleet}}
  sharedState: {redis: {url: "redis://redis.e2e-shop.svc.cluster.local:6379", secretRef: {name: redis, key: password}}}
  budget: {window: hour, tokens: ${FLEET_TOKENS}}
  upstreams:
    - name: openai
      url: http://model.e2e-shop.svc.cluster.local
      env: [OPENAI_BASE_URL]
`;

/** The app of the fleet: app-client.mjs's plain loop, on every replica, asking for at most 16 tokens (the mock answers with 6 words). */
export const fleetApp = (image: string, outcomes: string) => `apiVersion: apps/v1
kind: Deployment
metadata: {name: fleet, namespace: e2e-shop}
spec:
  replicas: ${FLEET_REPLICAS}
  selector: {matchLabels: {app: fleet}}
  template:
    metadata: {labels: {app: fleet}}
    spec:
      containers:
        - name: app
          image: ${image}
          command: [/nodejs/bin/node, /client/app-client.mjs]
          env: [{name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}, {name: APP_CALLS, value: plain}, {name: APP_MAX_TOKENS, value: "16"}]
          volumeMounts: [{name: client, mountPath: /client}, {name: outcomes, mountPath: /outcomes}]
      volumes:
        - {name: client, configMap: {name: app-client}}
        - {name: outcomes, hostPath: {path: ${outcomes}, type: Directory}}
`;
