#!/usr/bin/env bash
# Entrypoint with the behaviour of the public postgres image's, for Debian's PostgreSQL.
#
#   docker run -e POSTGRES_PASSWORD=secret IMAGE [postgres] [-c key=value ...]
#
# On the first start (PGDATA has no PG_VERSION): initdb as the postgres user (UTF-8,
# C.UTF-8, the superuser POSTGRES_USER with POSTGRES_PASSWORD), host connections
# authenticated with POSTGRES_HOST_AUTH_METHOD (default: the server's
# password_encryption, scram-sha-256), a temporary server on the unix socket only,
# POSTGRES_DB created, /docker-entrypoint-initdb.d/* run in sorted order, the temporary
# server stopped. Then, on every start, the real server is exec'd as PID 1 (it listens
# on every address, port 5432, and stops fast on the image's STOPSIGNAL, SIGINT).
#
# Each POSTGRES_* setting can also come from a file named by <NAME>_FILE (Docker
# secrets), as in the official image. Init scripts written for the official image can
# call docker_process_sql: the function names are the same.
set -Eeo pipefail

# file_env NAME [DEFAULT]: export NAME from $NAME, else from the file named by $NAME_FILE.
file_env() {
	local name="$1" file_name="${1}_FILE" default="${2:-}"
	if [ -n "${!name:-}" ] && [ -n "${!file_name:-}" ]; then
		printf 'error: both %s and %s are set (they are exclusive)\n' "$name" "$file_name" >&2
		exit 1
	fi
	local value="$default"
	if [ -n "${!name:-}" ]; then
		value="${!name}"
	elif [ -n "${!file_name:-}" ]; then
		value="$(<"${!file_name}")"
	fi
	export "$name"="$value"
	unset "$file_name"
}

# Options that only print something (help, version, config): no initialisation for them.
wants_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?' | --help | --describe-config | -V | --version) return 0 ;;
		esac
	done
	return 1
}

docker_setup_env() {
	file_env POSTGRES_PASSWORD
	file_env POSTGRES_USER postgres
	file_env POSTGRES_DB "$POSTGRES_USER"
	file_env POSTGRES_INITDB_ARGS
	: "${POSTGRES_HOST_AUTH_METHOD:=}"
	export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
	DATABASE_ALREADY_EXISTS=
	if [ -s "$PGDATA/PG_VERSION" ]; then
		DATABASE_ALREADY_EXISTS=yes
	fi
}

# Directories the server writes to; owned by postgres when we are root. Failures to
# chmod are tolerated (a bind mount owned by someone else), as the official image does.
docker_create_db_directories() {
	mkdir -p "$PGDATA"
	chmod 00700 "$PGDATA" || :
	mkdir -p /var/run/postgresql || :
	chmod 03775 /var/run/postgresql || :
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		chmod 00700 "$POSTGRES_INITDB_WALDIR" || :
	fi
	if [ "$(id -u)" = 0 ]; then
		find "$PGDATA" \! -user postgres -exec chown postgres:postgres '{}' +
		find /var/run/postgresql \! -user postgres -exec chown postgres:postgres '{}' +
		if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
			find "$POSTGRES_INITDB_WALDIR" \! -user postgres -exec chown postgres:postgres '{}' +
		fi
	fi
}

docker_verify_minimum_env() {
	if [ -z "$POSTGRES_PASSWORD" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		cat >&2 <<-'EOM'
			Error: Database is uninitialized and superuser password is not specified.
			       You must specify POSTGRES_PASSWORD to a non-empty value for the
			       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

			       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
			       connections without a password. This is *not* recommended.

			       See PostgreSQL documentation about "trust":
			       https://www.postgresql.org/docs/current/auth-trust.html
		EOM
		exit 1
	fi
	if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
		cat >&2 <<-'EOM'
			********************************************************************************
			WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
			         anyone with access to the Postgres port to access your database without
			         a password, even if POSTGRES_PASSWORD is set.
			********************************************************************************
		EOM
	fi
}

# initdb with UTF-8 and C.UTF-8 (which glibc always has: no locales package needed);
# POSTGRES_INITDB_ARGS come last so they can override both, and are eval'd so that
# quoted values inside them work as in the official image.
docker_init_database_dir() {
	local password_args=()
	if [ -n "$POSTGRES_PASSWORD" ]; then
		password_args=(--pwfile=/dev/stdin)
	fi
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		password_args+=(--waldir="$POSTGRES_INITDB_WALDIR")
	fi
	eval 'initdb --username="$POSTGRES_USER" "${password_args[@]}" --encoding=UTF8 --locale=C.UTF-8 '"$POSTGRES_INITDB_ARGS" \
		<<<"$POSTGRES_PASSWORD"
}

# Host connections from anywhere need POSTGRES_HOST_AUTH_METHOD; initdb's own lines
# (unix socket and loopback: trust) stay first, as in the official image.
docker_setup_hba_conf() {
	if [ "$1" = postgres ]; then
		shift
	fi
	if [ -z "$POSTGRES_HOST_AUTH_METHOD" ]; then
		POSTGRES_HOST_AUTH_METHOD="$(postgres -C password_encryption "$@")"
	fi
	{
		echo
		if [ "$POSTGRES_HOST_AUTH_METHOD" = trust ]; then
			echo '# warning: trust is enabled for all connections'
		fi
		printf 'host all all all %s\n' "$POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
}

# The temporary server takes the same arguments as the real one, but listens on the
# unix socket only, so that nothing outside sees a half-initialised database.
docker_temp_server_start() {
	if [ "$1" = postgres ]; then
		shift
	fi
	set -- "$@" -c listen_addresses='' -p "${PGPORT:-5432}"
	PGUSER="${PGUSER:-$POSTGRES_USER}" pg_ctl -D "$PGDATA" -o "$(printf '%q ' "$@")" -w start
}

docker_temp_server_stop() {
	PGUSER="${PGUSER:-postgres}" pg_ctl -D "$PGDATA" -m fast -w stop
}

# psql on the unix socket, stopping at the first error, in POSTGRES_DB unless it is
# emptied for the call: `POSTGRES_DB= docker_process_sql --dbname postgres ...`.
docker_process_sql() {
	local psql_command=(psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password --no-psqlrc)
	if [ -n "$POSTGRES_DB" ]; then
		psql_command+=(--dbname "$POSTGRES_DB")
	fi
	PGHOST='' PGHOSTADDR='' "${psql_command[@]}" "$@"
}

docker_setup_db() {
	local exists
	exists="$(
		POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" --tuples-only <<-'EOSQL'
			SELECT 1 FROM pg_database WHERE datname = :'db';
		EOSQL
	)"
	if [ -z "$exists" ]; then
		POSTGRES_DB='' docker_process_sql --dbname postgres --set db="$POSTGRES_DB" <<-'EOSQL'
			CREATE DATABASE :"db";
		EOSQL
		echo
	fi
}

# decompress COMMAND FILE: the file's SQL on stdout, or a clear error when this image
# lacks the decompressor (only gzip is installed; xz and zstd are not, to stay small).
decompress() {
	if ! command -v "$1" >/dev/null; then
		printf '%s: %s needs %s, which this image does not have\n' "$0" "$2" "$1" >&2
		exit 1
	fi
	"$@"
}

# *.sh: executed when executable, sourced otherwise (so it may call these functions);
# *.sql, *.sql.gz (and .xz, .zst when their tools exist) through psql.
docker_process_init_files() {
	local f
	echo
	for f; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh)
				if [ -x "$f" ]; then
					printf '%s: running %s\n' "$0" "$f"
					"$f"
				else
					printf '%s: sourcing %s\n' "$0" "$f"
					# shellcheck disable=SC1090
					. "$f"
				fi
				;;
			*.sql)
				printf '%s: running %s\n' "$0" "$f"
				docker_process_sql -f "$f"
				echo
				;;
			*.sql.gz)
				printf '%s: running %s\n' "$0" "$f"
				gunzip -c "$f" | docker_process_sql
				echo
				;;
			*.sql.xz)
				printf '%s: running %s\n' "$0" "$f"
				decompress xzcat "$f" | docker_process_sql
				echo
				;;
			*.sql.zst)
				printf '%s: running %s\n' "$0" "$f"
				decompress zstd -dc "$f" | docker_process_sql
				echo
				;;
			*)
				printf '%s: ignoring %s\n' "$0" "$f"
				;;
		esac
	done
}

main() {
	# `docker run IMAGE -c fsync=off` means `postgres -c fsync=off`
	if [ "${1:0:1}" = - ]; then
		set -- postgres "$@"
	fi

	if [ "$1" = postgres ] && ! wants_help "$@"; then
		docker_setup_env
		docker_create_db_directories
		if [ "$(id -u)" = 0 ]; then
			# the server refuses to run as root: start this script again as postgres
			HOME="$(getent passwd postgres | cut -d: -f6)"
			export HOME
			exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
		fi

		if [ -z "$DATABASE_ALREADY_EXISTS" ]; then
			docker_verify_minimum_env
			# fail now, not after initdb, when the init folder cannot be read
			ls /docker-entrypoint-initdb.d/ >/dev/null
			docker_init_database_dir
			docker_setup_hba_conf "$@"
			export PGPASSWORD="${PGPASSWORD:-$POSTGRES_PASSWORD}"
			docker_temp_server_start "$@"
			docker_setup_db
			docker_process_init_files /docker-entrypoint-initdb.d/*
			docker_temp_server_stop
			unset PGPASSWORD
			printf '\nPostgreSQL init process complete; ready for start up.\n\n'
		else
			printf '\nPostgreSQL Database directory appears to contain a database; Skipping initialization\n\n'
		fi
	fi

	exec "$@"
}

main "$@"
