# nemo-bot: Telegram + Discord bots for NemoVideo, in one process.
#   docker build -t nemo-bot .
#   docker run -d --env-file .env -v nemo-data:/data nemo-bot
# Any base with python3 (3.11+) and its venv module works in place of python:3.11-slim
# (`buildah bud --from <image>`); CI builds it on a plain Debian base that way.
FROM python:3.11-slim

# The bot lives in its own venv: the same steps work on python:3.11-slim and on a
# distribution's python3, whose system site-packages pip must not touch.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/nemo-bot \
    PATH=/opt/nemo-bot/bin:$PATH \
    NEMO_BOT_DB=/data/nemo-bot.db \
    NEMO_HEALTH_HOST=0.0.0.0 \
    NEMO_HEALTH_PORT=8080

WORKDIR /app
# requirements.lock*: every dependency pinned (dev tools included), used as constraints:
# the image gets the runtime dependencies only, at the locked versions.
COPY pyproject.toml README.md requirements.lock* ./
COPY bots ./bots
COPY core ./core
COPY storage ./storage
COPY simulator ./simulator
RUN python3 -m venv "$VIRTUAL_ENV" \
    && if [ -f requirements.lock ]; then pip install -c requirements.lock .; \
       else pip install .; fi \
    && useradd --create-home --uid 10001 nemo \
    && mkdir -p /data \
    && chown nemo:nemo /data

USER nemo
VOLUME ["/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=4)"
CMD ["nemo-bot", "run"]
