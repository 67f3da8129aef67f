# datamantri-alerts: `docker build -t datamantri-alerts .`, then `docker run --rm datamantri-alerts evaluate`.
# Settings come from the environment (ALERTS_DATABASE_URL, SMTP_*, SLACK_WEBHOOK_URL, ...): see README.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed, unprivileged user (uid 10001), so a Kubernetes runAsNonRoot check can verify it.
RUN groupadd --system --gid 10001 alerts \
    && useradd --system --uid 10001 --gid alerts --create-home --home-dir /home/alerts alerts

WORKDIR /src
COPY pyproject.toml README.md ./
COPY datamantri_alerts ./datamantri_alerts
RUN pip install . && rm -rf /src

USER 10001:10001
WORKDIR /home/alerts
# The default SQLite store (when ALERTS_DATABASE_URL is not set) lives here; mount a volume.
ENV XDG_DATA_HOME=/home/alerts/data
ENTRYPOINT ["alerts"]
CMD ["--help"]
