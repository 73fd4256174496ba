/*
 * test/bench/floor.c: what libmicrohttpd alone costs per request on this machine, the floor
 * under the shim's CPU per request. Not part of the product.
 *
 * It reads each POST body whole and answers 201 with a fixed body of the shim's size:
 *   inline   from the handler at once, with the shim's daemon flags and limits: what
 *            libmicrohttpd itself costs, at whatever rate wrk drives it;
 *   handoff  as the shim does: the connection suspended, then resumed by another thread
 *            DELAY microseconds later (the database's answer, so that the request rate,
 *            which decides how many requests share a wake-up, is the shim's);
 *   thread   a thread per connection that sleeps DELAY in the handler, then answers: the
 *            design without suspend and resume, at the same rate.
 *
 *   floor MODE RESPONSE_BYTES [DELAY_US]   prints "listening on PORT", runs until SIGTERM
 */
#define _GNU_SOURCE
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef struct Req
{
	struct MHD_Connection *con;
	size_t body;
	bool suspended;
	bool answered;
	struct timespec due;
	struct Req *next;
} Req;

static char *answer;
static size_t answer_len;
static enum { INLINE, HANDOFF, THREAD } mode;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static Req *head, *tail;
static long delay_us;

static enum MHD_Result
respond(struct MHD_Connection *con)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(answer_len, answer, MHD_RESPMEM_PERSISTENT);
	enum MHD_Result ret;

	MHD_add_response_header(r, "Content-Type", "application/json");
	ret = MHD_queue_response(con, 201, r);
	MHD_destroy_response(r);
	return ret;
}

/*
 * The stand-in for the shim's workers: sleeps until the oldest connection is due, then
 * resumes every one that is due by then (one wake-up for all of them, as a batch).
 */
static void *
resumer(void *unused)
{
	(void) unused;
	for (;;)
	{
		struct timespec due, now;
		Req *req;

		pthread_mutex_lock(&lock);
		while (head == NULL)
			pthread_cond_wait(&cond, &lock);
		due = head->due;
		pthread_mutex_unlock(&lock);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, NULL) != 0)
			;
		clock_gettime(CLOCK_MONOTONIC, &now);
		for (;;)
		{
			pthread_mutex_lock(&lock);
			req = head;
			if (req && (req->due.tv_sec < now.tv_sec ||
						(req->due.tv_sec == now.tv_sec && req->due.tv_nsec <= now.tv_nsec)))
			{
				head = req->next;
				if (head == NULL)
					tail = NULL;
			}
			else
				req = NULL;
			pthread_mutex_unlock(&lock);
			if (req == NULL)
				break;
			req->answered = true;
			MHD_resume_connection(req->con);
		}
	}
	return NULL;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *con, const char *url, const char *method,
	   const char *version, const char *data, size_t *size, void **state)
{
	Req *req = *state;

	(void) cls, (void) url, (void) method, (void) version, (void) data;
	if (req == NULL)
	{
		*state = req = calloc(1, sizeof(Req));
		return req ? MHD_YES : MHD_NO;
	}
	if (*size > 0)
	{
		req->body += *size;
		*size = 0;
		return MHD_YES;
	}
	if (mode == THREAD)
		usleep((useconds_t) delay_us);
	if (mode != HANDOFF || req->answered)
		return respond(con);
	req->con = con;
	req->next = NULL;
	clock_gettime(CLOCK_MONOTONIC, &req->due);
	req->due.tv_nsec += delay_us * 1000;
	req->due.tv_sec += req->due.tv_nsec / 1000000000;
	req->due.tv_nsec %= 1000000000;
	MHD_suspend_connection(con);
	pthread_mutex_lock(&lock);
	if (tail)
		tail->next = req;
	else
		head = req;
	tail = req;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	return MHD_YES;
}

static void
completed(void *cls, struct MHD_Connection *con, void **state, enum MHD_RequestTerminationCode t)
{
	(void) cls, (void) con, (void) t;
	free(*state);
	*state = NULL;
}

int
main(int argc, char **argv)
{
	struct MHD_Daemon *d;
	const union MHD_DaemonInfo *info;
	sigset_t set;
	int sig;
	pthread_t t;
	unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;

	if (argc >= 3 && argc <= 4 && strcmp(argv[1], "inline") == 0)
		mode = INLINE;
	else if (argc >= 3 && argc <= 4 && strcmp(argv[1], "handoff") == 0)
		mode = HANDOFF;
	else if (argc >= 3 && argc <= 4 && strcmp(argv[1], "thread") == 0)
		mode = THREAD;
	else
	{
		fprintf(stderr, "usage: floor inline|handoff|thread RESPONSE_BYTES [DELAY_US]\n");
		return 2;
	}
	answer_len = (size_t) atol(argv[2]);
	delay_us = argc == 4 ? atol(argv[3]) : 0;
	answer = malloc(answer_len + 1);
	memset(answer, 'x', answer_len);
	if (answer_len >= 2)
		answer[0] = '"', answer[answer_len - 1] = '"';
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (mode == HANDOFF && pthread_create(&t, NULL, resumer, NULL) != 0)
		return 1;
	/* the shim's flags and limits (shim/http.c: http_start) */
	if (mode == THREAD)
		flags |= MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL;
	else
		flags |= MHD_USE_POLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC;
	/* the thread-per-connection mode takes no pool: the option is left out (END) there */
	struct MHD_OptionItem pool[2] = {
		{mode == THREAD ? MHD_OPTION_END : MHD_OPTION_THREAD_POOL_SIZE, 2, NULL},
		{MHD_OPTION_END, 0, NULL}};

	d = MHD_start_daemon(flags, 0, NULL, NULL, handle, NULL, MHD_OPTION_ARRAY, pool,
						 MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_LIMIT, 1000u,
						 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t) (64 * 1024),
						 MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
	if (d == NULL)
		return 1;
	info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
	printf("listening on %u\n", info ? info->port : 0);
	fflush(stdout);
	sigwait(&set, &sig);
	/* no MHD_stop_daemon: it aborts while connections are suspended */
	_exit(0);
}
