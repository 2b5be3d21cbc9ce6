# citeline API image. Models are not baked in: the `models` service of docker-compose.yml
# prepares them once into a volume (it needs ~14.5 GB of RAM for a few minutes).
FROM python:3.11-slim-bookworm

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
RUN pip install . \
    && pip install --no-deps optimum-intel==2.2.0 \
    && mkdir -p /var/lib/citeline && chown citeline /var/lib/citeline

USER citeline
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s CMD curl -fsS http://127.0.0.1:8000/readyz || exit 1
CMD ["citeline", "serve"]
