# One image for every subcommand: `breakwater sidecar`, `controller` and `mock-upstream`.
#
# Bases. The runtime base is distroless Node 24 on Debian: glibc, where Node's official builds are
# tier 1 (Alpine's musl builds are experimental), and no shell, package manager or npm, so a sidecar in
# every pod carries the least to attack and to patch; a Debian slim base would add a shell and apt.
# Both bases are build arguments: scripts/build-image.sh passes bases assembled on the machine (Node 24
# from the npm registry) where no public registry is reachable.
ARG BUILD_BASE=node:24-bookworm-slim
ARG RUNTIME_BASE=gcr.io/distroless/nodejs24-debian12:nonroot

# Build stage: compile TypeScript; keep production dependencies only.
FROM ${BUILD_BASE} AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json cli.ts ./
COPY cli cli
COPY api api
COPY lib lib
COPY sidecar sidecar
COPY controller controller
RUN npx tsc -p tsconfig.build.json && npm prune --omit=dev --ignore-scripts
# Type declarations, source maps and docs are never read at run time: half of node_modules (~46 MB).
RUN find node_modules -type f \( -name '*.d.ts' -o -name '*.d.mts' -o -name '*.d.cts' -o -name '*.map' -o -name '*.md' \) -exec rm -f {} +

# Runtime stage: Node 24 LTS, no npm cache, no sources, no dev tools, non-root.
FROM ${RUNTIME_BASE}
WORKDIR /app
ENV NODE_ENV=production
# Heap sized for a sidecar (bench/ runs the sidecar with these same flags, read from here):
# a small young generation (2 MiB semi-spaces) keeps resident memory low at idle (~1.6 MiB more
# anonymous memory than 1 MiB, ~5 MiB less than 4). At 1 MiB a stream's per-event objects, which live
# from one event to the next, outlive the frequent scavenges and cost ~10-23% more CPU per relayed event
# (300 and 500 streams); plain requests cost the same at either size. Old space leaves headroom for large prompts.
ENV NODE_OPTIONS="--max-semi-space-size=2 --max-old-space-size=128"
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
USER 65532:65532
EXPOSE 15001 15021
# The chart's controller runs this same command with flags after node (controller.nodeFlags).
ENTRYPOINT ["/nodejs/bin/node", "/app/dist/cli.js"]
CMD ["sidecar", "--policy", "/etc/breakwater/policy.yaml", "--listen", "127.0.0.1:15001", "--admin", "0.0.0.0:15021"]
