/*
 * fuzz_http.c: the shim's whole request handling (shim/http.c with form.c, keys.c, acl.c,
 * ratelimit.c, metrics.c, work.c, log.c, buf.c) on libmicrohttpd, in process: each input is
 * the raw bytes a client sends on one connection, handed to the running daemon through
 * MHD_add_connection on a socketpair. Only db.c is replaced: a fake db_intake checks, call
 * by call, what would go to the database and answers by turns 201, 400, 503 (unavailable) or
 * 500.
 *
 * Input: a first byte choosing the peer address (low bits 0-2: 127.0.0.1; 3: the address
 * follows, 4 bytes of IPv4 or, with bit 2 set, 16 bytes of IPv6), then the bytes of the
 * connection (one or more pipelined requests).
 *
 * Checked besides the sanitizers: a connection from outside --allow-ip is refused at accept;
 * any other is answered and closed (no hang, no request left suspended); a 500 only when the
 * fake database failed; a 201 or 303 only when the fake database stored; the database is reached only with a known key name and
 * from an allowed address; a payload the shim writes from a form or query string is valid
 * JSON and never carries a secret key of contract section 3 (checked as form_to_json
 * returns, see below).
 */
#define _GNU_SOURCE
#include "../../shim/shim.h"
#include "jsoncheck.h"
#include "secrets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fuzzfail.h"

#define FAIL(...) fuzz_fail("fuzz_http", __VA_ARGS__)

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define SECRET_DIALER "fuzz-secret-0123456789abcdef"
#define SECRET_OTHER  "other-secret-0123456789abcdef"

static struct MHD_Daemon *daemon_;
static atomic_int n_stored; /* the fake said 201 */
static atomic_int n_failed; /* the fake said 500 (DB_ERROR) */
static atomic_int n_calls;
static atomic_uint turn;
static bool cur_allowed; /* the peer is in the allowlist */

/* ---------------------------------------------------------------- the fake database */

void
db_close(Db *db)
{
	(void) db;
}

void
db_stats(DbStats *s)
{
	memset(s, 0, sizeof(*s));
	s->up = true;
}

DbOutcome
db_ping(Db *db)
{
	(void) db;
	return DB_OK;
}

/*
 * Every payload the shim writes from a form or a query string goes through form_to_json:
 * linked with -Wl,--wrap=form_to_json, the call from http.c comes here first, and what it
 * wrote is checked at once (valid JSON of strings and arrays of strings, no secret key).
 */
void __real_form_to_json(const Params *p, Buf *out);
void __wrap_form_to_json(const Params *p, Buf *out);

void
__wrap_form_to_json(const Params *p, Buf *out)
{
	JcObject obj;
	const char *why;
	size_t start = out->len;

	__real_form_to_json(p, out);
	if (out->oom)
		return;
	if (!jc_read_form_object(out->data + start, out->len - start, &obj, &why))
		FAIL("the shim wrote an invalid payload (%s): %.*s", why,
			 (int) (out->len - start > 200 ? 200 : out->len - start), out->data + start);
	for (size_t i = 0; i < obj.count; i++)
		if (fuzz_is_secret(obj.entries[i].key.data, obj.entries[i].key.len))
			FAIL("a secret key went into the payload for the database");
	jc_free(&obj);
}

static DbOutcome
fake_call(IntakeCall *c)
{
	const char *body = c->body, *key_name = c->key_name, *client_addr = c->client_addr;
	size_t len = c->body_len;
	IntakeResult *result = &c->result;
	unsigned t = atomic_fetch_add(&turn, 1);

	atomic_fetch_add(&n_calls, 1);
	result->status = 0;
	result->response = NULL;
	result->dashboard_query = NULL;
	if (key_name == NULL || (strcmp(key_name, "dialer") != 0 && strcmp(key_name, "other") != 0))
		FAIL("the database was called with key name \"%s\"", key_name ? key_name : "(null)");
	if (!cur_allowed)
		FAIL("the database was called for a client outside --allow-ip (%s)", client_addr);
	if (client_addr == NULL || *client_addr == '\0')
		FAIL("the database was called without the client's address");
	if (body == NULL && len > 0)
		FAIL("a NULL body of %zu bytes", len);
	/* no spool here (no --spool-dir): a spooled call is a bug */
	if (c->received_us != 0)
		FAIL("a spooled call without a spool");
	switch (t % 4)
	{
		case 0:
		case 1:
			result->status = 201;
			result->response = strdup("{\"success\": true, \"fake\": 1}");
			result->dashboard_query = strdup("from_dialer=true&lead_id=1&full_name=A%20B");
			atomic_fetch_add(&n_stored, 1);
			return DB_OK;
		case 2:
			if (t % 8 == 2)
				return DB_UNAVAILABLE;
			result->status = 400;
			result->response = strdup("{\"error\": \"fake\"}");
			return DB_OK;
		default:
			atomic_fetch_add(&n_failed, 1);
			return DB_ERROR;
	}
}

/* A batch is its calls, one by one: what the HTTP side sees of it is the same. */
void
db_intake(Db *db, IntakeCall *const *calls, int n)
{
	(void) db;
	for (int i = 0; i < n; i++)
		calls[i]->outcome = fake_call(calls[i]);
}

/* ---------------------------------------------------------------- set-up */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char keys[] = "dialer:" SECRET_DIALER "\nother:" SECRET_OTHER "\n";
	static char keypath[64];
	struct sockaddr_in *sin = (struct sockaddr_in *) &shim_config.listen_addr;
	char err[256];
	int fd;

	fuzz_fail_init();

	signal(SIGPIPE, SIG_IGN);
	fd = memfd_create("fuzz-http-keys", 0);
	if (fd < 0 || write(fd, keys, strlen(keys)) != (ssize_t) strlen(keys))
		FAIL("key file");
	fchmod(fd, 0600);
	snprintf(keypath, sizeof(keypath), "/proc/self/fd/%d", fd);

	memset(&shim_config, 0, sizeof(shim_config));
	shim_config.db = "";
	shim_config.listen = "127.0.0.1:0";
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sin->sin_port = 0;
	shim_config.listen_addrlen = sizeof(*sin);
	shim_config.api_key_file = keypath;
	shim_config.allow_query_key = true;
	shim_config.dashboard_url = "https://crm.example.test/dash?src=dialer";
	shim_config.max_body = 2048;
	shim_config.rate_limit = 0;
	shim_config.timeout = 10;
	shim_config.threads = 1;
	shim_config.max_connections = 64;
	shim_config.pool_size = 2;
	shim_config.pool_wait_ms = 5000;
	shim_config.connect_timeout = 3;
	shim_config.query_timeout_ms = 1000;
	shim_config.drain_timeout = 1;

	if (!keys_load(keypath, err, sizeof(err)))
		FAIL("keys_load: %s", err);
	if (!acl_add("127.0.0.0/8", err, sizeof(err)) || !acl_add("10.0.0.0/8", err, sizeof(err)) ||
		!acl_add("fd00::/8", err, sizeof(err)) ||
		!acl_add("::ffff:192.168.0.0/112", err, sizeof(err)))
		FAIL("acl_add: %s", err);
	ratelimit_init(0);
	if (!work_start(shim_config.pool_size))
		FAIL("work_start");
	daemon_ = http_start();
	if (daemon_ == NULL)
		FAIL("http_start");
	return 0;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Statuses in the bytes the client received ("HTTP/1.x NNN"), 1xx left out. */
static void
count_statuses(const char *out, size_t len, int *n, int *n500, int *nstored, int *other5xx)
{
	*n = *n500 = *nstored = *other5xx = 0;
	for (size_t i = 0; i + 12 <= len; i++)
	{
		int code;

		if (memcmp(out + i, "HTTP/1.", 7) != 0 || out[i + 8] != ' ' ||
			(i > 0 && out[i - 1] != '\n'))
			continue;
		if (out[i + 9] < '1' || out[i + 9] > '5' || out[i + 10] < '0' || out[i + 10] > '9' ||
			out[i + 11] < '0' || out[i + 11] > '9')
			FAIL("a malformed status line: %.20s", out + i);
		code = (out[i + 9] - '0') * 100 + (out[i + 10] - '0') * 10 + (out[i + 11] - '0');
		if (code < 200)
			continue;
		(*n)++;
		if (code == 500)
			(*n500)++;
		else if (code == 201 || code == 303)
			(*nstored)++;
		else if (code >= 500 && code != 503 && code != 505 && code != 501)
			(*other5xx)++;
	}
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	int sv[2];
	size_t sent = 0;
	char *out;
	size_t outlen = 0;
	size_t outcap = 65536;
	double deadline;
	double quiet_since;
	bool closed = false;
	int n, n500, nstored, other5xx;
	int stored0, failed0;

	if (size < 1)
		return 0;
	memset(&ss, 0, sizeof(ss));
	if ((data[0] & 3) != 3)
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;

		s4->sin_family = AF_INET;
		s4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		s4->sin_port = htons(40000);
		sslen = sizeof(*s4);
		data++, size--;
	}
	else if (data[0] & 4)
	{
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *) &ss;

		if (size < 17)
			return 0;
		s6->sin6_family = AF_INET6;
		memcpy(&s6->sin6_addr, data + 1, 16);
		s6->sin6_port = htons(40000);
		sslen = sizeof(*s6);
		data += 17, size -= 17;
	}
	else
	{
		struct sockaddr_in *s4 = (struct sockaddr_in *) &ss;

		if (size < 5)
			return 0;
		s4->sin_family = AF_INET;
		memcpy(&s4->sin_addr, data + 1, 4);
		s4->sin_port = htons(40000);
		sslen = sizeof(*s4);
		data += 5, size -= 5;
	}
	cur_allowed = acl_allows((struct sockaddr *) &ss);
	stored0 = atomic_load(&n_stored);
	failed0 = atomic_load(&n_failed);

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
		FAIL("socketpair: %s", strerror(errno));
	if (MHD_add_connection(daemon_, sv[1], (struct sockaddr *) &ss, sslen) != MHD_YES)
	{
		/* refused at accept (--allow-ip); libmicrohttpd closed its end */
		if (cur_allowed)
			FAIL("MHD_add_connection refused an allowed address");
		close(sv[0]);
		return 0;
	}
	if (!cur_allowed)
		FAIL("a connection from an address outside --allow-ip was accepted");

	out = malloc(outcap);
	deadline = now() + 10;
	quiet_since = now();
	while (!closed)
	{
		struct pollfd pfd = {sv[0], POLLIN | (sent < size ? POLLOUT : 0), 0};
		int rc;

		if (now() > deadline)
			FAIL("the connection was neither answered nor closed within 10 s (%zu of %zu bytes "
				 "sent, %zu received)",
				 sent, size, outlen);
		/*
		 * Everything sent and the shim silent for a while: close (a real client that
		 * half-closes with an incomplete request is closed by the shim: test/e2e/edge.sh).
		 */
		if (sent == size && now() - quiet_since > 0.01 && work_queued() == 0)
			break;
		rc = poll(&pfd, 1, 5);
		if (rc < 0 && errno != EINTR)
			FAIL("poll");
		if (pfd.revents & POLLOUT)
		{
			ssize_t w = send(sv[0], data + sent, size - sent, MSG_NOSIGNAL);

			if (w > 0)
				sent += (size_t) w;
			else if (w < 0 && errno != EAGAIN)
				sent = size; /* the shim closed: stop sending */
			if (sent == size)
				shutdown(sv[0], SHUT_WR);
			quiet_since = now();
		}
		if (sent == size && size == 0)
			shutdown(sv[0], SHUT_WR);
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR))
		{
			ssize_t r;

			if (outcap - outlen < 4096)
			{
				outcap *= 2;
				out = realloc(out, outcap);
			}
			r = recv(sv[0], out + outlen, outcap - outlen, 0);
			if (r > 0)
				outlen += (size_t) r;
			else if (r == 0 || (r < 0 && errno != EAGAIN))
				closed = true;
			quiet_since = now();
		}
	}
	close(sv[0]);

	/* the request's end comes after the close: nothing may stay in flight */
	deadline = now() + 5;
	while (metrics_inflight() > 0)
	{
		struct timespec ts = {0, 200000};

		if (now() > deadline)
			FAIL("a request is still in flight 5 s after its connection closed");
		nanosleep(&ts, NULL);
	}

	count_statuses(out, outlen, &n, &n500, &nstored, &other5xx);
	if (n500 > atomic_load(&n_failed) - failed0)
		FAIL("%d answers 500 but the fake database failed %d times", n500,
			 atomic_load(&n_failed) - failed0);
	if (nstored > atomic_load(&n_stored) - stored0)
		FAIL("%d answers 201/303 but the fake database stored %d times", nstored,
			 atomic_load(&n_stored) - stored0);
	if (other5xx > 0)
		FAIL("an unexpected 5xx status: %.*s", (int) (outlen > 200 ? 200 : outlen), out);
	free(out);
	return 0;
}
