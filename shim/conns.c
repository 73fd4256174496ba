/*
 * conns.c: the open connections and their deadlines: the whole-request deadline of --timeout
 * (slow clients), a quicker one while the connection slots run out (floods), and the sweeper
 * thread that closes the connections past them.
 */
#include "shim.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* How often the sweeper looks for connections past their deadline. */
#define SWEEP_INTERVAL_MS 20

/*
 * Under pressure (this share of --max-connections in use), a connection that has waited
 * PRESSURE_GRACE without sending a whole request is closed, and FULL_GRACE once every slot is
 * taken: idle or half-sent sockets cannot hold the slots while a client with a request waits
 * for one in the kernel's backlog (libmicrohttpd stops accepting at the limit).
 */
#define PRESSURE_SHARE 0.75
#define PRESSURE_GRACE 0.25
#define FULL_GRACE     0.05

/*
 * Between keep-alive requests the deadline is this much later than the idle limit, so that
 * a connection that is merely idle is closed by the idle limit (quietly) and only one that
 * keeps sending bytes of a request line is closed (and reported) by the sweeper.
 */
#define NEXT_REQUEST_GRACE 1.0

/*
 * libmicrohttpd's connection timeout (--timeout) counts idle time only: a client sending a
 * byte now and then would keep its connection for ever (slow-loris). So each connection also
 * has a deadline by which the request it is sending must be completely received: --timeout
 * after the accept for its first request; on a keep-alive connection, --timeout (plus
 * NEXT_REQUEST_GRACE) after the previous answer for the next request line, then --timeout
 * after that line for the rest (libmicrohttpd shows no earlier byte of a request). There is
 * no deadline while the answer is made and sent. A sweeper thread shuts down the socket of a
 * connection past its deadline; libmicrohttpd then sees the end of the stream and closes the
 * connection as usual (its request, if its line came, is logged with status 0).
 *
 * The table is only changed under conns_lock, and an entry leaves it in
 * MHD_CONNECTION_NOTIFY_CLOSED, which libmicrohttpd 0.9.75 calls before it closes the socket:
 * the sweeper, which calls shutdown() under the same lock, never touches an fd number that
 * another connection reuses.
 */
struct Conn
{
	struct Conn *prev;
	struct Conn *next;
	int fd;
	double deadline;      /* monotonic seconds; 0: none (the request is in) */
	bool rearm_at_line;   /* keep-alive: the deadline restarts at the next request line */
	bool expired;         /* shut down by the sweeper */
	double waiting_since; /* accepted, or last answered: the wait for a request began */
	char client[CLIENT_ADDR_MAX];
	void *req; /* the request begun and not yet ended on this connection, or NULL */
};

static pthread_mutex_t conns_lock = PTHREAD_MUTEX_INITIALIZER;
static Conn *conns;
static pthread_t sweeper;
static bool sweeper_running;
static atomic_bool sweeper_stopping;

Conn *
conn_open(int fd, const struct sockaddr *peer)
{
	Conn *c = calloc(1, sizeof(Conn));

	if (c == NULL)
		return NULL;
	c->fd = fd;
	c->waiting_since = now_monotonic();
	c->deadline = c->waiting_since + shim_config.timeout;
	if (peer)
		sockaddr_text(peer, c->client, sizeof(c->client));
	pthread_mutex_lock(&conns_lock);
	c->next = conns;
	if (conns)
		conns->prev = c;
	conns = c;
	pthread_mutex_unlock(&conns_lock);
	return c;
}

void *
conn_close(Conn *c)
{
	void *req = c->req;

	pthread_mutex_lock(&conns_lock);
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&conns_lock);
	free(c);
	return req;
}

const char *
conn_client(const Conn *c)
{
	return c->client; /* set once at the accept */
}

void
conn_request_begins(Conn *c, void *req)
{
	pthread_mutex_lock(&conns_lock);
	c->req = req;
	if (c->rearm_at_line && !c->expired)
	{
		c->deadline = now_monotonic() + shim_config.timeout;
		c->rearm_at_line = false;
	}
	pthread_mutex_unlock(&conns_lock);
}

void
conn_request_in(Conn *c)
{
	pthread_mutex_lock(&conns_lock);
	c->deadline = 0;
	c->rearm_at_line = false;
	pthread_mutex_unlock(&conns_lock);
}

void
conn_request_ends(Conn *c)
{
	pthread_mutex_lock(&conns_lock);
	c->req = NULL;
	if (!c->expired)
	{
		c->waiting_since = now_monotonic();
		c->deadline = c->waiting_since + shim_config.timeout + NEXT_REQUEST_GRACE;
		c->rearm_at_line = true;
	}
	pthread_mutex_unlock(&conns_lock);
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

static void
log_expired(char (*clients)[CLIENT_ADDR_MAX], int nlogged, int n)
{
	for (int i = 0; i < nlogged; i++)
		log_msg("closing a connection from %s: its request was not received within "
				"--timeout (%u s)",
				clients[i][0] ? clients[i] : "an unknown address", shim_config.timeout);
	if (n > nlogged)
		log_msg("... and %d more connections, for the same reason", n - nlogged);
}

/* Under a flood: one line a second at most, whatever the flood's rate. */
static void
log_pressure(int n, unsigned nconns, double now)
{
	static double last_logged;
	static int closed;

	closed += n;
	if (closed == 0 || now - last_logged < 1.0)
		return;
	log_msg("%u of %u connection slots in use: closed %d connections that sent no whole "
			"request within %g s (%g s when all are in use)",
			nconns, shim_config.max_connections, closed, PRESSURE_GRACE, FULL_GRACE);
	last_logged = now;
	closed = 0;
}

/* How long a connection may wait for its request with nconns in use (0: until --timeout). */
static double
pressure_grace(unsigned nconns)
{
	if (nconns >= shim_config.max_connections)
		return FULL_GRACE;
	if (nconns >= PRESSURE_SHARE * shim_config.max_connections)
		return PRESSURE_GRACE;
	return 0;
}

/* Whether the sweeper closes c now: past its deadline, or waiting too long under pressure. */
static bool
sweep_due(const Conn *c, double now, double grace)
{
	if (c->deadline == 0 || c->expired)
		return false; /* its request is in: no deadline until the answer is sent */
	return c->deadline <= now || (grace > 0 && now - c->waiting_since >= grace);
}

/* The sweeper thread: shuts down the connections past their deadline. */
static void *
sweep(void *arg)
{
	enum
	{
		LOG_MAX = 8 /* addresses logged per sweep; the rest are counted */
	};
	char clients[LOG_MAX][CLIENT_ADDR_MAX];

	(void) arg;
	while (!atomic_load(&sweeper_stopping))
	{
		double now;
		int n = 0;
		unsigned nconns = 0;
		double grace;
		Conn *c;

		sleep_ms(SWEEP_INTERVAL_MS);
		now = now_monotonic();
		pthread_mutex_lock(&conns_lock);
		for (c = conns; c != NULL; c = c->next)
			nconns++;
		grace = pressure_grace(nconns);
		for (c = conns; c != NULL; c = c->next)
		{
			if (!sweep_due(c, now, grace))
				continue;
			shutdown(c->fd, SHUT_RDWR);
			c->expired = true;
			c->deadline = 0;
			if (n < LOG_MAX)
				memcpy(clients[n], c->client, sizeof(clients[n]));
			n++;
		}
		pthread_mutex_unlock(&conns_lock);
		/* logged outside the lock: stderr may be slow */
		if (grace > 0)
			log_pressure(n, nconns, now);
		else
			log_expired(clients, n < LOG_MAX ? n : LOG_MAX, n);
	}
	return NULL;
}

bool
sweeper_start(void)
{
	atomic_store(&sweeper_stopping, false);
	if (pthread_create(&sweeper, NULL, sweep, NULL) != 0)
		return false;
	sweeper_running = true;
	return true;
}

void
sweeper_stop(void)
{
	if (!sweeper_running)
		return;
	atomic_store(&sweeper_stopping, true);
	pthread_join(sweeper, NULL);
	sweeper_running = false;
}
