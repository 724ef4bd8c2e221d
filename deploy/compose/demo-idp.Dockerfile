# Development only: the demo OpenID Provider (scripts/demo/idp.ts, node-oidc-provider, a devDependency)
# for docker-compose.demo-idp.yml. Its accounts and passwords are public; never run it in production.
# Build context: the repository root (the override says so).
FROM node:24-bookworm-slim
WORKDIR /app
# The same first steps as the Dockerfile's build stage, so a builder with that stage cached reuses them.
COPY package.json package-lock.json ./
COPY packages/verify/package.json ./packages/verify/
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
COPY scripts/demo ./scripts/demo
USER node
EXPOSE 9400
CMD ["node", "--import", "tsx", "scripts/demo/idp-server.ts"]
