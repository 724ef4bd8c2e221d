# CI's stand-in for TimeTracker's image, which CI cannot pull: Flask from Debian on the locally made
# base (deploy/container/check.sh `base`; the only base image there is), to run the project's demo
# upstream, integrations/flask/demo_app.py, which refuses any request whose identity headers do not
# verify. docker-compose.ci.yml mounts the script beside the integration files and runs it.
FROM docker.io/library/node:24-bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3-flask && rm -rf /var/lib/apt/lists/*
USER 1000
