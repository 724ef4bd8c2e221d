# authgate container image. Build: docker build -t authgate .
# Run:   docker run -p 8080:8080 --env-file .env -v authgate-data:/app/data authgate
# Production needs NODE_ENV=production (the default here), UPSTREAM_URL, SECRET_KEY and
# HEADER_SIGNING_SECRET (or their _FILE variants from Docker/Kubernetes secrets), and the sign-in
# choice: LOCAL_AUTH=password, or AUTH_METHOD=oidc with the OIDC_* settings (without it the container
# refuses to start: name-only sign-in would let anyone in). See docs/DEPLOY.md.
# HOST=0.0.0.0 below: inside the container every interface, so the published port reaches it.

FROM node:20-bookworm-slim AS build
WORKDIR /app
# better-sqlite3 builds from source when no prebuilt binary matches
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
COPY package.json package-lock.json ./
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY migrations ./migrations
RUN npm ci --no-audit --no-fund && npm prune --omit=dev

FROM node:20-bookworm-slim
ENV NODE_ENV=production PORT=8080 HOST=0.0.0.0 DATABASE_URL=sqlite:/app/data/authgate.db
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
RUN mkdir -p /app/data && chown node:node /app/data
USER node
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/_authgate/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
CMD ["node", "dist/src/main.js"]
