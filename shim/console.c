/*
 * console.c: the console's HTTP side (contract section 9, docs/console.md) on a daemon of its
 * own: the page's files, sign-in, the CSRF and Origin checks, and the API routes.
 */
#include "shim.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PAGE_PREFIX "/console/"
#define API_PREFIX  "/console/api/"
#define COOKIE_NAME "li_console"
#define CSRF_HEADER "X-CSRF-Token"

/* Largest request body (a test lead's query is the longest): larger is 413. */
#define CONSOLE_MAX_BODY (64 * 1024)
/* A chunked body past it is read to its end for the 413, up to this much more. */
#define CONSOLE_DISCARD_LIMIT (1024 * 1024)
/* A thread each: the console has a handful of users, never the dialer's load. */
#define CONSOLE_CONNECTIONS        32
#define CONSOLE_CONNECTIONS_PER_IP 16

#define SECURITY_HEADERS_N 4
static const char *const security_headers[SECURITY_HEADERS_N][2] = {
	{"Content-Security-Policy", "default-src 'self'"},
	{"X-Frame-Options", "DENY"},
	{"Referrer-Policy", "same-origin"},
	{"X-Content-Type-Options", "nosniff"},
};

typedef enum Handler
{
	H_SQL, /* one call of the route's function, its JSON as it is */
	H_SIGN_IN,
	H_SIGN_OUT,
	H_SESSION,
	H_HEALTH,
	H_SETUP,
	H_TEST_LEAD
} Handler;

typedef struct ApiRoute
{
	const char *name; /* under /console/api/ */
	const char *method;
	Handler handler;
	const char *function; /* leadintake.<function>(args jsonb) */
} ApiRoute;

static const ApiRoute api_routes[] = {
	{"sign-in", "POST", H_SIGN_IN, NULL},
	{"sign-out", "POST", H_SIGN_OUT, NULL},
	{"session", "GET", H_SESSION, NULL},
	{"health", "GET", H_HEALTH, "console_health"},
	{"test-lead", "POST", H_TEST_LEAD, NULL},
	{"requests", "GET", H_SQL, "console_requests"},
	{"request", "GET", H_SQL, "console_request"},
	{"failures", "GET", H_SQL, "console_failures"},
	{"replay", "POST", H_SQL, "console_replay"},
	{"replay-group", "POST", H_SQL, "console_replay_group"},
	{"agents", "GET", H_SQL, "console_agents"},
	{"agent-add", "POST", H_SQL, "console_agent_add"},
	{"agent-edit", "POST", H_SQL, "console_agent_edit"},
	{"agent-active", "POST", H_SQL, "console_agent_active"},
	{"setup", "GET", H_SETUP, "console_setup"},
};
#define N_API_ROUTES (sizeof(api_routes) / sizeof(api_routes[0]))

/* The dialer endpoint's URL on this shim: set-up's default base_url. */
static char intake_url[256];

typedef struct ConsoleReq
{
	double start;
	char client[CLIENT_ADDR_MAX];
	char method[16];
	char *path;  /* as sent, without the query */
	char *query; /* after '?', or NULL */
	bool started;
	int status; /* the status sent; 0 none yet */
	const ApiRoute *route;
	const ConsoleFile *file;
	bool form; /* the body is application/x-www-form-urlencoded */
	Buf body;
	size_t received;
	bool too_big;
	bool signed_in;
	SessionInfo session;
	char token[SESSION_TOKEN_LEN + 1]; /* the cookie's, when it names a live session */
} ConsoleReq;

/* A connection's state: the request on it, freed at its close if nothing else did. */
typedef struct ConsoleConn
{
	ConsoleReq *req;
} ConsoleConn;

/* ---------------------------------------------------------------- answers */

/* One answer: the security headers always, then one more header if h is set. */
static enum MHD_Result
send_answer(struct MHD_Connection *con, ConsoleReq *req, int status, const char *content_type,
			const void *body, size_t len, const char *h, const char *v)
{
	struct MHD_Response *resp;

	resp = MHD_create_response_from_buffer(len, (void *) body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	for (int i = 0; i < SECURITY_HEADERS_N; i++)
		MHD_add_response_header(resp, security_headers[i][0], security_headers[i][1]);
	if (content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
	/* the page may be cached if checked first; the API's answers never */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
							req->file ? "no-cache" : "no-store");
	if (h)
		MHD_add_response_header(resp, h, v);
	return http_queue(con, status, resp, &req->status) ? MHD_YES : MHD_NO;
}

static enum MHD_Result
send_json(struct MHD_Connection *con, ConsoleReq *req, int status, const Buf *json)
{
	if (json->oom)
		return MHD_NO;
	return send_answer(con, req, status, "application/json", json->data, json->len, NULL, NULL);
}

static void
error_json(Buf *b, const char *message)
{
	buf_puts(b, "{\"error\": ");
	buf_json_string(b, message, strlen(message));
	buf_puts(b, "}");
}

/* {"error": message}, with one more header if h is set. */
static enum MHD_Result
send_error(struct MHD_Connection *con, ConsoleReq *req, int status, const char *message,
		   const char *h, const char *v)
{
	Buf b;
	enum MHD_Result ret = MHD_NO;

	buf_init(&b);
	error_json(&b, message);
	if (!b.oom)
		ret = send_answer(con, req, status, "application/json", b.data, b.len, h, v);
	buf_free(&b);
	return ret;
}

/* 204 with the session's cookie: token set, or "" to clear it. */
static enum MHD_Result
send_cookie(struct MHD_Connection *con, ConsoleReq *req, const char *token)
{
	char cookie[SESSION_TOKEN_LEN + 128];

	snprintf(cookie, sizeof(cookie), "%s=%s; Path=%s; HttpOnly; SameSite=Strict%s%s", COOKIE_NAME,
			 token, PAGE_PREFIX, *token ? "" : "; Max-Age=0",
			 shim_config.tls_cert ? "; Secure" : "");
	return send_answer(con, req, 204, NULL, "", 0, MHD_HTTP_HEADER_SET_COOKIE, cookie);
}

/* ---------------------------------------------------------------- request checks */

/* The route of an API path's name, or NULL. */
static const ApiRoute *
api_route(const char *name)
{
	for (size_t i = 0; i < N_API_ROUTES; i++)
		if (strcmp(api_routes[i].name, name) == 0)
			return &api_routes[i];
	return NULL;
}

/* The page's file at path (PAGE_PREFIX alone: index.html), or NULL. */
static const ConsoleFile *
page_file(const char *path)
{
	const char *name = path + strlen(PAGE_PREFIX);

	if (strncmp(path, PAGE_PREFIX, strlen(PAGE_PREFIX)) != 0)
		return NULL;
	if (*name == '\0')
		name = "index.html";
	for (const ConsoleFile *f = console_files; f->name != NULL; f++)
		if (strcmp(f->name, name) == 0)
			return f;
	return NULL;
}

/*
 * The browser's Origin, when it sent one, is the console's own: https://Host under TLS;
 * without it http://Host or https://Host, as a reverse proxy that ends TLS passes Host
 * through (docs/console.md, "Running it behind TLS").
 */
static bool
origin_ok(struct MHD_Connection *con)
{
	const char *origin = MHD_lookup_connection_value(con, MHD_HEADER_KIND, "Origin");
	const char *host = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	const char *rest;

	if (origin == NULL)
		return true;
	if (host == NULL)
		return false;
	if (strncasecmp(origin, "https://", 8) == 0)
		rest = origin + 8;
	else if (!shim_config.tls_cert && strncasecmp(origin, "http://", 7) == 0)
		rest = origin + 7;
	else
		return false;
	return strcasecmp(rest, host) == 0;
}

/* The session of the request's cookie, if it names a live one. */
static void
find_session(struct MHD_Connection *con, ConsoleReq *req)
{
	const char *token = MHD_lookup_connection_value(con, MHD_COOKIE_KIND, COOKIE_NAME);

	if (token == NULL || strlen(token) != SESSION_TOKEN_LEN)
		return;
	req->signed_in = session_find(token, &req->session);
	if (req->signed_in)
		memcpy(req->token, token, sizeof(req->token));
}

/* A POST's CSRF token is its session's. */
static bool
csrf_ok(struct MHD_Connection *con, const ConsoleReq *req)
{
	const char *sent = MHD_lookup_connection_value(con, MHD_HEADER_KIND, CSRF_HEADER);

	return sent != NULL && token_equal(sent, req->session.csrf);
}

/* The media type of Content-Type is application/json (or there is none). */
static bool
is_json_type(const char *ct)
{
	size_t len;

	if (ct == NULL)
		return true;
	len = strcspn(ct, "; \t");
	return len == 16 && strncasecmp(ct, "application/json", 16) == 0;
}

/* A string field of the body (form or JSON) into out; false when missing or not one. */
static bool
body_field(const ConsoleReq *req, const char *name, Buf *out)
{
	Params form;
	const Param *p;
	bool found;

	if (!req->form)
		return json_get_string(req->body.data ? req->body.data : "", req->body.len, name, out);
	params_init(&form);
	found = form_parse(&form, req->body.data ? req->body.data : "", req->body.len) &&
			params_lookup(&form, name, &p) == 1 && memchr(p->value, '\0', p->value_len) == NULL;
	if (found)
		buf_append(out, p->value, p->value_len);
	for (size_t i = 0; i < form.count; i++)
		memset(form.items[i].value, 0, form.items[i].value_len); /* it may be a key */
	params_free(&form);
	return found && !out->oom;
}

/* ---------------------------------------------------------------- handlers */

static enum MHD_Result
sign_in(struct MHD_Connection *con, ConsoleReq *req)
{
	Buf key;
	char name[KEY_NAME_MAX] = "";
	char token[SESSION_TOKEN_LEN + 1];
	char retry[16];
	unsigned retry_after;
	bool ok;

	if (signin_blocked(req->client, &retry_after))
	{
		snprintf(retry, sizeof(retry), "%u", retry_after);
		return send_error(con, req, 429, "Too many failed sign-ins from this address; retry later",
						  MHD_HTTP_HEADER_RETRY_AFTER, retry);
	}
	buf_init(&key);
	ok = body_field(req, "key", &key) &&
		 keyring_match(console_keys, key.data, key.len, name, sizeof(name));
	if (key.data)
		memset(key.data, 0, key.len);
	buf_free(&key);
	log_sign_in(ok ? name : NULL, ok, req->client);
	if (!ok)
	{
		signin_failed(req->client);
		return send_error(con, req, 401, "Wrong console key", NULL, NULL);
	}
	if (!session_create(name, token))
		return send_error(con, req, 500, "Internal server error", NULL, NULL);
	snprintf(req->session.key_name, sizeof(req->session.key_name), "%s", name);
	return send_cookie(con, req, token);
}

static enum MHD_Result
session_info(struct MHD_Connection *con, ConsoleReq *req)
{
	Buf b;
	enum MHD_Result ret;

	buf_init(&b);
	buf_puts(&b, "{\"key_name\": ");
	buf_json_string(&b, req->session.key_name, strlen(req->session.key_name));
	buf_printf(&b, ", \"csrf\": \"%s\"}", req->session.csrf);
	ret = send_json(con, req, 200, &b);
	buf_free(&b);
	return ret;
}

/* Adds "name": json (a JSON text) to the end of the JSON object in b. */
static void
object_add(Buf *b, const char *name, const char *json)
{
	if (b->len < 2 || b->data[b->len - 1] != '}')
		return;
	b->data[--b->len] = '\0';
	buf_printf(b, "%s\"%s\": %s}", b->len > 1 ? ", " : "", name, json);
}

/* The query parameters; set-up's base_url is this shim's dialer endpoint unless given. */
static bool
query_params(const ConsoleReq *req, Params *query)
{
	Params base;
	bool ok;
	char text[sizeof(intake_url) + 16];

	if (req->query != NULL && !form_parse(query, req->query, strlen(req->query)))
		return false;
	if (req->route->handler != H_SETUP || params_lookup(query, "base_url", NULL) > 0)
		return true;
	params_init(&base);
	snprintf(text, sizeof(text), "base_url=%s", intake_url); /* no byte to encode in it */
	ok = form_parse(&base, text, strlen(text)) && params_concat(query, &base);
	params_free(&base);
	return ok;
}

/* The arguments of a call into args: a GET's query parameters as strings, a POST's JSON
 * body; NULL, or why not (and *status). */
static const char *
call_args(struct MHD_Connection *con, const ConsoleReq *req, Buf *args, int *status)
{
	Params query;
	bool ok = true;

	if (strcmp(req->method, "POST") == 0)
	{
		*status = 415;
		if (!is_json_type(
				MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE)))
			return "Send the arguments as application/json";
		*status = 400;
		if (memchr(req->body.data ? req->body.data : "", '\0', req->body.len) != NULL)
			return "The body holds a NUL byte";
		buf_puts(args, req->body.len > 0 ? req->body.data : "{}");
	}
	else
	{
		params_init(&query);
		ok = query_params(req, &query);
		if (ok)
			form_to_json(&query, args);
		params_free(&query);
	}
	*status = 500;
	return ok && !args->oom ? NULL : "Internal server error";
}

/* The route's function called: its HTTP status, and its JSON (or {"error": ...}) in out. */
static int
call(struct MHD_Connection *con, const ConsoleReq *req, Buf *out)
{
	Buf args;
	int status;
	const char *why;

	buf_init(&args);
	why = call_args(con, req, &args, &status);
	if (why != NULL)
		error_json(out, why);
	else
		status = consoledb_call(req->route->function, args.data, out);
	buf_free(&args);
	return status;
}

/*
 * The route's function answered as JSON; add, when set, adds the shim's side to its answer
 * and returns the status to send (health, setup).
 */
static enum MHD_Result
api_sql(struct MHD_Connection *con, ConsoleReq *req, int (*add)(int status, Buf *out))
{
	Buf out;
	int status;
	enum MHD_Result ret;

	buf_init(&out);
	status = call(con, req, &out);
	if (add != NULL)
		status = add(status, &out);
	ret = send_json(con, req, status, &out);
	buf_free(&out);
	return ret;
}

/*
 * console_health's figures and the shim's own (the database reachable, pool, spool); with
 * the database away, 200 all the same: the shim's side, "database": false.
 */
static int
add_shim_health(int status, Buf *out)
{
	DbStats db;
	char pool[96];
	char spool[96];

	if (status == 503)
	{
		buf_free(out);
		buf_puts(out, "{}");
	}
	if (status != 200 && status != 503)
		return status;
	db_stats(&db);
	snprintf(pool, sizeof(pool), "{\"size\": %u, \"busy\": %u}", shim_config.pool_size, db.busy);
	snprintf(spool, sizeof(spool), "{\"enabled\": %s, \"depth\": %u}",
			 spool_enabled() ? "true" : "false", spool_depth());
	object_add(out, "database", status == 200 ? "true" : "false");
	object_add(out, "pool", pool);
	object_add(out, "spool", spool);
	return 200;
}

/* console_setup's URLs, and the names of the dialer keys for the test lead (no secret). */
static int
add_key_names(int status, Buf *out)
{
	Buf names;

	if (status != 200)
		return status;
	buf_init(&names);
	keyring_names(dialer_keys, &names);
	if (names.oom)
	{
		buf_free(out);
		error_json(out, "Internal server error");
		status = 500;
	}
	else
		object_add(out, "key_names", names.data);
	buf_free(&names);
	return status;
}

/* A dialer request made through the dialer endpoint's own path, as the named dialer key. */
static enum MHD_Result
test_lead(struct MHD_Connection *con, ConsoleReq *req)
{
	Buf key_name, query, out;
	const char *q;
	char *body = NULL;
	int status = 0;
	enum MHD_Result ret;

	buf_init(&key_name);
	buf_init(&query);
	buf_init(&out);
	if (!body_field(req, "key_name", &key_name) || !body_field(req, "query", &query))
		ret = send_error(con, req, 400, "Send key_name and query, both strings", NULL, NULL);
	else if (!keyring_has(dialer_keys, key_name.data))
		ret = send_error(con, req, 400, "No dialer key has this key_name", NULL, NULL);
	else if (memchr(query.data, '\0', query.len) != NULL)
		ret = send_error(con, req, 400, "The query holds a NUL byte", NULL, NULL);
	else
	{
		/* a whole URL is taken too: its query */
		q = strchr(query.data, '?') ? strchr(query.data, '?') + 1 : query.data;
		status = http_intake_get(q, key_name.data, req->client, &body);
		if (status == 0 || body == NULL)
			ret = send_error(con, req, 500, "Internal server error", NULL, NULL);
		else
		{
			/* the dialer's answers are JSON: its body goes in as a value */
			buf_printf(&out, "{\"status\": %d, \"body\": %s}", status, body);
			ret = send_json(con, req, 200, &out);
		}
	}
	free(body);
	buf_free(&key_name);
	buf_free(&query);
	buf_free(&out);
	return ret;
}

/* ---------------------------------------------------------------- routing */

static enum MHD_Result
api(struct MHD_Connection *con, ConsoleReq *req)
{
	bool post = strcmp(req->method, "POST") == 0;

	if (post && !origin_ok(con))
		return send_error(con, req, 403, "Cross-origin request refused", NULL, NULL);
	if (req->route->handler == H_SIGN_IN)
		return sign_in(con, req);
	if (!req->signed_in)
		return send_error(con, req, 401, "Sign in with a console key", NULL, NULL);
	if (post && !csrf_ok(con, req))
		return send_error(con, req, 403, "Missing or wrong " CSRF_HEADER " header", NULL, NULL);
	switch (req->route->handler)
	{
		case H_SIGN_OUT:
			session_end(req->token);
			return send_cookie(con, req, "");
		case H_SESSION:
			return session_info(con, req);
		case H_HEALTH:
			return api_sql(con, req, add_shim_health);
		case H_SETUP:
			return api_sql(con, req, add_key_names);
		case H_TEST_LEAD:
			return test_lead(con, req);
		default:
			return api_sql(con, req, NULL);
	}
}

/* The first call: what the request line and headers decide; 0 when the request goes on. */
static enum MHD_Result
first_call(struct MHD_Connection *con, ConsoleReq *req, const char *method)
{
	const char *allow;
	const char *cl;
	const char *ct;

	snprintf(req->method, sizeof(req->method), "%s", method);
	if (strcmp(req->path, "/") == 0 || strcmp(req->path, "/console") == 0)
		return send_answer(con, req, 303, NULL, "", 0, MHD_HTTP_HEADER_LOCATION, PAGE_PREFIX);
	if (strncmp(req->path, API_PREFIX, strlen(API_PREFIX)) == 0)
		req->route = api_route(req->path + strlen(API_PREFIX));
	else
		req->file = page_file(req->path);
	if (req->route == NULL && req->file == NULL)
		return send_error(con, req, 404, "Not found", NULL, NULL);
	allow = req->route ? req->route->method : "GET, HEAD";
	if (req->route ? strcmp(method, allow) != 0
				   : strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return send_error(con, req, 405, "Method not allowed", MHD_HTTP_HEADER_ALLOW, allow);
	cl = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
	if (cl != NULL && strtoull(cl, NULL, 10) > CONSOLE_MAX_BODY)
		return send_error(con, req, 413, "Request body too large", NULL, NULL);
	ct = MHD_lookup_connection_value(con, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
	req->form = ct != NULL && strncasecmp(ct, "application/x-www-form-urlencoded", 33) == 0;
	return MHD_YES;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
	   const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	ConsoleReq *req = *req_cls;

	(void) cls;
	(void) url;
	(void) version;
	if (req == NULL)
		return MHD_NO; /* out of memory when the request began */
	if (!req->started)
	{
		req->started = true;
		return first_call(con, req, method);
	}
	if (*upload_data_size > 0)
	{
		req->received += *upload_data_size;
		if (req->received > CONSOLE_MAX_BODY + CONSOLE_DISCARD_LIMIT)
			return MHD_NO; /* a chunked body without end: the connection is closed */
		if (req->received > CONSOLE_MAX_BODY)
			req->too_big = true; /* answered when the body ends */
		else
			buf_append(&req->body, upload_data, *upload_data_size);
		*upload_data_size = 0;
		return MHD_YES;
	}
	if (req->status != 0)
		return MHD_YES; /* answered at the first call */
	if (req->file)
		return send_answer(con, req, 200, req->file->content_type, req->file->data, req->file->len,
						   NULL, NULL);
	if (req->too_big)
		return send_error(con, req, 413, "Request body too large", NULL, NULL);
	if (req->body.oom)
		return send_error(con, req, 500, "Internal server error", NULL, NULL);
	find_session(con, req);
	return api(con, req);
}

/* ---------------------------------------------------------------- request lifetime */

/* The request's log line (the session's key name) and memory. */
static void
request_free(ConsoleReq *req)
{
	RequestLog log = {.method = req->method[0] ? req->method : NULL,
					  .path = req->path,
					  .status = req->status,
					  .duration_ms = (now_monotonic() - req->start) * 1000.0,
					  .key_name = req->session.key_name[0] ? req->session.key_name : NULL,
					  .client_addr = req->client};

	log_request(&log);
	if (req->body.data)
		memset(req->body.data, 0, req->body.len); /* a sign-in's key */
	buf_free(&req->body);
	free(req->path);
	free(req->query);
	free(req);
}

static void *
request_begins(void *cls, const char *uri, struct MHD_Connection *con)
{
	ConsoleReq *req = calloc(1, sizeof(ConsoleReq));
	ConsoleConn *c = http_socket_context(con);
	const union MHD_ConnectionInfo *ci =
		MHD_get_connection_info(con, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	(void) cls;
	if (req == NULL)
		return NULL;
	req->start = now_monotonic();
	buf_init(&req->body);
	if (ci)
		sockaddr_text(ci->client_addr, req->client, sizeof(req->client));
	if (!http_split_uri(uri, &req->path, &req->query))
	{
		free(req);
		return NULL;
	}
	if (c != NULL)
		c->req = req;
	return req;
}

static void
request_ends(void *cls, struct MHD_Connection *con, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	ConsoleConn *c = http_socket_context(con);

	(void) cls;
	(void) toe;
	if (*req_cls == NULL)
		return;
	if (c != NULL)
		c->req = NULL;
	request_free(*req_cls);
	*req_cls = NULL;
}

/* libmicrohttpd does not end every request (one it refuses itself): its close frees it. */
static void
notify_connection(void *cls, struct MHD_Connection *con, void **socket_context,
				  enum MHD_ConnectionNotificationCode toe)
{
	ConsoleConn *c = *socket_context;

	(void) cls;
	(void) con;
	if (toe == MHD_CONNECTION_NOTIFY_STARTED)
		*socket_context = calloc(1, sizeof(ConsoleConn));
	else if (toe == MHD_CONNECTION_NOTIFY_CLOSED && c != NULL)
	{
		if (c->req != NULL)
			request_free(c->req);
		free(c);
		*socket_context = NULL;
	}
}

/* ---------------------------------------------------------------- the daemon */

struct MHD_Daemon *
console_start(const char *dialer_url)
{
	const ShimConfig *c = &shim_config;
	/* poll, not select: the dialer's connections may take the descriptors below 1024 */
	unsigned int flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
						 MHD_USE_POLL | MHD_USE_ERROR_LOG;
	struct MHD_OptionItem tls[4] = {{MHD_OPTION_END, 0, NULL}};
	uint16_t port = c->console_addr.ss_family == AF_INET6
						? ntohs(((const struct sockaddr_in6 *) &c->console_addr)->sin6_port)
						: ntohs(((const struct sockaddr_in *) &c->console_addr)->sin_port);

	snprintf(intake_url, sizeof(intake_url), "%s/api/leads/from-dialer/", dialer_url);
	if (c->console_addr.ss_family == AF_INET6)
		flags |= MHD_USE_IPv6;
	if (c->tls_cert_pem)
	{
		flags |= MHD_USE_TLS;
		tls[0] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, c->tls_cert_pem};
		tls[1] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, c->tls_key_pem};
		tls[2] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0, (void *) TLS_PRIORITIES};
		tls[3] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
	}
	return MHD_start_daemon(
		flags, port, NULL, NULL, handle, NULL, MHD_OPTION_EXTERNAL_LOGGER, http_mhd_logger, NULL,
		MHD_OPTION_SOCK_ADDR, (const struct sockaddr *) &c->console_addr,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned int) CONSOLE_CONNECTIONS,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned int) CONSOLE_CONNECTIONS_PER_IP,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int) c->timeout,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) (64 * 1024), MHD_OPTION_URI_LOG_CALLBACK,
		request_begins, NULL, MHD_OPTION_NOTIFY_COMPLETED, request_ends, NULL,
		MHD_OPTION_NOTIFY_CONNECTION, notify_connection, NULL, MHD_OPTION_ARRAY, tls,
		MHD_OPTION_END);
}

void
console_stop(struct MHD_Daemon *d)
{
	if (d != NULL)
		MHD_stop_daemon(d);
	consoledb_close();
}
