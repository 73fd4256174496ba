/*
 * http.c: the HTTP side on libmicrohttpd: the accept policy, framing, routes, methods (405),
 * 404, 401, 415, 413, 429, the answers and TLS versions; an intake request becomes exactly one
 * call of leadintake.http_intake, waits for the database (--db-wait), or goes to the spool.
 * The console's test lead takes the same path in-process: a request with no connection.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define INTAKE_PATH "/api/leads/from-dialer"
#define KEY_HEADER  "X-Dialer-Api-Key"

/*
 * A chunked body (no Content-Length) over --max-body is read to its end and dropped, so
 * that the client gets its 413; past this many more bytes the connection is just closed.
 */
#define DISCARD_LIMIT (1024 * 1024)

/* How soon a request waiting for the database (--db-wait) tries again, at most. */
#define DB_RETRY_INTERVAL 0.25

typedef enum Route
{
	ROUTE_NONE,
	ROUTE_INTAKE,
	ROUTE_HEALTH,
	ROUTE_METRICS
} Route;

typedef enum BodyKind
{
	BODY_NONE, /* GET: the payload is the query string */
	BODY_JSON, /* application/json, or no Content-Type */
	BODY_FORM, /* application/x-www-form-urlencoded */
	BODY_BAD   /* anything else: 415 */
} BodyKind;

typedef struct Request
{
	double start;
	char client[CLIENT_ADDR_MAX];
	char *query; /* raw query string (after '?'), NULL if none */
	char method[16];
	char *path;   /* the path as sent (not decoded): what is routed and logged */
	bool started; /* the first call of the handler happened */
	Route route;
	int status; /* the status sent; 0 none yet */
	bool authed;
	bool key_in_form; /* the key is to be read from the form body */
	bool param_key;   /* authenticated by an api_key parameter, not the header */
	char key_name[KEY_NAME_MAX];
	BodyKind kind;
	bool has_content_type;
	Params query_params;
	Buf body;
	size_t received;
	bool too_big;
	/* the database call, made by a worker while the connection is suspended */
	struct MHD_Connection *con;
	Buf payload;              /* what goes to the database as $1 */
	bool redirect;            /* redirect=1 was in the query or form */
	double unavailable_since; /* the database first failed this request; 0: not yet */
	long long received_us;    /* wall clock at the request line, for the spool */
	bool spooled;             /* written to the spool: 202 */
	bool submitted;
	WorkJob job;
	atomic_bool done;
	DbOutcome outcome;
	IntakeResult result;
	char *answer; /* in-process (no connection): the body of the answer */
} Request;

static atomic_bool draining;

/* In-process requests (http_intake_get) wait here for their worker. */
static pthread_mutex_t inproc_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t inproc_done = PTHREAD_COND_INITIALIZER;

/* ---------------------------------------------------------------- connections */

static void request_end(Request *req);

void *
http_socket_context(struct MHD_Connection *con)
{
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(con, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

	return ci ? ci->socket_context : NULL;
}

bool
http_split_uri(const char *uri, char **path, char **query)
{
	size_t path_len = strcspn(uri, "?#");
	bool has_query = uri[path_len] == '?';

	*path = strndup(uri, path_len);
	*query = has_query ? strndup(uri + path_len + 1, strcspn(uri + path_len + 1, "#")) : NULL;
	if (*path != NULL && (!has_query || *query != NULL))
		return true;
	free(*path);
	free(*query);
	*path = *query = NULL;
	return false;
}

/* The request on con is all in: no deadline until the answer is sent. */
static void
request_in(struct MHD_Connection *con)
{
	Conn *c = http_socket_context(con);

	if (c != NULL)
		conn_request_in(c);
}

static void
notify_connection(void *cls, struct MHD_Connection *con, void **socket_context,
				  enum MHD_ConnectionNotificationCode toe)
{
	const union MHD_ConnectionInfo *fd_info;
	const union MHD_ConnectionInfo *peer;
	Request *left;

	(void) cls;
	if (toe == MHD_CONNECTION_NOTIFY_CLOSED)
	{
		if (*socket_context == NULL)
			return;
		/*
		 * libmicrohttpd does not call the completion callback on every path (a request it
		 * refuses itself, 431 say): what the request holds is freed here, however it ended.
		 */
		left = conn_close(*socket_context);
		*socket_context = NULL;
		if (left != NULL)
			request_end(left);
		return;
	}
	if (toe != MHD_CONNECTION_NOTIFY_STARTED)
		return;
	fd_info = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CONNECTION_FD);
	peer = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	*socket_context =
		fd_info ? conn_open(fd_info->connect_fd, peer ? peer->client_addr : NULL) : NULL;
	if (*socket_context == NULL)
	{
		/* no deadline could be kept: refuse the connection rather than serve it unbounded */
		log_msg("out of memory: closing a new connection");
		if (fd_info)
			shutdown(fd_info->connect_fd, SHUT_RDWR);
	}
}

static long long
wall_clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long) ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}

/* ---------------------------------------------------------------- answers */

bool
http_queue(struct MHD_Connection *con, int status, struct MHD_Response *resp, int *sent)
{
	bool queued = MHD_queue_response(con, (unsigned) status, resp) == MHD_YES;

	MHD_destroy_response(resp);
	if (queued)
		*sent = status;
	return queued;
}

static enum MHD_Result
respond(struct MHD_Connection *con, Request *req, int status, const char *body, size_t len,
		const char *content_type, const char *h1, const char *v1, const char *h2, const char *v2)
{
	struct MHD_Response *resp;

	if (con == NULL)
	{
		/* in-process: the caller reads the answer (its headers are for browsers only) */
		req->answer = strndup(body, len);
		req->status = req->answer ? status : 0;
		return req->answer ? MHD_YES : MHD_NO;
	}
	resp = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	if (h1)
		MHD_add_response_header(resp, h1, v1);
	if (h2)
		MHD_add_response_header(resp, h2, v2);
	if (atomic_load(&draining))
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	return http_queue(con, status, resp, &req->status) ? MHD_YES : MHD_NO;
}

static enum MHD_Result
respond_json(struct MHD_Connection *con, Request *req, int status, const char *json, const char *h1,
			 const char *v1)
{
	return respond(con, req, status, json, strlen(json), "application/json", h1, v1, NULL, NULL);
}

/* {"error": "<message>"} with an optional extra header. */
static enum MHD_Result
respond_error(struct MHD_Connection *con, Request *req, int status, const char *message,
			  const char *h1, const char *v1)
{
	Buf b;
	enum MHD_Result ret;

	buf_init(&b);
	buf_puts(&b, "{\"error\": ");
	buf_json_string(&b, message, strlen(message));
	buf_puts(&b, "}");
	if (b.oom)
		ret = MHD_NO;
	else
		ret = respond_json(con, req, status, b.data, h1, v1);
	buf_free(&b);
	return ret;
}

/*
 * The 401 says how to send a key (contract section 7): the header's name, and whether
 * api_key in the URL is enabled here. One text for a missing and a wrong key: it never
 * tells whether a given key exists.
 */
static enum MHD_Result
respond_unauthorized(struct MHD_Connection *con, Request *req)
{
	return respond_error(con, req, 401,
						 shim_config.allow_query_key
							 ? "Missing or invalid API key: send it in the " KEY_HEADER
							   " header, or as the api_key parameter of the query string or "
							   "form body (enabled on this server)"
							 : "Missing or invalid API key: send it in the " KEY_HEADER
							   " header (an api_key parameter in the URL is not enabled on "
							   "this server)",
						 NULL, NULL);
}

static enum MHD_Result
respond_unavailable(struct MHD_Connection *con, Request *req)
{
	return respond_error(con, req, 503, "Service temporarily unavailable; retry later",
						 MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

static enum MHD_Result
respond_internal(struct MHD_Connection *con, Request *req)
{
	return respond_error(con, req, 500, "Internal server error", NULL, NULL);
}

/* ---------------------------------------------------------------- request checks */

static Route
route_of(const char *url)
{
	size_t len = strlen(url);

	/* with or without one trailing slash, and no redirect */
	if (len > 1 && url[len - 1] == '/')
		len--;
	if (len == strlen(INTAKE_PATH) && strncmp(url, INTAKE_PATH, len) == 0)
		return ROUTE_INTAKE;
	if (len == 8 && strncmp(url, "/healthz", 8) == 0)
		return ROUTE_HEALTH;
	if (len == 8 && strncmp(url, "/metrics", 8) == 0)
		return ROUTE_METRICS;
	return ROUTE_NONE;
}

/* The media type of a Content-Type header, parameters (charset=...) ignored. */
static BodyKind
content_kind(const char *ct)
{
	size_t len;

	if (ct == NULL)
		return BODY_JSON;
	while (*ct == ' ' || *ct == '\t')
		ct++;
	len = strcspn(ct, ";");
	while (len > 0 && (ct[len - 1] == ' ' || ct[len - 1] == '\t'))
		len--;
	if (len == 0)
		return BODY_JSON;
	if (len == 16 && strncasecmp(ct, "application/json", 16) == 0)
		return BODY_JSON;
	if (len == 33 && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0)
		return BODY_FORM;
	return BODY_BAD;
}

/* Checks the api_key parameter(s) of params: exactly one, and a known key. */
static bool
param_key_ok(Request *req, const Params *params)
{
	const Param *p;

	if (params_lookup(params, "api_key", &p) != 1)
		return false;
	req->param_key = true;
	return keys_match(p->value, p->value_len, req->key_name, sizeof(req->key_name));
}

/* redirect=1, true or yes (any case) anywhere in the parameters. */
static bool
wants_redirect(const Params *params)
{
	static const char *const yes[] = {"1", "true", "yes"};

	for (size_t i = 0; i < params->count; i++)
	{
		const Param *p = &params->items[i];

		if (!param_is_instruction(p))
			continue;
		for (size_t k = 0; k < sizeof(yes) / sizeof(yes[0]); k++)
			if (p->value_len == strlen(yes[k]) && strcasecmp(p->value, yes[k]) == 0)
				return true;
	}
	return false;
}

/* A query parameter other than api_key and redirect (not allowed with a JSON body). */
static bool
has_payload_params(const Params *params)
{
	size_t i;

	for (i = 0; i < params->count; i++)
		if (!param_key_is(&params->items[i], "api_key", true) &&
			!param_is_instruction(&params->items[i]))
			return true;
	return false;
}

/*
 * Header framing, as RFC 9112 asks of a server: anything a proxy in front could read
 * differently (and so smuggle a second request in the body of the first) is a 400 and the
 * connection is closed. libmicrohttpd parses leniently; its parsed headers are checked here.
 */
typedef struct Framing
{
	int hosts;
	int content_lengths;
	int transfer_encodings;
	bool chunked_only; /* every Transfer-Encoding is exactly "chunked" */
	bool bad_name;     /* a field name that is not an RFC 9110 token (space before ':') */
	bool bad_value;    /* a NUL or a bare CR in a field value */
} Framing;

static bool
is_token(const char *s, size_t len)
{
	static const char tchars[] = "!#$%&'*+-.^_`|~";

	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
	{
		unsigned char ch = (unsigned char) s[i];

		if (!(ch >= '0' && ch <= '9') && !((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z') &&
			(ch == '\0' || strchr(tchars, ch) == NULL))
			return false;
	}
	return true;
}

static enum MHD_Result
framing_field(void *cls, enum MHD_ValueKind kind, const char *name, size_t name_len,
			  const char *value, size_t value_len)
{
	Framing *f = cls;

	(void) kind;
	if (!is_token(name, name_len) || strlen(name) != name_len)
		f->bad_name = true;
	if (value != NULL && (memchr(value, '\0', value_len) || memchr(value, '\r', value_len)))
		f->bad_value = true;
	if (strcasecmp(name, MHD_HTTP_HEADER_HOST) == 0)
		f->hosts++;
	else if (strcasecmp(name, MHD_HTTP_HEADER_CONTENT_LENGTH) == 0)
		f->content_lengths++;
	else if (strcasecmp(name, MHD_HTTP_HEADER_TRANSFER_ENCODING) == 0)
	{
		f->transfer_encodings++;
		if (value == NULL || strcasecmp(value, "chunked") != 0)
			f->chunked_only = false;
	}
	return MHD_YES;
}

/* Why the request's framing is refused, or NULL when it is sound. */
static const char *
framing_error(struct MHD_Connection *con, const char *version)
{
	Framing f = {.chunked_only = true};

	MHD_get_connection_values_n(con, MHD_HEADER_KIND, framing_field, &f);
	if (f.bad_name)
		return "Malformed header field name (no space is allowed before the colon)";
	if (f.bad_value)
		return "Malformed header field value (a NUL or a bare CR)";
	if (f.hosts > 1 || (f.hosts == 0 && strcmp(version, MHD_HTTP_VERSION_1_1) == 0))
		return "An HTTP/1.1 request must carry exactly one Host header";
	if (f.content_lengths > 1)
		return "More than one Content-Length header";
	if (f.transfer_encodings > 0 && f.content_lengths > 0)
		return "Both Content-Length and Transfer-Encoding: send one of them";
	if (f.transfer_encodings > 1 || !f.chunked_only)
		return "Unsupported Transfer-Encoding: only a single \"chunked\" is accepted";
	return NULL;
}

/* ---------------------------------------------------------------- endpoints */

/* 200 when the database answers, else 503; with a spool, its depth and oldest age too. */
static enum MHD_Result
answer_health(struct MHD_Connection *con, Request *req)
{
	bool up = req->outcome == DB_OK;
	SpoolStats ss;
	char body[256];

	spool_stats(&ss);
	snprintf(body, sizeof(body), "{\"status\": \"%s\", \"database\": \"%s\"",
			 up ? "ok" : "unavailable", up ? "up" : "down");
	if (ss.enabled)
		snprintf(body + strlen(body), sizeof(body) - strlen(body),
				 ", \"spool\": {\"depth\": %u, \"oldest_age_seconds\": %.3f}", ss.depth,
				 ss.oldest_age);
	strcat(body, "}");
	if (up)
		return respond_json(con, req, 200, body, NULL, NULL);
	return respond_json(con, req, 503, body, MHD_HTTP_HEADER_RETRY_AFTER, "1");
}

static enum MHD_Result
answer_metrics(struct MHD_Connection *con, Request *req)
{
	Buf b;
	enum MHD_Result ret;

	buf_init(&b);
	metrics_render(&b);
	if (b.oom)
		ret = respond_internal(con, req);
	else
		ret = respond(con, req, 200, b.data, b.len, "text/plain; version=0.0.4; charset=utf-8",
					  NULL, NULL, NULL, NULL);
	buf_free(&b);
	return ret;
}

/* The first call: everything that the headers alone decide. */
static enum MHD_Result
first_call(struct MHD_Connection *con, Request *req, const char *method, const char *version)
{
	const char *malformed;
	Route route;
	const char *key;
	const char *cl;
	size_t len;

	/* as snprintf would, without its cost on every request: cut to the field */
	len = strnlen(method, sizeof(req->method) - 1);
	memcpy(req->method, method, len);
	req->method[len] = '\0';

	malformed = framing_error(con, version);
	if (malformed != NULL)
		return respond_error(con, req, 400, malformed, MHD_HTTP_HEADER_CONNECTION, "close");
	route = route_of(req->path);
	if (route == ROUTE_NONE)
		return respond_error(con, req, 404, "Not found", NULL, NULL);
	if (route == ROUTE_HEALTH || route == ROUTE_METRICS)
	{
		if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
			return respond_error(con, req, 405, "Method not allowed", MHD_HTTP_HEADER_ALLOW,
								 "GET, HEAD");
		/* answered at the last call: an early answer would close a keep-alive connection */
		req->route = route;
		req->kind = BODY_NONE;
		return MHD_YES;
	}
	req->route = ROUTE_INTAKE;

	/* the intake endpoint */
	if (strcmp(method, "POST") == 0)
	{
		const char *ct =
			MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);

		req->has_content_type = ct != NULL;
		req->kind = content_kind(ct);
	}
	else if (strcmp(method, "GET") == 0)
		req->kind = BODY_NONE;
	else
		return respond_error(con, req, 405, "Method not allowed", MHD_HTTP_HEADER_ALLOW,
							 "GET, POST");

	if (req->query && !form_parse(&req->query_params, req->query, strlen(req->query)))
		return respond_internal(con, req);

	/* the key: the header; else, with --allow-query-key, api_key in the query or form */
	key = MHD_lookup_connection_value(con, MHD_HEADER_KIND, KEY_HEADER);
	if (key != NULL)
		req->authed = keys_match(key, strlen(key), req->key_name, sizeof(req->key_name));
	else if (shim_config.allow_query_key)
	{
		if (params_lookup(&req->query_params, "api_key", NULL) > 0)
			req->authed = param_key_ok(req, &req->query_params);
		else if (req->kind == BODY_FORM)
			req->key_in_form = true; /* decided when the body is in */
	}
	if (!req->authed && !req->key_in_form)
		return respond_unauthorized(con, req);

	if (req->kind == BODY_BAD)
		return respond_error(con, req, 415,
							 "Unsupported Content-Type: send application/json or "
							 "application/x-www-form-urlencoded",
							 NULL, NULL);

	cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL)
	{
		char *end;
		unsigned long long n = strtoull(cl, &end, 10);

		if (n > shim_config.max_body)
			return respond_error(con, req, 413, "Request body too large", NULL, NULL);
	}
	return MHD_YES;
}

/* A piece of the body: kept while under --max-body. */
static enum MHD_Result
take_body(Request *req, const char *data, size_t len)
{
	req->received += len;
	if (req->too_big)
	{
		if (req->received - shim_config.max_body <= DISCARD_LIMIT)
			return MHD_YES;
		log_msg("closing a connection: its chunked body went past --max-body by over %d "
				"bytes",
				DISCARD_LIMIT);
		return MHD_NO;
	}
	if (req->received > shim_config.max_body)
	{
		req->too_big = true;
		buf_free(&req->body);
		return MHD_YES;
	}
	if (req->kind != BODY_NONE)
		buf_append(&req->body, data, len);
	return MHD_YES;
}

/* The 303 of the browser flow: --dashboard-url, then ? or &, then the extension's query. */
static enum MHD_Result
respond_redirect(struct MHD_Connection *con, Request *req, const IntakeResult *res)
{
	const char *url = shim_config.dashboard_url;
	size_t ulen = strlen(url);
	Buf loc;
	enum MHD_Result ret;

	buf_init(&loc);
	buf_puts(&loc, url);
	if (strchr(url, '?') == NULL)
		buf_puts(&loc, "?");
	else if (ulen > 0 && url[ulen - 1] != '?' && url[ulen - 1] != '&')
		buf_puts(&loc, "&");
	buf_puts(&loc, res->dashboard_query);
	if (loc.oom)
		ret = respond_internal(con, req);
	else
		ret = respond(con, req, 303, res->response, strlen(res->response), "application/json",
					  MHD_HTTP_HEADER_LOCATION, loc.data, NULL, NULL);
	buf_free(&loc);
	return ret;
}

static void
resume(Request *req)
{
	if (req->con == NULL)
	{
		pthread_mutex_lock(&inproc_lock);
		atomic_store(&req->done, true);
		pthread_cond_broadcast(&inproc_done);
		pthread_mutex_unlock(&inproc_lock);
		return;
	}
	atomic_store(&req->done, true);
	MHD_resume_connection(req->con);
}

/* In a worker thread: the health checks queued together get one SELECT 1, then go on. */
static void
run_pings(Db *db, void **args, const bool *expired, int n)
{
	DbOutcome outcome = DB_UNAVAILABLE;
	bool pinged = false;

	for (int i = 0; i < n; i++)
	{
		Request *req = args[i];

		if (!expired[i] && !pinged)
		{
			outcome = db_ping(db);
			pinged = true;
		}
		req->outcome = expired[i] ? DB_UNAVAILABLE : outcome;
		resume(req);
	}
}

/*
 * req durably in the spool (contract section 8), secrets removed; false when it cannot be
 * (no spool, full, not writable, or a body that is not one JSON object): then 503.
 */
static bool
spool_request(Request *req)
{
	Buf body;
	SpoolResult r = SPOOL_FAILED;

	if (!spool_enabled())
		return false;
	buf_init(&body);
	if (json_drop_secrets(req->payload.data ? req->payload.data : "", req->payload.len, &body))
		r = spool_write(&(IntakeCall){.body = body.data,
									  .body_len = body.len,
									  .key_name = req->key_name,
									  .client_addr = req->client,
									  .param_key = req->param_key,
									  .received_us = req->received_us});
	buf_free(&body);
	return r == SPOOL_OK;
}

/*
 * The database could not serve req: true when it is to try again later (--db-wait, contract
 * section 8), deferred with no thread held; false when its wait is over (or the shim stops).
 */
static bool
wait_for_database(Request *req)
{
	double now = now_monotonic();

	if (req->unavailable_since == 0)
		req->unavailable_since = now;
	if (work_stopping() || now - req->unavailable_since >= shim_config.db_wait)
		return false;
	work_defer(&req->job, now + DB_RETRY_INTERVAL);
	return true;
}

/*
 * In a worker thread: the intake calls queued together, in one transaction (each its own
 * outcome), then their connections go on, or wait for the database.
 */
static void
run_intakes(Db *db, void **args, const bool *expired, int n)
{
	IntakeCall calls[BATCH_MAX];
	IntakeCall *live[BATCH_MAX];
	bool calls_made[BATCH_MAX] = {false};
	int nlive = 0;

	for (int i = 0; i < n; i++)
	{
		Request *req = args[i];

		/* while the spool holds requests, new ones join its end: arrival order is kept */
		if (expired[i] || spool_depth() > 0)
		{
			req->outcome = DB_UNAVAILABLE;
			continue;
		}
		calls[i] = (IntakeCall){.body = req->payload.data ? req->payload.data : "",
								.body_len = req->payload.len,
								.key_name = req->key_name,
								.client_addr = req->client,
								.param_key = req->param_key};
		calls_made[i] = true;
		live[nlive++] = &calls[i];
	}
	if (nlive > 0)
		db_intake(db, live, nlive);
	for (int i = 0; i < n; i++)
	{
		Request *req = args[i];

		if (calls_made[i])
		{
			req->outcome = calls[i].outcome;
			req->result = calls[i].result;
		}
		if (req->outcome == DB_UNAVAILABLE && spool_depth() == 0 && wait_for_database(req))
			continue;
		if (req->outcome == DB_UNAVAILABLE)
			req->spooled = spool_request(req);
		resume(req);
	}
}

/* Suspends the connection and hands the call to a worker; the answer comes on resume. */
static enum MHD_Result
submit(struct MHD_Connection *con, Request *req)
{
	req->con = con;
	req->submitted = true;
	if (con != NULL)
		MHD_suspend_connection(con); /* before the worker can resume it */
	work_submit(&req->job, req->route == ROUTE_HEALTH ? run_pings : run_intakes, req);
	return MHD_YES;
}

/* A spooled request: 202 (contract section 6), or the browser flow's 303 without a lead id. */
static enum MHD_Result
respond_spooled(struct MHD_Connection *con, Request *req)
{
	static const char body[] = "{\"success\": true, \"queued\": true, \"message\": \"Lead queued: "
							   "the database is unavailable\"}";

	if (req->redirect && shim_config.dashboard_url)
		return respond_redirect(con, req,
								&(IntakeResult){.status = 202,
												.response = (char *) body,
												.dashboard_query = "from_dialer=true&queued=true"});
	return respond_json(con, req, 202, body, NULL, NULL);
}

/* After the worker: the extension's status and body, or 303, 202 (spooled), 503, 500. */
static enum MHD_Result
answer_intake(struct MHD_Connection *con, Request *req)
{
	IntakeResult *res = &req->result;

	if (req->outcome == DB_UNAVAILABLE && req->spooled)
		return respond_spooled(con, req);
	if (req->outcome == DB_UNAVAILABLE)
		return respond_unavailable(con, req);
	if (req->outcome == DB_ERROR)
		return respond_internal(con, req);
	if (res->status < 200 || res->status > 599)
	{
		log_msg("leadintake.http_intake returned status %d", res->status);
		return respond_internal(con, req);
	}
	if (res->status == 201 && req->redirect && shim_config.dashboard_url &&
		res->dashboard_query != NULL)
		return respond_redirect(con, req, res);
	return respond_json(con, req, res->status, res->response, NULL, NULL);
}

/*
 * A form body that is, as a whole, one JSON object: what `curl -d '{...}'` sends, with the
 * form content type. The rule (docs/shim.md): after leading and trailing white space, the
 * first byte is `{` and the last is `}`. No form VICIdial sends looks so (its keys are
 * names); the extension still validates the JSON.
 */
static bool
is_json_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n'; /* RFC 8259's white space */
}

static bool
form_is_json_object(const Buf *body)
{
	size_t start = 0;
	size_t end = body->len;

	while (start < end && is_json_space(body->data[start]))
		start++;
	while (end > start && is_json_space(body->data[end - 1]))
		end--;
	return end - start >= 2 && body->data[start] == '{' && body->data[end - 1] == '}';
}

/* The last call: the whole body is in. */
static enum MHD_Result
finish_intake(struct MHD_Connection *con, Request *req)
{
	Params form;
	bool redirect;
	unsigned retry_after;
	enum MHD_Result ret;
	char ra[16];

	if (req->too_big)
		return respond_error(con, req, 413, "Request body too large", NULL, NULL);
	if (req->body.oom)
		return respond_internal(con, req);

	params_init(&form);
	if (req->kind == BODY_FORM && req->body.len > 0 && form_is_json_object(&req->body))
		req->kind = BODY_JSON; /* forwarded as it came, like a JSON body */
	if (req->kind == BODY_FORM && req->body.len > 0 &&
		!form_parse(&form, req->body.data, req->body.len))
	{
		ret = respond_internal(con, req);
		goto done;
	}
	if (req->key_in_form)
		req->authed = param_key_ok(req, &form);
	if (!req->authed)
	{
		ret = respond_unauthorized(con, req);
		goto done;
	}
	if (!ratelimit_take(req->key_name, &retry_after))
	{
		snprintf(ra, sizeof(ra), "%u", retry_after);
		ret = respond_error(con, req, 429, "Rate limit exceeded; retry later",
							MHD_HTTP_HEADER_RETRY_AFTER, ra);
		goto done;
	}

	redirect = wants_redirect(&req->query_params) || wants_redirect(&form);
	if (req->kind == BODY_JSON && !(req->body.len == 0 && !req->has_content_type))
	{
		/* a JSON body goes byte for byte; fields belong in it, not in the URL */
		if (has_payload_params(&req->query_params))
		{
			ret = respond_error(con, req, 400,
								"Query parameters other than api_key and redirect are not "
								"accepted with a JSON body: send every field in the body",
								NULL, NULL);
			goto done;
		}
		req->payload = req->body; /* the bytes as they came */
		buf_init(&req->body);
	}
	else
	{
		/* GET, a form body, or a POST with no body at all: the parameters as JSON */
		if (!params_concat(&req->query_params, &form))
		{
			ret = respond_internal(con, req);
			goto done;
		}
		form_to_json(&req->query_params, &req->payload);
		if (req->payload.oom)
		{
			ret = respond_internal(con, req);
			goto done;
		}
	}
	req->redirect = redirect;
	ret = submit(con, req);

done:
	params_free(&form);
	return ret;
}

/* ---------------------------------------------------------------- MHD callbacks */

static enum MHD_Result
handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	Request *req = *req_cls;

	(void) cls;
	(void) url; /* decoded: routing uses the path as sent (request_begins) */
	if (req == NULL)
		return MHD_NO; /* out of memory when the request began */
	if (!req->started)
	{
		enum MHD_Result ret;

		req->started = true;
		ret = first_call(con, req, method, version);
		if (req->status != 0)
			request_in(con); /* answered early: libmicrohttpd reads no body */
		return ret;
	}
	if (*upload_data_size > 0)
	{
		enum MHD_Result ret = take_body(req, upload_data, *upload_data_size);

		*upload_data_size = 0;
		return ret;
	}
	/* the last call: the whole request is in */
	request_in(con);
	if (req->submitted)
	{
		/* resumed: the worker is done */
		if (!atomic_load(&req->done))
			return MHD_YES;
		return req->route == ROUTE_HEALTH ? answer_health(con, req) : answer_intake(con, req);
	}
	if (req->route == ROUTE_HEALTH)
		return submit(con, req);
	if (req->route == ROUTE_METRICS)
		return answer_metrics(con, req);
	return finish_intake(con, req);
}

/* A new request for uri from client; NULL when out of memory. */
static Request *
request_new(const char *uri, const char *client)
{
	Request *req = calloc(1, sizeof(Request));

	if (req == NULL)
		return NULL;
	req->start = now_monotonic();
	req->received_us = wall_clock_us();
	params_init(&req->query_params);
	buf_init(&req->body);
	buf_init(&req->payload);
	atomic_init(&req->done, false);
	snprintf(req->client, sizeof(req->client), "%s", client);
	if (!http_split_uri(uri, &req->path, &req->query))
	{
		free(req);
		return NULL;
	}
	metrics_inflight_add(1);
	return req;
}

/* Called with the raw request line's URI, before anything else: the request begins. */
static void *
request_begins(void *cls, const char *uri, struct MHD_Connection *con)
{
	Request *req;
	const union MHD_ConnectionInfo *ci;
	Conn *c = http_socket_context(con);
	size_t path_len = strcspn(uri, "?#");
	char client[CLIENT_ADDR_MAX] = "";

	(void) cls;
	if (c != NULL)
		conn_request_begins(c, NULL); /* its deadline, even if req cannot be made */
	else if ((ci = MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS)) != NULL)
		sockaddr_text(ci->client_addr, client, sizeof(client));
	req = request_new(uri, c != NULL ? conn_client(c) : client); /* made once a connection */
	if (req == NULL)
		return NULL;
	if (uri[path_len] == '?')
	{
		/*
		 * libmicrohttpd 0.9.75 next splits the query into its per-connection pool, about 64
		 * bytes a parameter, and when that overflows it neither answers nor ends the request.
		 * The shim parses the query itself (req->query), so libmicrohttpd's copy is cut to
		 * nothing: the byte after '?' is still inside the request line it owns.
		 */
		((char *) uri)[path_len + 1] = '\0';
	}
	if (c != NULL)
		conn_request_begins(c, req); /* freed with the connection if libmicrohttpd forgets it */
	return req;
}

/* The request's log line, gauge and memory: once per request, however it ended. */
static void
request_end(Request *req)
{
	RequestLog log;
	double seconds = now_monotonic() - req->start;

	metrics_request(req->status, seconds);
	log.method = req->method[0] ? req->method : NULL;
	log.path = req->path;
	log.status = req->status;
	log.duration_ms = seconds * 1000.0;
	log.key_name = req->key_name[0] ? req->key_name : NULL;
	log.client_addr = req->client;
	log_request(&log);
	/* the query string may hold api_key: wipe it */
	if (req->query)
		memset(req->query, 0, strlen(req->query));
	free(req->query);
	free(req->path);
	params_free(&req->query_params);
	buf_free(&req->body);
	buf_free(&req->payload);
	free(req->result.response);
	free(req->result.dashboard_query);
	free(req->answer);
	free(req);
	metrics_inflight_add(-1);
}

static void
request_ends(void *cls, struct MHD_Connection *con, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	Request *req = *req_cls;
	Conn *c = http_socket_context(con);

	(void) cls;
	(void) toe;
	if (c != NULL)
		conn_request_ends(c);
	if (req == NULL)
		return;
	*req_cls = NULL;
	request_end(req);
}

/* ---------------------------------------------------------------- in-process */

int
http_intake_get(const char *query, const char *key_name, const char *client, char **body)
{
	Request *req = request_new(INTAKE_PATH "/", client);
	int status;

	*body = NULL;
	if (req == NULL)
		return 0;
	snprintf(req->method, sizeof(req->method), "GET");
	snprintf(req->key_name, sizeof(req->key_name), "%s", key_name);
	req->route = ROUTE_INTAKE;
	req->kind = BODY_NONE;
	req->authed = true; /* the console named the key: its secret is not needed */
	req->query = strdup(query);
	if (req->query == NULL || !form_parse(&req->query_params, req->query, strlen(req->query)))
		respond_internal(NULL, req);
	else
		finish_intake(NULL, req);
	if (req->submitted)
	{
		pthread_mutex_lock(&inproc_lock);
		while (!atomic_load(&req->done))
			pthread_cond_wait(&inproc_done, &inproc_lock);
		pthread_mutex_unlock(&inproc_lock);
		answer_intake(NULL, req);
	}
	status = req->status;
	*body = req->answer;
	req->answer = NULL;
	request_end(req);
	return status;
}

/* ---------------------------------------------------------------- the daemon */

/*
 * --allow-ip is enforced at accept, on the TCP peer (X-Forwarded-For and the like are never
 * read): a refused address never holds a connection slot, so it cannot crowd out allowed
 * clients. Said on stderr at most once a second; /metrics counts every one.
 */
static enum MHD_Result
accept_policy(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
	static _Atomic double last_logged;
	char client[CLIENT_ADDR_MAX];
	double now;

	(void) cls;
	(void) addrlen;
	if (acl_allows(addr))
		return MHD_YES;
	metrics_refused();
	now = now_monotonic();
	if (now - atomic_load(&last_logged) >= 1.0)
	{
		atomic_store(&last_logged, now);
		sockaddr_text(addr, client, sizeof(client));
		log_msg("refusing connections from %s: not in --allow-ip", client);
	}
	return MHD_NO;
}

/*
 * libmicrohttpd's own messages go to stderr like the shim's, at most MHD_LOG_PER_SECOND a
 * second: it writes one for every broken connection, and a flood must not fill the log.
 */
#define MHD_LOG_PER_SECOND 10

void
http_mhd_logger(void *cls, const char *fmt, va_list ap)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static double window_start;
	static unsigned shown, suppressed;
	unsigned dropped = 0;
	bool show;
	double now = now_monotonic();

	(void) cls;
	pthread_mutex_lock(&lock);
	if (now - window_start >= 1.0)
	{
		dropped = suppressed;
		window_start = now;
		shown = suppressed = 0;
	}
	show = shown < MHD_LOG_PER_SECOND;
	if (show)
		shown++;
	else
		suppressed++;
	pthread_mutex_unlock(&lock);
	if (dropped > 0)
		log_msg("(%u more messages of libmicrohttpd were not shown: over %d a second)", dropped,
				MHD_LOG_PER_SECOND);
	if (show)
		log_vmsg(fmt, ap);
}

struct MHD_Daemon *
http_start(void)
{
	const ShimConfig *c = &shim_config;
	/*
	 * poll, not epoll: libmicrohttpd 0.9.75 uses epoll edge-triggered, and misses a client's
	 * close that arrives with the last bytes of a partial request; the socket then waits for
	 * --timeout (a flood of one-byte connections stalled every client for 45 s).
	 */
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME |
						 MHD_USE_ITC | MHD_USE_ERROR_LOG;
	uint16_t port;
	struct MHD_Daemon *d;
	struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL},
									{MHD_OPTION_END, 0, NULL},
									{MHD_OPTION_END, 0, NULL},
									{MHD_OPTION_END, 0, NULL}};

	if (c->listen_addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (c->tls_cert_pem)
	{
		flags |= MHD_USE_TLS;
		tls[0].option = MHD_OPTION_HTTPS_MEM_CERT;
		tls[0].ptr_value = c->tls_cert_pem;
		tls[1].option = MHD_OPTION_HTTPS_MEM_KEY;
		tls[1].ptr_value = c->tls_key_pem;
		tls[2].option = MHD_OPTION_HTTPS_PRIORITIES;
		tls[2].ptr_value = TLS_PRIORITIES;
	}
	/* the port is in the address; given here too, for libmicrohttpd's messages */
	port = c->listen_addr.ss_family == AF_INET6
			   ? ntohs(((const struct sockaddr_in6 *) &c->listen_addr)->sin6_port)
			   : ntohs(((const struct sockaddr_in *) &c->listen_addr)->sin_port);
	d = MHD_start_daemon(
		flags, port, accept_policy, NULL, handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, http_mhd_logger,
		NULL, MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) c->max_connections_per_ip,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *) &c->listen_addr,
		MHD_OPTION_THREAD_POOL_SIZE, (unsigned int) c->threads, MHD_OPTION_CONNECTION_TIMEOUT,
		(unsigned int) c->timeout, MHD_OPTION_CONNECTION_LIMIT, (unsigned int) c->max_connections,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) (64 * 1024), MHD_OPTION_URI_LOG_CALLBACK,
		request_begins, NULL, MHD_OPTION_NOTIFY_COMPLETED, request_ends, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, notify_connection, NULL, MHD_OPTION_ARRAY, tls,
		MHD_OPTION_END);
	if (d == NULL)
		return NULL;
	if (!sweeper_start())
	{
		log_msg("cannot start the thread that enforces --timeout");
		MHD_stop_daemon(d);
		return NULL;
	}
	return d;
}

void
http_stop(struct MHD_Daemon *d)
{
	MHD_stop_daemon(d); /* closes every connection: the table is empty after it */
	sweeper_stop();
}

void
http_quiesce(struct MHD_Daemon *d)
{
	MHD_socket fd;

	atomic_store(&draining, true);
	fd = MHD_quiesce_daemon(d);
	if (fd != MHD_INVALID_SOCKET)
		close(fd);
}

unsigned
http_bound_port(struct MHD_Daemon *d)
{
	const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);

	return info ? info->port : 0;
}
