# The selene-ledger CLI (writer, replay, migrate) for docker-compose.yml. Kafka and PostgreSQL come
# from their official images there, so this image holds only the Python package.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY pyproject.toml constraints.txt ./
COPY contracts ./contracts
COPY producers ./producers
COPY consumers ./consumers
COPY sql ./sql
COPY services ./services
COPY cli ./cli
# The runtime dependencies at the versions CI tested (constraints.txt), not whatever is newest in range.
RUN pip install -c constraints.txt . \
    && useradd --system --no-create-home --shell /usr/sbin/nologin selene

# Nothing here needs root; the writer only talks to Kafka and PostgreSQL over the network.
USER selene
ENTRYPOINT ["selene-ledger"]
CMD ["--help"]
