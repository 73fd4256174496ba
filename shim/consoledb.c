/*
 * consoledb.c: the console's one database connection (its own: the console never takes a
 * dialer worker), a role in leadintake_console; one SQL call per API request, SQLSTATE -> HTTP.
 */
#include "shim.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

/* The client's own bound on a call: statement_timeout plus this grace, in seconds. */
#define QUERY_GRACE 2.0

#define CONSOLE_ROLE "leadintake_console"

static pthread_mutex_t console_db_lock = PTHREAD_MUTEX_INITIALIZER;
static PGconn *conn;             /* under console_db_lock; NULL: not connected */
static atomic_int db_state = -1; /* -1 unknown, 0 down, 1 up */

/* Records whether the database answered; says so on stderr when that changes. */
static void
set_up(bool up, const char *why)
{
	int old = atomic_exchange(&db_state, up ? 1 : 0);

	if (up && old != 1)
		log_msg("console: connected to the database");
	else if (!up && old != 0)
		log_msg("console: the database is unavailable: %s", why);
}

/* SQLSTATE -> HTTP for the console's calls (docs/console.md); 0: the database is away. */
static int
http_status_of(const char *code)
{
	static const struct
	{
		const char *code; /* a class (2 characters) or a whole code */
		int status;
	} map[] = {{"22", 400}, {"P0002", 404}, {"23505", 409}, {"55000", 409}};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(code, map[i].code, strlen(map[i].code)) == 0)
			return map[i].status;
	return db_sqlstate_unavailable(code) ? 0 : 500;
}

/* Runs sql (no parameter) and reads its one boolean; false with err when it cannot. */
static bool
query_bool(PGconn *c, const char *sql, bool *value, char *err, size_t errlen)
{
	PGresult *r = NULL;
	bool ok;

	if (PQsendQuery(c, sql))
		r = db_await(c, now_monotonic() + shim_config.connect_timeout + QUERY_GRACE);
	ok = r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQnfields(r) == 1;
	if (!ok)
		db_first_line(r ? PQresultErrorMessage(r) : PQerrorMessage(c), err, errlen);
	else
		*value = PQntuples(r) == 1 && strcmp(PQgetvalue(r, 0, 0), "t") == 0;
	PQclear(r);
	return ok;
}

/* A new connection whose role is a member of leadintake_console; NULL with err. */
static PGconn *
connect_console(char *err, size_t errlen)
{
	const char *conninfo = shim_config.console_db ? shim_config.console_db : shim_config.db;
	PGconn *c = db_connect(conninfo, SHIM_NAME " console", err, errlen);
	bool member = false;

	if (c == NULL)
		return NULL;
	if (!query_bool(c,
					"SELECT pg_catalog.pg_has_role(r.oid, 'MEMBER') FROM pg_catalog.pg_roles r "
					"WHERE r.rolname = '" CONSOLE_ROLE "'",
					&member, err, errlen))
	{
		PQfinish(c);
		return NULL;
	}
	if (!member)
	{
		/* no such role (an extension before 1.6) reads as not a member */
		snprintf(err, errlen,
				 "role \"%s\" is not a member of " CONSOLE_ROLE
				 " (extension leadintake 1.6 or later, then: GRANT " CONSOLE_ROLE " TO %s)",
				 PQuser(c), PQuser(c));
		PQfinish(c);
		return NULL;
	}
	return c;
}

static void
drop_conn(void)
{
	PQfinish(conn);
	conn = NULL;
}

/* {"error": message} into out. */
static void
error_body(Buf *out, const char *message)
{
	buf_puts(out, "{\"error\": ");
	buf_json_string(out, message, strlen(message));
	buf_puts(out, "}");
}

/* The answer of a call's result r (NULL: lost or late), with console_db_lock held. */
static int
answer(const char *function, PGresult *r, Buf *out)
{
	const char *code;
	const char *message;
	int status;

	if (r != NULL && PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 &&
		PQnfields(r) == 1 && !PQgetisnull(r, 0, 0))
	{
		buf_puts(out, PQgetvalue(r, 0, 0));
		return 200;
	}
	code = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	if (r == NULL || PQstatus(conn) != CONNECTION_OK || code == NULL)
	{
		char why[256];

		db_first_line(r ? PQresultErrorMessage(r) : PQerrorMessage(conn), why, sizeof(why));
		drop_conn();
		set_up(false, *why ? why : "connection lost or no answer in time");
		status = 0;
	}
	else if (PQresultStatus(r) == PGRES_TUPLES_OK)
	{
		log_msg("console: leadintake.%s returned no value", function);
		status = 500;
	}
	else if ((status = http_status_of(code)) == 0)
		drop_conn(); /* a fresh session next time: cheap, and never one in doubt */
	if (status == 0)
	{
		error_body(out, "The database is unavailable; retry later");
		return 503;
	}
	message = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
	if (status == 500)
	{
		/* a bug: the operator gets the database's text, the page a generic one */
		log_msg("console: leadintake.%s failed (SQLSTATE %s): %s", function, code ? code : "-",
				message ? message : "no message");
		message = "Internal server error";
	}
	error_body(out, message ? message : "Error");
	return status;
}

int
consoledb_call(const char *function, const char *args, Buf *out)
{
	char sql[128];
	char err[512];
	PGresult *r = NULL;
	int status;

	snprintf(sql, sizeof(sql), "SELECT leadintake.%s($1::jsonb)", function);
	pthread_mutex_lock(&console_db_lock);
	if (conn != NULL && !db_conn_alive(conn))
		drop_conn();
	if (conn == NULL && (conn = connect_console(err, sizeof(err))) == NULL)
	{
		set_up(false, err);
		pthread_mutex_unlock(&console_db_lock);
		error_body(out, "The database is unavailable; retry later");
		return 503;
	}
	set_up(true, NULL);
	if (PQsendQueryParams(conn, sql, 1, NULL, &args, NULL, NULL, 0))
		r = db_await(conn, now_monotonic() + shim_config.query_timeout_ms / 1000.0 + QUERY_GRACE);
	status = answer(function, r, out);
	PQclear(r);
	pthread_mutex_unlock(&console_db_lock);
	return status;
}

bool
consoledb_up(void)
{
	return atomic_load(&db_state) == 1;
}

void
consoledb_close(void)
{
	pthread_mutex_lock(&console_db_lock);
	if (conn != NULL)
		drop_conn();
	pthread_mutex_unlock(&console_db_lock);
}
