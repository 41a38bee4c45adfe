# The ON-LSTM parsing service on CPU: the package and its bundled model, served by uvicorn.
#   docker build -t onlstm-parser .
#   docker run --rm -p 8000:8000 onlstm-parser      # then open http://localhost:8000/
# Settings are ONLSTM_* environment variables (see service/settings.py), e.g.
#   docker run -e ONLSTM_THREADS=4 -e ONLSTM_MAX_SENTENCES=64 ...
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A C compiler: the fused recurrence kernels (models/network/csrc) are compiled when the model is first
# loaded, for the CPU the container runs on (-march=native), so they cannot be built here.
# Without a compiler the pure PyTorch path runs: a one-sentence parse about 20 ms instead of 4 (2 cores).
# Not pinned to exact versions: Debian's security updates replace them, and a pin would break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*

# CPU-only torch from PyTorch's CPU index (the default wheel would pull in CUDA, gigabytes), then
# the other runtime dependencies, pinned, in a layer of their own so code changes do not reinstall them.
RUN pip install --no-cache-dir torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu \
    && pip install --no-cache-dir \
        numpy==2.4.6 \
        nltk==3.10.4 \
        regex==2026.12.2 \
        safetensors==0.8.0 \
        tqdm==4.70.1 \
        fastapi==0.165.0 \
        starlette==1.10.0 \
        pydantic==2.14.4 \
        pydantic-settings==2.16.3 \
        uvicorn==0.54.0 \
        prometheus-client==0.26.0 \
        fastapi-offline==1.7.7 \
        jieba==0.42.1 \
        opencc-python-reimplemented==0.1.7

WORKDIR /src
COPY pyproject.toml README.md ./
COPY build_backend ./build_backend
COPY models ./models
COPY training ./training
COPY service ./service
COPY onlstm ./onlstm
# A regular (non-editable) install: the static page and the bundled model travel as package data.
RUN pip install --no-cache-dir --no-deps . \
    && rm -rf /src/build /src/*.egg-info

RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin onlstm
USER 10001
# Run from a folder without the sources, so the installed package is what runs.
WORKDIR /home/onlstm

EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/ready', timeout=4)"]
CMD ["onlstm", "serve", "--host", "0.0.0.0", "--port", "8000"]
