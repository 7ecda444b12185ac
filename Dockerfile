# nemo-bot: Telegram + Discord bots for NemoVideo, in one process.
#   docker build -t nemo-bot .
#   docker run -d --env-file .env -v nemo-data:/data nemo-bot
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NEMO_BOT_DB=/data/nemo-bot.db \
    NEMO_HEALTH_HOST=0.0.0.0 \
    NEMO_HEALTH_PORT=8080

WORKDIR /app
COPY pyproject.toml README.md ./
COPY bots ./bots
COPY core ./core
COPY storage ./storage
COPY simulator ./simulator
RUN pip install . \
    && useradd --create-home --uid 10001 nemo \
    && mkdir -p /data \
    && chown nemo:nemo /data

USER nemo
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
CMD ["nemo-bot", "run"]
