# creditgate's server image: `docker build -t creditgate .`
# Runs `creditgate serve` on port 8000; point CREDITGATE_DB at PostgreSQL in production
# (docs/deploy/compose.yaml runs it beside a PostgreSQL server).
FROM python:3.11-slim-bookworm AS build
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY src ./src
RUN python -m venv /opt/creditgate \
    && /opt/creditgate/bin/pip install --no-cache-dir --disable-pip-version-check .

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --create-home --home-dir /var/lib/creditgate creditgate
COPY --from=build /opt/creditgate /opt/creditgate
ENV PATH=/opt/creditgate/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    CREDITGATE_DB=sqlite:////var/lib/creditgate/creditgate.db
USER 10001
WORKDIR /var/lib/creditgate
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/readyz', timeout=2)"]
ENTRYPOINT ["creditgate"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
