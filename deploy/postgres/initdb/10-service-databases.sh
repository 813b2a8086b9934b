#!/usr/bin/env bash
# One database per service (SERVICE_DATABASES="auth user dummy"), created at the first
# start of an empty data directory, by the image's /docker-entrypoint-initdb.d step.
set -euo pipefail
for database in ${SERVICE_DATABASES:?list the service databases in SERVICE_DATABASES}; do
  echo "creating database $database"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    --command "CREATE DATABASE \"$database\""
done
