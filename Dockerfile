# The Ticket Triage API image: `docker compose up` (or `make up`) builds it. CPU only.
# Models are not baked in: docker-compose.yml mounts ./models (trained on the host by `make demo`/`triage
# train`) read-only at /app/models, so a newly promoted model is picked up without rebuilding the image.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HF_HUB_OFFLINE=1 \
    TRANSFORMERS_OFFLINE=1

# LightGBM and XGBoost load the system OpenMP runtime, which the slim image lacks.
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# torch first, by exact version, from the CPU-only index: from the default index pip would pull several GB of
# CUDA packages. The 2.13.0+cpu build then satisfies the torch==2.13.0 pin below.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0

# The pinned dependencies, read from pyproject.toml, in a layer of their own: a code change does not
# reinstall them.
COPY pyproject.toml README.md ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The settings' folders default to models/ and var/ under the working directory, /app here. The package's
# default feature config is a link to features/features.toml, so both folders are copied.
COPY features ./features
COPY src ./src
RUN pip install --no-deps -e . \
 && useradd --create-home --uid 10001 triage \
 && mkdir -p /app/models /app/var \
 && chown triage:triage /app/var

# var/ (API keys, ONNX encoder export, spool) is a volume owned by this user; models are read-only.
USER triage
VOLUME ["/app/var"]
EXPOSE 8000

# --create-keys: on the first start, without TRIAGE_API_KEYS, keys are written to var/api_keys.json and shown
# once in var/api_keys.first-run.txt (`docker compose exec api cat var/api_keys.first-run.txt`).
CMD ["triage", "serve", "--model", "/app/models", "--host", "0.0.0.0", "--port", "8000", "--create-keys"]
