/*
 * shim.h: what the files of leadintake-shim share: the configuration, the byte buffer and
 * the interface of each part (config, http, conns, form, jsonsecrets, jsonget, spool, keys, db,
 * work, metrics, ratelimit, acl, log, and the console: console, session, consoledb).
 */
#ifndef LEADINTAKE_SHIM_H
#define LEADINTAKE_SHIM_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define SHIM_NAME "leadintake-shim"
/* The version is the extension's (leadintake.control); shim/Makefile passes it. */
#ifndef SHIM_VERSION
#define SHIM_VERSION "unknown"
#endif

/* Exit status of a bad configuration (contract section 7). */
#define EXIT_CONFIG 2

/* ---------------------------------------------------------------- config.c */

typedef struct ShimConfig
{
	const char *db;     /* libpq conninfo; "" = libpq's environment */
	const char *listen; /* HOST:PORT as given */
	struct sockaddr_storage listen_addr;
	socklen_t listen_addrlen;
	const char *api_key_file;
	bool allow_query_key;
	const char *dashboard_url; /* NULL: no browser redirect */
	size_t max_body;           /* bytes */
	unsigned rate_limit;       /* requests a second per key; 0 = off */
	const char *tls_cert;
	const char *tls_key;
	char *tls_cert_pem; /* file contents, when TLS is on */
	char *tls_key_pem;
	unsigned timeout; /* seconds a connection may stay idle, or take to send a request */
	unsigned threads; /* MHD worker threads */
	unsigned max_connections;
	unsigned max_connections_per_ip; /* 0: no cap */
	unsigned pool_size;              /* database workers, each with its own connection */
	unsigned pool_wait_ms;           /* longest wait in the queue for a worker */
	unsigned batch_max;              /* most queued intake calls in one transaction */
	unsigned connect_timeout;        /* seconds, libpq connect_timeout */
	unsigned query_timeout_ms;       /* statement_timeout, and the client's own bound */
	unsigned drain_timeout;          /* seconds SIGTERM waits for requests in flight */
	unsigned db_wait;                /* seconds a request waits for an unavailable database */
	const char *spool_dir;           /* NULL: no spool (503 after --db-wait) */
	uint64_t spool_max;              /* bytes */
	const char *console_key_file;    /* NULL: no console (contract section 9) */
	const char *console_listen;      /* HOST:PORT as given */
	struct sockaddr_storage console_addr;
	socklen_t console_addrlen;
	const char *console_db; /* libpq conninfo of the console's connection; NULL: --db */
	unsigned console_idle;  /* seconds a console session may stay unused */
} ShimConfig;

extern ShimConfig shim_config;

/* Reads the environment, then argv; exits 2 with a message on any bad setting. */
extern void config_load(int argc, char **argv);

/* ---------------------------------------------------------------- buf.c */

typedef struct Buf
{
	char *data; /* always NUL-terminated when not NULL */
	size_t len;
	size_t cap;
	bool oom; /* an allocation failed: the content is incomplete */
} Buf;

extern void buf_init(Buf *b);
extern void buf_free(Buf *b);
extern void buf_append(Buf *b, const void *data, size_t len);
extern void buf_puts(Buf *b, const char *s);
extern void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends a JSON string literal of the bytes (quotes included); bytes >= 0x80 go as is. */
extern void buf_json_string(Buf *b, const char *s, size_t len);

/* ---------------------------------------------------------------- form.c */

typedef struct Param
{
	char *key; /* decoded, NUL-terminated, may contain NUL bytes */
	size_t key_len;
	char *value;
	size_t value_len;
} Param;

typedef struct Params
{
	Param *items;
	size_t count;
	size_t cap;
} Params;

extern void params_init(Params *p);
extern void params_free(Params *p);
/* Decodes application/x-www-form-urlencoded text (or a query string) into p; false: OOM. */
extern bool form_parse(Params *p, const char *text, size_t len);
/* Moves every parameter of src to the end of dst; false: OOM (both unchanged). */
extern bool params_concat(Params *dst, Params *src);
/* Number of parameters whose key is exactly name. The first one's value in *value. */
extern size_t params_lookup(const Params *p, const char *name, const Param **first);
/* True when name (ASCII, case-insensitive) is the parameter's key. */
extern bool param_key_is(const Param *param, const char *name, bool ignore_case);
/* True when the parameter's key is a secret of contract section 3 (any case). */
extern bool param_is_secret(const Param *param);
/* The same for a key of len bytes (ASCII, any case). */
extern bool key_is_secret(const char *key, size_t len);
/* True when the parameter is `redirect`, an instruction to the shim (section 7). */
extern bool param_is_instruction(const Param *param);
/*
 * Writes the parameters as one JSON object of strings; a repeated key becomes an array of
 * strings (nothing else is dropped). Secret keys (param_is_secret) and redirect
 * (param_is_instruction) are left out.
 */
extern void form_to_json(const Params *p, Buf *out);

/* ---------------------------------------------------------------- jsonsecrets.c */

/*
 * The JSON object s without its top-level members whose key is a secret (key_is_secret),
 * the others as they were; false when s is not one JSON object (out is then incomplete).
 */
extern bool json_drop_secrets(const char *s, size_t len, Buf *out);
/* The end of the JSON value at s[i], every part of it valid JSON; 0 if none. */
extern size_t json_value_end(const char *s, size_t len, size_t i);

/* ---------------------------------------------------------------- jsonget.c */

/*
 * The string member name of the JSON object s, decoded (UTF-8) into out; false when s is not
 * one JSON object, or name is missing, repeated or not a string.
 */
extern bool json_get_string(const char *s, size_t len, const char *name, Buf *out);

/* ---------------------------------------------------------------- keys.c */

#define KEY_NAME_MAX 128

/* One key file's keys: the dialer's (API keys) and the console's, never mixed. */
typedef struct KeyRing KeyRing;
extern KeyRing *const dialer_keys;
extern KeyRing *const console_keys;

/*
 * Loads the key file (name:secret lines); on failure keeps the old keys, fills err. A secret
 * that is also a key of other (if not NULL) is a failure: the two rings never share a key.
 */
extern bool keyring_load(KeyRing *ring, const char *path, KeyRing *other, char *err, size_t errlen);
/* Constant-time look-up of a presented secret; on a match copies the key's name. */
extern bool keyring_match(KeyRing *ring, const char *secret, size_t len, char *name,
						  size_t namelen);
extern int keyring_count(KeyRing *ring);
/* True when the ring holds a key of that name. */
extern bool keyring_has(KeyRing *ring, const char *name);
/* The names of the ring's keys as a JSON array of strings, into out. */
extern void keyring_names(KeyRing *ring, Buf *out);
/* The same on the dialer's keys (keys_load: no other ring checked). */
extern bool keys_load(const char *path, char *err, size_t errlen);
extern bool keys_match(const char *secret, size_t len, char *name, size_t namelen);
extern int keys_count(void);

/* ---------------------------------------------------------------- acl.c */

/* Adds one CIDR (or bare address) to the allowlist; false with err on a bad one. */
extern bool acl_add(const char *cidr, char *err, size_t errlen);
extern int acl_count(void);
/* True when the allowlist is empty or holds the peer address. */
extern bool acl_allows(const struct sockaddr *sa);
/* The peer address as text, IPv4-mapped IPv6 shown as IPv4; "" when unknown. */
extern void sockaddr_text(const struct sockaddr *sa, char *out, size_t outlen);

/* ---------------------------------------------------------------- ratelimit.c */

extern void ratelimit_init(unsigned per_second);
/* Takes a token from the key's bucket; false with the seconds to wait in *retry_after. */
extern bool ratelimit_take(const char *key_name, unsigned *retry_after);

/* ---------------------------------------------------------------- db.c */

/* Most intake calls one transaction carries: --batch-max's upper bound. */
#define BATCH_MAX 64

typedef enum DbOutcome
{
	/* the call returned its row */
	DB_OK,
	/* no connection, lost connection, or SQLSTATE class 08/53/57/58/40, 25006 or 55P03:
	 * 503 with Retry-After */
	DB_UNAVAILABLE,
	/* any other failure: 500 with generic text */
	DB_ERROR
} DbOutcome;

typedef struct IntakeResult
{
	int status;
	char *response;        /* malloc'd JSON text */
	char *dashboard_query; /* malloc'd, or NULL */
} IntakeResult;

/* One thread's database session: not connected until its first call, then kept. */
typedef struct Db
{
	struct pg_conn *conn; /* libpq's PGconn; NULL: not connected */
} Db;

/* One intake call: leadintake.http_intake, or spool_intake when received_us is set. */
typedef struct IntakeCall
{
	const char *body;
	size_t body_len; /* under 2 GiB */
	const char *key_name;
	const char *client_addr;
	bool param_key;        /* authenticated by an api_key parameter: the minimal body (section 7) */
	long long received_us; /* a spooled request's receive time, Unix µs; 0: a live one */
	DbOutcome outcome;
	IntakeResult result;
	bool retry; /* internal to db.c */
} IntakeCall;

typedef struct DbStats
{
	unsigned open; /* sessions established */
	unsigned busy; /* of them, in a call */
	uint64_t connects;
	uint64_t connect_failures;
	uint64_t unavailable;   /* calls answered 503 */
	uint64_t errors;        /* calls answered 500 */
	uint64_t batches;       /* transactions of several calls */
	uint64_t batch_retries; /* calls run again alone because their batch's transaction failed */
	bool up;                /* the last attempt reached the database */
} DbStats;

/*
 * Intake calls in one pipeline, one transaction: one round trip and one commit for all (each
 * call keeps its own subtransaction in http_intake), each with its own outcome. A single call
 * is the batch of one.
 */
extern void db_intake(Db *db, IntakeCall *const *calls, int n);
/* SELECT 1 (healthz, and the replayer's check on a call that keeps failing). */
extern DbOutcome db_ping(Db *db);
extern void db_close(Db *db);
extern void db_stats(DbStats *stats);
/*
 * A new session on conninfo as application_name, statement_timeout set (--query-timeout);
 * NULL with err. For the console's connection (consoledb.c).
 */
extern struct pg_conn *db_connect(const char *conninfo, const char *application_name, char *err,
								  size_t errlen);
/* The first error result of the command sent on conn, else its last; NULL: lost or late. */
extern struct pg_result *db_await(struct pg_conn *conn, double deadline);
/* An idle session not closed by the server meanwhile (sends nothing). */
extern bool db_conn_alive(struct pg_conn *conn);
/* SQLSTATE classes and codes of "the database cannot serve now" (503). */
extern bool db_sqlstate_unavailable(const char *code);
/* The first line of a libpq message. */
extern void db_first_line(const char *msg, char *out, size_t outlen);

/* ---------------------------------------------------------------- spool.c */

typedef enum SpoolResult
{
	SPOOL_OK,    /* on disk and fsynced: 202 */
	SPOOL_FULL,  /* --spool-max reached: 503 */
	SPOOL_FAILED /* not writable: 503 */
} SpoolResult;

typedef struct SpoolStats
{
	bool enabled;
	unsigned depth;    /* requests waiting in the spool */
	uint64_t bytes;    /* their size on disk */
	double oldest_age; /* seconds since the oldest was received; 0 when empty */
	uint64_t spooled, replayed, failed;
} SpoolStats;

/* Creates DIR/tmp, DIR/new, DIR/failed (0700), forgets tmp/, counts new/; false with err. */
extern bool spool_open(const char *dir, char *err, size_t errlen);
extern bool spool_enabled(void);
/* Requests waiting in the spool (0 without one). */
extern unsigned spool_depth(void);
/* Writes the call durably (tmp/, fsync, rename into new/, fsync new/): its body without
 * secrets, received_us set. */
extern SpoolResult spool_write(const IntakeCall *c);
/* The replayer thread: sends new/ in arrival order whenever the database answers. */
extern bool spool_start(void);
/* The database answers again: the replayer goes now rather than at its next try. */
extern void spool_wake(void);
extern void spool_stop(void);
extern void spool_stats(SpoolStats *s);

/* ---------------------------------------------------------------- work.c */

/*
 * Jobs queued in a row with the same function run in one call of it, up to --batch-max, on
 * the worker's own database session; expired[i]: job i waited past --pool-wait, or the shim
 * is stopping.
 */
typedef void (*WorkFn)(Db *db, void **args, const bool *expired, int n);

/* The queue's link, kept in the caller's own struct: submitting never allocates or fails. */
typedef struct WorkJob
{
	WorkFn fn;
	void *arg;
	double queued_at;
	double not_before; /* deferred (work_defer): not run before this monotonic time */
	struct WorkJob *next;
} WorkJob;

/* nworkers threads, each with its database session (--pool-size). */
extern bool work_start(unsigned nworkers);
extern void work_submit(WorkJob *job, WorkFn fn, void *arg);
extern unsigned work_queued(void);
/*
 * Runs job again (with the function it was submitted with) at not_before, or sooner after
 * work_wake_deferred; it holds no thread meanwhile. At work_stop it runs at once, expired.
 */
extern void work_defer(WorkJob *job, double not_before);
/* The database answers again: every deferred job is due now. */
extern void work_wake_deferred(void);
extern unsigned work_deferred(void);
extern bool work_stopping(void);
/* Answers what is queued (as expired), waits for the running jobs, ends the workers. */
extern void work_stop(void);

/* ---------------------------------------------------------------- metrics.c */

extern void metrics_request(int status, double seconds);
extern void metrics_render(Buf *out);
extern void metrics_inflight_add(int delta);
extern void metrics_refused(void);
extern long metrics_inflight(void);

/* ---------------------------------------------------------------- log.c */

typedef struct RequestLog
{
	const char *method;
	const char *path;
	int status;
	double duration_ms;
	const char *key_name; /* NULL: no key matched */
	const char *client_addr;
} RequestLog;

/* One JSON line on stdout, buffered: it is written by the next log_flush (or at once when
 * stdout is a terminal). */
extern void log_request(const RequestLog *r);
/* The same for a console sign-in attempt: the key's name (NULL: none matched), never the
 * secret. */
extern void log_sign_in(const char *key_name, bool ok, const char *client_addr);
/* Writes the buffered request lines (whole lines); log_start's thread calls it every 100 ms,
 * log_stop a last time after stopping that thread. */
extern void log_flush(void);
extern bool log_start(void);
extern void log_stop(void);
/* A message for the operator on stderr, prefixed with the program name. */
extern void log_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
extern void log_vmsg(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));

/* ---------------------------------------------------------------- conns.c */

#define CLIENT_ADDR_MAX 64

/* A connection's entry: its deadlines (--timeout, and quicker while the slots run out). */
typedef struct Conn Conn;

/* A new connection (socket, peer): its first request's deadline starts; NULL: no memory. */
extern Conn *conn_open(int fd, const struct sockaddr *peer);
/* The connection is closed: the entry goes; returns the request left on it, or NULL. */
extern void *conn_close(Conn *c);
/* The peer address as text, made once at the accept. */
extern const char *conn_client(const Conn *c);
/* A request line came (req: its state, or NULL): on keep-alive its own deadline starts. */
extern void conn_request_begins(Conn *c, void *req);
/* The request is all in: no deadline until its answer is sent. */
extern void conn_request_in(Conn *c);
/* The request ended, answered or not: the next request line is awaited. */
extern void conn_request_ends(Conn *c);
/* The thread that closes connections past their deadline. */
extern bool sweeper_start(void);
extern void sweeper_stop(void);

/* ---------------------------------------------------------------- http.c */

struct MHD_Daemon;
struct MHD_Connection;
struct MHD_Response;

/* TLS 1.2 and 1.3 only: 1.0 and 1.1 are deprecated (RFC 8996). GnuTLS priority string. */
#define TLS_PRIORITIES "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

/* libmicrohttpd's messages on stderr, at most 10 a second (both daemons). */
extern void http_mhd_logger(void *cls, const char *fmt, va_list ap);
/*
 * What the daemon's notify_connection keeps for con (both daemons): the dialer's Conn of
 * conns.c, the console's ConsoleConn; NULL when it keeps nothing.
 */
extern void *http_socket_context(struct MHD_Connection *con);
/*
 * uri's path as sent (up to '?' or '#') and its query (after '?', up to '#'; NULL when it has
 * none), malloc'd; false when out of memory, with neither kept.
 */
extern bool http_split_uri(const char *uri, char **path, char **query);
/* Queues resp on con and lets it go; true once queued, and then *sent is status. */
extern bool http_queue(struct MHD_Connection *con, int status, struct MHD_Response *resp,
					   int *sent);

/* Starts the HTTP daemon with the configuration; NULL on failure (message on stderr). */
extern struct MHD_Daemon *http_start(void);
/* Closes every connection and stops the daemon and its deadline sweeper. */
extern void http_stop(struct MHD_Daemon *d);
/* Stops accepting new connections; answers from now on carry Connection: close. */
extern void http_quiesce(struct MHD_Daemon *d);
extern unsigned http_bound_port(struct MHD_Daemon *d);
/*
 * A dialer GET with this query string, authenticated as the dialer key key_name, made
 * in-process through the intake endpoint's own path (its checks, the workers, http_intake,
 * its log line): the HTTP status, and the body in *body (malloc'd, or NULL on 0: no memory).
 */
extern int http_intake_get(const char *query, const char *key_name, const char *client_addr,
						   char **body);

/* ---------------------------------------------------------------- session.c */

#define SESSION_TOKEN_LEN 64 /* hex of 32 random bytes */

typedef struct SessionInfo
{
	char key_name[KEY_NAME_MAX];
	char csrf[SESSION_TOKEN_LEN + 1];
} SessionInfo;

/* A new session for the console key; its cookie token in token; false: no randomness. */
extern bool session_create(const char *key_name, char token[SESSION_TOKEN_LEN + 1]);
/* The live session of a cookie token (its idle time starts again); false: none. */
extern bool session_find(const char *token, SessionInfo *info);
extern void session_end(const char *token);
/* Constant-time comparison of two NUL-terminated tokens. */
extern bool token_equal(const char *a, const char *b);
/* True when the address failed too many sign-ins lately; the seconds to wait in *retry_after. */
extern bool signin_blocked(const char *client_addr, unsigned *retry_after);
extern void signin_failed(const char *client_addr);

/* ---------------------------------------------------------------- consoledb.c */

/*
 * SELECT leadintake.<function>($1::jsonb) on the console's connection: the HTTP status
 * (200, or the SQLSTATE's: docs/console.md) and the JSON body (the function's, or
 * {"error": ...}) appended to out.
 */
extern int consoledb_call(const char *function, const char *args, Buf *out);
/* Whether the console's last attempt reached the database. */
extern bool consoledb_up(void);
extern void consoledb_close(void);

/* ---------------------------------------------------------------- console.c */

/*
 * The console's daemon on --console-listen; dialer_url: the dialer endpoint's scheme://host:port
 * (set-up's default); NULL on failure (message on stderr).
 */
extern struct MHD_Daemon *console_start(const char *dialer_url);
extern void console_stop(struct MHD_Daemon *d);

/* The page's files, compiled in (console_files.c, made by console/embed.sh). */
typedef struct ConsoleFile
{
	const char *name; /* NULL ends the table */
	const char *content_type;
	const unsigned char *data;
	size_t len;
} ConsoleFile;

extern const ConsoleFile console_files[];

/* ---------------------------------------------------------------- time */

/* Monotonic seconds. */
extern double now_monotonic(void);

#endif /* LEADINTAKE_SHIM_H */
