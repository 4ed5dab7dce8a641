# The gateway as a container image: `docker build -t cortex-gateway .` (or `podman build`).
# docker-compose.yml beside this file runs it with PostgreSQL.
ARG PYTHON_IMAGE=python:3.11-slim

# Build the wheel apart, so that the final image holds no build tools or sources.
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY providers ./providers
COPY migrations ./migrations
RUN python -m pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/cortex-gateway \
        --create-home cortex
COPY --from=build /wheels /wheels
RUN python -m pip install --no-cache-dir --no-index --find-links /wheels cortex-gateway \
    && rm -rf /wheels
USER cortex
WORKDIR /var/lib/cortex-gateway
ENV PYTHONUNBUFFERED=1 \
    CORTEX_HOST=0.0.0.0 \
    CORTEX_PORT=8000 \
    CORTEX_DATA_DIR=/var/lib/cortex-gateway
EXPOSE 8000
# Ready means: the database answers, its schema is at this version's head, the engine runs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${CORTEX_PORT}/readyz', timeout=4)"
# `serve` applies the migrations before it listens (one process at a time on a database).
ENTRYPOINT ["cortex-gateway"]
CMD ["serve"]
