/*
 * db.c: one libpq session per database thread (each worker, and the spool's replayer), with
 * the intake statements prepared, and the one pipeline every intake call goes through;
 * bounded waits everywhere, 503 while the database is away, reconnection by itself.
 */
#include "shim.h"

#include <errno.h>
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define STMT_NAME "leadintake_http_intake"
#define STMT_SQL                                                                                   \
	"SELECT status, response, dashboard_query "                                                    \
	"FROM leadintake.http_intake($1::bytea, $2, $3::inet, $4::boolean)"
#define STMT_NPARAMS 4

/* A spooled request's call: the same with the time the shim received it (contract section 8). */
#define SPOOL_STMT_NAME "leadintake_spool_intake"
#define SPOOL_STMT_SQL                                                                             \
	"SELECT status, response, dashboard_query "                                                    \
	"FROM leadintake.spool_intake($1::bytea, $2, $3::inet, $4::boolean, $5::timestamptz)"
#define SPOOL_NPARAMS 5

/* OIDs of the parameter types: bytea, text, inet, boolean */
#define BYTEAOID       17
#define TEXTOID        25
#define INETOID        869
#define BOOLOID        16
#define TIMESTAMPTZOID 1184

/* $4, minimal: the key came as an api_key parameter (contract section 7) */
#define MINIMAL_TEXT(param_key) ((param_key) ? "t" : "f")

/* The client's own bound on a call: statement_timeout plus this grace, in seconds. */
#define QUERY_GRACE 2.0

static pthread_mutex_t state_lock = PTHREAD_MUTEX_INITIALIZER;
static int db_state = -1; /* -1 unknown, 0 down, 1 up; under state_lock */
static bool probing;      /* while down, one thread tries to connect; under state_lock */

static atomic_uint n_open; /* sessions established */
static atomic_uint n_busy; /* sessions in a call */
static atomic_ullong n_connects;
static atomic_ullong n_connect_failures;
static atomic_ullong n_unavailable;
static atomic_ullong n_errors;
static atomic_ullong n_batches;       /* pipelines of several calls */
static atomic_ullong n_batch_retries; /* calls run again alone after their pipeline failed */

/* Records whether the database answered; says so on stderr when that changes. */
static void
set_db_state(bool up, const char *why)
{
	int old;

	pthread_mutex_lock(&state_lock);
	old = db_state;
	db_state = up ? 1 : 0;
	pthread_mutex_unlock(&state_lock);
	if (up && old != 1)
	{
		log_msg(old == -1 ? "connected to the database" : "the database answers again");
		work_wake_deferred(); /* the requests waiting for it (--db-wait) go now */
		spool_wake();
	}
	else if (!up && old != 0)
		log_msg("the database is unavailable (requests wait up to --db-wait, %u s, for it): %s",
				shim_config.db_wait, why ? why : "unknown error");
}

/* The first line of a libpq message, for the operator's log. */
void
db_first_line(const char *msg, char *out, size_t outlen)
{
	size_t n = 0;

	if (msg == NULL)
		msg = "";
	while (msg[n] && msg[n] != '\n' && n + 1 < outlen)
		n++;
	memcpy(out, msg, n);
	out[n] = '\0';
}

/*
 * Waits until conn's socket is ready for events, at most until deadline (monotonic), and
 * reads what came; false when late, or when the poll or the read failed.
 */
static bool
wait_conn(PGconn *conn, double deadline, short events)
{
	struct pollfd pfd = {PQsocket(conn), events, 0};
	double left = deadline - now_monotonic();
	int rc;

	if (left <= 0)
		return false;
	rc = poll(&pfd, 1, (int) (left * 1000) + 1);
	if (rc < 0)
		return errno == EINTR;
	return rc == 0 || !(pfd.revents & (POLLIN | POLLHUP | POLLERR)) || PQconsumeInput(conn);
}

/*
 * The wait for a command's results. Past soft (one call's --query-timeout and the grace) the
 * running call is cancelled, once: it then fails alone (57014) and the others are run again,
 * so batch-mates never wait behind a slow call for more than about one call's bound. Past
 * hard the connection is given up.
 */
typedef struct BatchClock
{
	double soft;
	double hard;
	bool cancelled;
} BatchClock;

/* The next result of a command or pipeline (NULL ends each one's); false when lost or late. */
static bool
next_result(PGconn *conn, BatchClock *clock, PGresult **r)
{
	*r = NULL;
	while (PQisBusy(conn))
	{
		if (!clock->cancelled && now_monotonic() >= clock->soft)
		{
			PGcancel *cancel = PQgetCancel(conn);
			char err[128];

			clock->cancelled = true;
			if (cancel == NULL || !PQcancel(cancel, err, sizeof(err)))
				clock->hard = now_monotonic(); /* cannot cancel: give up now */
			PQfreeCancel(cancel);
		}
		if (!wait_conn(conn, clock->cancelled ? clock->hard : clock->soft, POLLIN) &&
			(clock->cancelled || now_monotonic() < clock->soft))
			return false;
	}
	*r = PQgetResult(conn);
	if (PQstatus(conn) != CONNECTION_OK)
	{
		PQclear(*r);
		*r = NULL;
		return false;
	}
	return true;
}

/*
 * Waits for the outcome of the command sent on conn until deadline (monotonic). Returns
 * the first error result, else the last result; NULL when the connection was lost or the
 * deadline passed (the connection must then be dropped).
 */
PGresult *
db_await(PGconn *conn, double deadline)
{
	BatchClock clock = {deadline, deadline, true}; /* nothing to cancel: one command */
	PGresult *kept = NULL;
	PGresult *r;

	for (;;)
	{
		if (!next_result(conn, &clock, &r))
		{
			PQclear(kept);
			return NULL;
		}
		if (r == NULL)
			return kept;
		if (kept == NULL ||
			(PQresultStatus(kept) != PGRES_FATAL_ERROR && PQresultStatus(r) == PGRES_FATAL_ERROR))
		{
			PQclear(kept);
			kept = r;
		}
		else
			PQclear(r);
	}
}

/*
 * Sends nothing: checks whether an idle connection was closed by the server meanwhile (a
 * restart sends a FATAL notice, then EOF; the two may need a read each).
 */
bool
db_conn_alive(PGconn *conn)
{
	struct pollfd pfd;
	PGnotify *n;
	int reads;

	for (reads = 0; reads < 8; reads++)
	{
		if (PQstatus(conn) != CONNECTION_OK)
			return false;
		pfd.fd = PQsocket(conn);
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, 0) <= 0)
			return true; /* nothing came: as good as we can tell */
		if (!PQconsumeInput(conn) || PQstatus(conn) != CONNECTION_OK || PQisBusy(conn))
			return false;
		while ((n = PQnotifies(conn)) != NULL)
			PQfreemem(n);
	}
	return false; /* still talking while idle: do not trust it */
}

/*
 * Runs one setup command on a new connection: sql, or with a name the statement prepared
 * under it (the parameters: bytea, text, inet, boolean, then timestamptz); false with err.
 */
static bool
setup_command(PGconn *conn, const char *prepare_as, int nparams, const char *sql, char *err,
			  size_t errlen)
{
	static const unsigned int types[SPOOL_NPARAMS] = {BYTEAOID, TEXTOID, INETOID, BOOLOID,
													  TIMESTAMPTZOID};
	PGresult *r;
	bool ok;
	int sent;

	if (prepare_as)
		sent = PQsendPrepare(conn, prepare_as, sql, nparams, types);
	else
		sent = PQsendQuery(conn, sql);
	if (!sent)
	{
		db_first_line(PQerrorMessage(conn), err, errlen);
		return false;
	}
	r = db_await(conn, now_monotonic() + shim_config.connect_timeout + QUERY_GRACE);
	ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		db_first_line(r ? PQresultErrorMessage(r) : "no answer from the database", err, errlen);
	PQclear(r);
	return ok;
}

/* Server notices (and libpq's own) would go to stderr unasked: the shim says what matters. */
static void
ignore_notice(void *arg, const char *message)
{
	(void) arg;
	(void) message;
}

PGconn *
db_connect(const char *conninfo, const char *application_name, char *err, size_t errlen)
{
	char timeout[16];
	char sql[96];
	PGconn *conn;

	/* our defaults come before dbname: the conninfo of --db overrides any of them */
	const char *const keywords[] = {
		"connect_timeout",     "application_name", "keepalives", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "dbname",     NULL};
	const char *values[] = {timeout, application_name, "1", "30", "10", "3", conninfo, NULL};

	snprintf(timeout, sizeof(timeout), "%u", shim_config.connect_timeout);
	conn = PQconnectdbParams(keywords, values, 1);
	if (conn == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		db_first_line(PQerrorMessage(conn), err, errlen);
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, ignore_notice, NULL);
	snprintf(sql, sizeof(sql), "SET statement_timeout = %u", shim_config.query_timeout_ms);
	if (!setup_command(conn, NULL, 0, sql, err, errlen))
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/* A worker's session: the intake statements prepared. */
static PGconn *
connect_db(char *err, size_t errlen)
{
	PGconn *conn = db_connect(shim_config.db, SHIM_NAME, err, errlen);

	if (conn == NULL)
		return NULL;
	if (!setup_command(conn, STMT_NAME, STMT_NPARAMS, STMT_SQL, err, errlen) ||
		(spool_enabled() &&
		 !setup_command(conn, SPOOL_STMT_NAME, SPOOL_NPARAMS, SPOOL_STMT_SQL, err, errlen)))
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

void
db_close(Db *db)
{
	if (db->conn == NULL)
		return;
	PQfinish(db->conn);
	db->conn = NULL;
	atomic_fetch_sub(&n_open, 1);
}

/* Makes sure db holds a live session with the statements prepared. */
static bool
ensure_ready(Db *db)
{
	char err[256];
	bool prober;
	bool busy_elsewhere;

	if (db->conn != NULL && !db_conn_alive(db->conn))
		db_close(db);
	if (db->conn != NULL)
		return true;

	/*
	 * While the database is down, one thread at a time tries to reach it; the others answer
	 * 503 at once instead of each waiting for connect_timeout.
	 */
	pthread_mutex_lock(&state_lock);
	if (db_state == 0 && probing)
		prober = false;
	else
		prober = probing = (db_state == 0);
	busy_elsewhere = db_state == 0 && !prober;
	pthread_mutex_unlock(&state_lock);
	if (busy_elsewhere)
		return false;

	db->conn = connect_db(err, sizeof(err));
	if (prober)
	{
		pthread_mutex_lock(&state_lock);
		probing = false;
		pthread_mutex_unlock(&state_lock);
	}
	if (db->conn == NULL)
	{
		atomic_fetch_add(&n_connect_failures, 1);
		set_db_state(false, err);
		return false;
	}
	atomic_fetch_add(&n_open, 1);
	atomic_fetch_add(&n_connects, 1);
	set_db_state(true, NULL);
	return true;
}

/*
 * The database cannot serve now: connection (08), resources (53), operator or timeout (57),
 * system error (58), serialization or deadlock (40), read-only standby (25006), lock timeout
 * (55P03): a class, or a whole code. The extension keeps the same list (its unavailable(),
 * extension/leadintake.c); test/e2e/twin_lists.sh checks the two.
 */
bool
db_sqlstate_unavailable(const char *code)
{
	static const char *const unavailable_sqlstates[] = {"08", "53",    "57",   "58",
														"40", "25006", "55P03"};

	for (size_t i = 0; i < sizeof(unavailable_sqlstates) / sizeof(unavailable_sqlstates[0]); i++)
		if (strncmp(code, unavailable_sqlstates[i], strlen(unavailable_sqlstates[i])) == 0)
			return true;
	return false;
}

/*
 * What a failed call means for the client: the database cannot serve now (503) or
 * something unexpected happened (500). Sets *drop_conn when the connection is not to be
 * used again.
 */
static DbOutcome
classify(PGconn *conn, PGresult *r, bool *drop_conn)
{
	const char *code;
	char msg[256];

	*drop_conn = false;
	if (r == NULL || PQstatus(conn) != CONNECTION_OK)
	{
		*drop_conn = true;
		db_first_line(r ? PQresultErrorMessage(r) : PQerrorMessage(conn), msg, sizeof(msg));
		set_db_state(false, *msg ? msg : "connection lost or no answer in time");
		return DB_UNAVAILABLE;
	}
	if (PQresultStatus(r) == PGRES_TUPLES_OK || PQresultStatus(r) == PGRES_COMMAND_OK)
		return DB_OK;

	code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
	db_first_line(PQresultErrorMessage(r), msg, sizeof(msg));
	if (code == NULL)
	{
		/* an error libpq made itself: the connection is in doubt */
		*drop_conn = true;
		set_db_state(false, msg);
		return DB_UNAVAILABLE;
	}
	if (db_sqlstate_unavailable(code))
	{
		/* a serialization failure, a deadlock or a timeout leave the session usable */
		*drop_conn = !(strncmp(code, "40", 2) == 0 || strcmp(code, "57014") == 0 ||
					   strcmp(code, "55P03") == 0);
		log_msg("database cannot serve (SQLSTATE %s): %s", code, msg);
		return DB_UNAVAILABLE;
	}
	/* anything else: the client gets generic text, the operator the database's */
	*drop_conn = true; /* a fresh session re-prepares: heals a changed function */
	log_msg("database error (SQLSTATE %s): %s", code, msg);
	return DB_ERROR;
}

/* The row of http_intake into result: DB_OK, or DB_ERROR when it is not one whole row. */
static DbOutcome
read_row(PGresult *r, IntakeResult *result)
{
	if (PQntuples(r) != 1 || PQnfields(r) != 3 || PQgetisnull(r, 0, 0) || PQgetisnull(r, 0, 1))
	{
		log_msg("leadintake.http_intake returned %d rows of %d columns, or a NULL "
				"status or response",
				PQntuples(r), PQnfields(r));
		return DB_ERROR;
	}
	result->status = atoi(PQgetvalue(r, 0, 0));
	result->response = strdup(PQgetvalue(r, 0, 1));
	if (!PQgetisnull(r, 0, 2))
		result->dashboard_query = strdup(PQgetvalue(r, 0, 2));
	return result->response ? DB_OK : DB_ERROR;
}

static void
count_outcome(DbOutcome outcome)
{
	if (outcome == DB_UNAVAILABLE)
		atomic_fetch_add(&n_unavailable, 1);
	else if (outcome == DB_ERROR)
		atomic_fetch_add(&n_errors, 1);
}

/* Sends one call into the pipeline (the body, $1, in binary: as it came). */
static bool
send_call(PGconn *conn, const IntakeCall *c)
{
	static const int formats[SPOOL_NPARAMS] = {1, 0, 0, 0, 0};
	char received[64];
	const char *values[SPOOL_NPARAMS] = {c->body ? c->body : "",
										 c->key_name && *c->key_name ? c->key_name : NULL,
										 c->client_addr && *c->client_addr ? c->client_addr : NULL,
										 MINIMAL_TEXT(c->param_key), received};
	int lengths[SPOOL_NPARAMS] = {(int) c->body_len, 0, 0, 0, 0};
	time_t secs = (time_t) (c->received_us / 1000000);
	struct tm tm;

	if (c->received_us == 0)
		return PQsendQueryPrepared(conn, STMT_NAME, STMT_NPARAMS, values, lengths, formats, 0);
	gmtime_r(&secs, &tm);
	strftime(received, sizeof(received), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(received + strlen(received), sizeof(received) - strlen(received), ".%06lldZ",
			 c->received_us % 1000000);
	return PQsendQueryPrepared(conn, SPOOL_STMT_NAME, SPOOL_NPARAMS, values, lengths, formats, 0);
}

/* Sends what libpq holds for conn, reading meanwhile so the server never blocks on us. */
static bool
flush_all(PGconn *conn, double deadline)
{
	int f;

	while ((f = PQflush(conn)) == 1)
		if (!wait_conn(conn, deadline, POLLIN | POLLOUT))
			return false;
	return f == 0;
}

/* Forgets a call's answer: its transaction did not commit. */
static void
forget(IntakeCall *c, DbOutcome outcome, bool retry)
{
	free(c->result.response);
	free(c->result.dashboard_query);
	c->result = (IntakeResult){0, NULL, NULL};
	c->outcome = outcome;
	c->retry = retry;
}

/* What a batch's pipeline left: the connection usable, to be dropped, or in doubt. */
typedef enum
{
	PIPE_OK,
	PIPE_DROP, /* every call has its outcome, but the connection is not to be used again */
	PIPE_LOST  /* lost or late: the outcomes are unknown (the commit may have happened) */
} PipeEnd;

/*
 * Runs the calls of a batch in one pipeline ending in one Sync: one implicit transaction,
 * one round trip, one commit. Sets each call's outcome, or its retry flag when the
 * transaction was lost through no fault of that call. A call that raised gets its own
 * outcome (a deadlock or serialization failure, which batching itself can cause, is run
 * again alone too); after a commit that failed, every call runs again alone.
 */
static PipeEnd
run_pipeline(PGconn *conn, IntakeCall *const *calls, int n)
{
	BatchClock clock;
	PGresult *r;
	int culprit = -1;
	bool drop_conn = false;
	bool synced = false;

	/* a call alone has no batch-mate to spare: statement_timeout bounds it, then the grace */
	clock.soft = now_monotonic() + shim_config.query_timeout_ms / 1000.0 + QUERY_GRACE;
	clock.hard = n > 1 ? clock.soft + QUERY_GRACE : clock.soft;
	clock.cancelled = n == 1;
	if (!PQenterPipelineMode(conn) || PQsetnonblocking(conn, 1) != 0)
		return PIPE_LOST;
	for (int i = 0; i < n; i++)
		if (!send_call(conn, calls[i]))
			return PIPE_LOST;
	if (!PQpipelineSync(conn) || !flush_all(conn, clock.soft))
		return PIPE_LOST;

	for (int i = 0; i < n && !drop_conn; i++)
	{
		IntakeCall *c = calls[i];
		const char *code;

		if (!next_result(conn, &clock, &r) || r == NULL)
			return PIPE_LOST;
		switch (PQresultStatus(r))
		{
			case PGRES_TUPLES_OK:
				c->outcome = read_row(r, &c->result);
				break;
			case PGRES_PIPELINE_ABORTED:
				c->retry = true; /* skipped after the culprit's error */
				break;
			default:
				/* this call raised: its own answer; the others of the transaction run again */
				code = PQresultErrorField(r, PG_DIAG_SQLSTATE);
				c->outcome = classify(conn, r, &drop_conn);
				c->retry = code && strncmp(code, "40", 2) == 0;
				culprit = i;
				break;
		}
		PQclear(r);
		if (drop_conn)
			break; /* no commit without the rest of the pipeline: the others run again */
		if (!next_result(conn, &clock, &r) || r != NULL)
		{
			PQclear(r);
			return PIPE_LOST;
		}
	}
	/*
	 * Then the Sync's result, once the implicit transaction ended: an error before it means
	 * the commit failed, and nothing of the batch is stored.
	 */
	for (int k = 0; k < 4 && !drop_conn && !synced; k++)
	{
		if (!next_result(conn, &clock, &r))
			return PIPE_LOST;
		if (r != NULL && PQresultStatus(r) == PGRES_PIPELINE_SYNC)
			synced = true;
		else if (r != NULL && PQresultStatus(r) != PGRES_PIPELINE_ABORTED)
		{
			/*
			 * The commit failed (a deferred trigger, a serialization failure...): nothing is
			 * stored, and which call caused it is unknown, so each runs again alone.
			 */
			DbOutcome outcome = classify(conn, r, &drop_conn);

			for (int i = 0; i < n; i++)
				forget(calls[i], outcome, true);
			culprit = n;
		}
		PQclear(r);
	}
	if (!synced && !drop_conn)
		return PIPE_LOST;
	/* answered, then rolled back with the culprit's transaction */
	for (int i = 0; i < n; i++)
		if (culprit >= 0 && culprit < n && i != culprit && !calls[i]->retry)
			forget(calls[i], DB_UNAVAILABLE, true);
	if (drop_conn || !PQexitPipelineMode(conn) || PQsetnonblocking(conn, 0) != 0)
		return PIPE_DROP;
	return PIPE_OK;
}

void
db_intake(Db *db, IntakeCall *const *calls, int n)
{
	for (int i = 0; i < n; i++)
	{
		calls[i]->outcome = DB_UNAVAILABLE;
		calls[i]->result = (IntakeResult){0, NULL, NULL};
		calls[i]->retry = false;
	}
	if (ensure_ready(db))
	{
		PipeEnd end;

		atomic_fetch_add(&n_busy, 1);
		end = run_pipeline(db->conn, calls, n);
		if (n > 1)
			atomic_fetch_add(&n_batches, 1);
		if (end == PIPE_LOST)
		{
			for (int i = 0; i < n; i++)
				forget(calls[i], DB_UNAVAILABLE, false);
			if (PQstatus(db->conn) != CONNECTION_OK)
				set_db_state(false, "connection lost");
			else
				log_msg("no answer in time to %d call%s: answered 503", n, n > 1 ? "s" : "");
		}
		if (end != PIPE_OK)
			db_close(db);
		atomic_fetch_sub(&n_busy, 1);
	}
	for (int i = 0; i < n; i++)
	{
		IntakeCall *c = calls[i];

		if (c->retry && n > 1)
		{
			atomic_fetch_add(&n_batch_retries, 1);
			forget(c, DB_UNAVAILABLE, false);
			db_intake(db, &c, 1);
		}
		else
			count_outcome(c->outcome);
	}
}

DbOutcome
db_ping(Db *db)
{
	PGresult *r = NULL;
	DbOutcome outcome;
	bool drop_conn = false;

	if (!ensure_ready(db))
		return DB_UNAVAILABLE;
	atomic_fetch_add(&n_busy, 1);
	if (PQsendQuery(db->conn, "SELECT 1"))
		r = db_await(db->conn,
					 now_monotonic() + shim_config.query_timeout_ms / 1000.0 + QUERY_GRACE);
	outcome = classify(db->conn, r, &drop_conn);
	PQclear(r);
	if (drop_conn)
		db_close(db);
	atomic_fetch_sub(&n_busy, 1);
	return outcome;
}

void
db_stats(DbStats *s)
{
	memset(s, 0, sizeof(*s));
	pthread_mutex_lock(&state_lock);
	s->up = db_state == 1;
	pthread_mutex_unlock(&state_lock);
	s->open = atomic_load(&n_open);
	s->busy = atomic_load(&n_busy);
	s->connects = atomic_load(&n_connects);
	s->connect_failures = atomic_load(&n_connect_failures);
	s->unavailable = atomic_load(&n_unavailable);
	s->errors = atomic_load(&n_errors);
	s->batches = atomic_load(&n_batches);
	s->batch_retries = atomic_load(&n_batch_retries);
}
