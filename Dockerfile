# Serves Tailscope on port 8501. Not built in this project's CI (no Docker engine there).
#   docker build -t tailscope .
#   docker run -p 127.0.0.1:8501:8501 -v $PWD/indexes:/app/indexes tailscope
# It binds 0.0.0.0 inside the container only; publish the port on loopback and put a proxy
# with authentication in front to share it (docs/operations.md).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    HF_HUB_OFFLINE=0 \
    TAILSCOPE_HOME=/app/indexes

# opencv-python (pulled in by rapidocr for OCR) links libGL.so.1 and glib, which the slim
# image lacks; scripts/ldd_check.py then fails the build if any extension still misses a library.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 10001 tailscope
WORKDIR /app

COPY requirements.txt constraints.txt ./
RUN pip install -r requirements.txt -c constraints.txt
COPY scripts/ldd_check.py scripts/
RUN python scripts/ldd_check.py

COPY --chown=tailscope:tailscope . .
RUN mkdir -p /app/indexes && chown tailscope:tailscope /app/indexes
USER tailscope

EXPOSE 8501
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).status == 200 else 1)"

# Build the demo on first start (a mounted indexes/ keeps it), then serve.
CMD ["sh", "-c", "python -m backend demo --if-missing && exec streamlit run app.py --server.address 0.0.0.0 --server.port 8501 --server.headless true --server.fileWatcherType none"]
