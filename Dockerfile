# A drop-in for seafileltd/notification-server: same port, environment, log file and command line
# (docs/deploy/docker/README.md). BASE_IMAGE: a Debian image with Node.js at /usr/local/bin,
# npm, and a `node` user, as the official node images are; a test builds from a local one.
ARG BASE_IMAGE=node:24-bookworm-slim

# The part of package.json that npm ci reads: a change to anything else (the scripts) keeps
# the npm ci layer below, and with it the minutes of compiling better-sqlite3.
FROM ${BASE_IMAGE} AS dependencies
COPY package.json /manifest/
RUN node -e "const p = require('/manifest/package.json'); const keep = {}; \
      for (const k of ['name', 'version', 'dependencies', 'devDependencies', 'optionalDependencies', 'overrides', 'allowScripts']) \
        if (p[k] !== undefined) keep[k] = p[k]; \
      require('fs').writeFileSync('/manifest/dependencies.json', JSON.stringify(keep, null, 2));"

FROM ${BASE_IMAGE} AS build
# better-sqlite3 (SQLite group databases) is compiled from source (.npmrc): it needs a toolchain.
RUN if ! command -v g++ >/dev/null || ! command -v make >/dev/null || ! command -v python3 >/dev/null; then \
      apt-get update && apt-get install -y --no-install-recommends g++ make python3 && rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /build
COPY --from=dependencies /manifest/dependencies.json ./package.json
COPY package-lock.json .npmrc ./
# With the image's own Node.js headers, node-gyp downloads none.
RUN if [ -f /usr/local/include/node/node.h ]; then export npm_config_nodedir=/usr/local; fi; \
    npm ci --no-audit --no-fund
COPY package.json tsconfig.json ./
COPY src ./src
COPY bin ./bin
RUN npx tsc -p tsconfig.json \
 && npm prune --omit=dev --no-audit --no-fund \
 && cd node_modules/better-sqlite3 \
 && find build -mindepth 1 -not -path build/Release -not -path build/Release/better_sqlite3.node -delete \
 && rm -rf deps src

FROM ${BASE_IMAGE}
WORKDIR /opt/notification-server
COPY --from=build /build/package.json ./
COPY --from=build /build/bin ./bin
COPY --from=build /build/node_modules ./node_modules
COPY --from=build /build/dist/src ./dist/src
COPY docker/entrypoint.sh /usr/local/bin/notification-server-entrypoint
# The stock image's paths: its command line runs /opt/seafile/notification-server -c /opt/seafile.
RUN ln -s /opt/notification-server/bin/notification-server.js /usr/local/bin/notification-server \
 && mkdir -p /opt/seafile /shared/seafile/logs \
 && ln -s /opt/notification-server/bin/notification-server.js /opt/seafile/notification-server \
 && chown node:node /shared/seafile/logs
# The stock server's log lines, as in a Seafile slot (docs/configuration.md).
ENV NOTIFICATION_SERVER_LOG_FORMAT=text
EXPOSE 8083
# Asks where the server listens: loopback when it listens on every address, else that address.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["node", "-e", "const h = (process.env.NOTIFICATION_SERVER_HOST || '').trim(); const host = ['', '0.0.0.0', '::'].includes(h) ? '127.0.0.1' : h.includes(':') ? `[${h}]` : h; fetch(`http://${host}:${process.env.NOTIFICATION_SERVER_PORT || 8083}/ping`).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Starts as root only to hand the log file to `node`, then runs the server as `node` (entrypoint.sh).
ENTRYPOINT ["notification-server-entrypoint"]
CMD ["notification-server", "-c", "/opt/seafile", "-l", "/shared/seafile/logs/notification-server.log"]
