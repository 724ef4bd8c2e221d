# authgate container image (Node 24, the current LTS line). Build: docker build -t authgate .
# Run:   docker run -p 8080:8080 --env-file .env -v authgate-data:/app/data authgate
# Production needs NODE_ENV=production (the default here), UPSTREAM_URL, SECRET_KEY and
# HEADER_SIGNING_SECRET (or their _FILE variants from Docker/Kubernetes secrets), and the sign-in
# choice: LOCAL_AUTH=password, or AUTH_METHOD=oidc with the OIDC_* settings (without it the container
# refuses to start: name-only sign-in would let anyone in). See docs/DEPLOY.md.
# HOST=0.0.0.0 below: inside the container every interface, so the published port reaches it.
# deploy/container/check.sh builds and runs this image for real (CI does, after the tests).

# Production dependencies. Only the package files come in (the root's and the workspace package
# @authgate/verify's, which npm ci needs to link it), so a change under src/ reuses this stage and
# better-sqlite3 (a native module) is not compiled again.
FROM node:24-bookworm-slim AS deps
# better-sqlite3 compiles from source when no prebuilt binary matches or none can be downloaded
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
# node-gyp builds against the headers this image ships with its Node (/usr/local/include/node): no
# download, works offline. node-gyp reads the variable itself (npm 11 warns it is not npm's own setting).
ENV npm_config_nodedir=/usr/local
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/verify/package.json ./packages/verify/
# --ignore-scripts: the package's own `prepare` (the build) needs the sources, which come later;
# better-sqlite3's install script runs on its own. Its sources and build output (~27 MB) go: only
# the compiled build/Release/better_sqlite3.node and its JavaScript are needed, as the last line checks.
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund \
 && npm rebuild better-sqlite3 \
 && cd node_modules/better-sqlite3 \
 && mv build/Release/better_sqlite3.node . \
 && rm -rf build deps src binding.gyp \
 && mkdir -p build/Release && mv better_sqlite3.node build/Release/ \
 && cd /app && node -e "require('better-sqlite3')(':memory:').prepare('select 1').get()"

# The compiled JavaScript (TypeScript and the other dev dependencies stay in this stage): `npm run
# build` compiles packages/verify first (the gateway's authgate/verify re-exports it), then the gateway.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
COPY packages/verify/package.json ./packages/verify/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY packages/verify/tsconfig.json ./packages/verify/
COPY packages/verify/src ./packages/verify/src
COPY migrations ./migrations
COPY src ./src
RUN npm run build

FROM node:24-bookworm-slim
# DATABASE_URL is not set here: the default, sqlite:./data/authgate.db, is /app/data/authgate.db in
# this WORKDIR, and an image value would clash with a DATABASE_URL_FILE given at run time.
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0
WORKDIR /app
COPY package.json ./
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# node_modules/@authgate/verify is npm's link to the workspace package: its manifest and build.
COPY packages/verify/package.json ./packages/verify/
COPY --from=build /app/packages/verify/dist ./packages/verify/dist
# The TimeTracker integration (Python; TimeTracker reads it, the gateway does not): deploy/kubernetes
# copies it from here into TimeTracker's container, so the verifier comes with the gateway that signs.
COPY integrations/flask/authgate_verify.py integrations/flask/flask_login_recipe.py \
     integrations/timetracker/authgate_timetracker.py ./integrations/timetracker/
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
EXPOSE 8080
# Asks /_authgate/healthz where the gateway listens, whatever HOST is set to (src/ops/healthcheck.ts)
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s CMD ["node", "dist/src/ops/healthcheck.js"]
CMD ["node", "dist/src/main.js"]
