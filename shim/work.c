/*
 * work.c: the worker threads that make the database calls, each on a session of its own, so
 * that no HTTP thread ever waits on the database; a job that waited longer than --pool-wait is
 * answered 503 without a call; a job deferred while the database is away waits on a list of
 * its own, holding no thread.
 */
#include "shim.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER;
static WorkJob *head;
static WorkJob *tail;
static WorkJob *deferred; /* not before their not_before, in no order */
static unsigned queued;
static unsigned ndeferred;
static bool stopping;
static pthread_t *workers;
static unsigned nworkers;

/* Takes the head of the queue (with work_lock held); sets *expired. */
static WorkJob *
take(bool *expired)
{
	WorkJob *job = head;

	head = job->next;
	if (head == NULL)
		tail = NULL;
	queued--;
	*expired = stopping || now_monotonic() - job->queued_at > shim_config.pool_wait_ms / 1000.0;
	return job;
}

static void
append(WorkJob *job)
{
	job->next = NULL;
	if (tail)
		tail->next = job;
	else
		head = job;
	tail = job;
	queued++;
}

/*
 * Moves the deferred jobs that are due (all of them when the shim stops) to the queue, with
 * work_lock held; returns the earliest not_before of those left, or 0.
 */
static double
promote_due(void)
{
	double now = now_monotonic();
	double earliest = 0;
	WorkJob **link = &deferred;

	while (*link != NULL)
	{
		WorkJob *job = *link;

		if (stopping || job->not_before <= now)
		{
			*link = job->next;
			ndeferred--;
			job->queued_at = now;
			append(job);
			continue;
		}
		if (earliest == 0 || job->not_before < earliest)
			earliest = job->not_before;
		link = &job->next;
	}
	return earliest;
}

/* Sleeps on work_cond until something is queued or a deferred job is due (work_lock held). */
static void
wait_for_work(void)
{
	for (;;)
	{
		double earliest = promote_due();
		struct timespec ts;
		double left;

		if (head != NULL || stopping)
			return;
		if (earliest == 0)
		{
			pthread_cond_wait(&work_cond, &work_lock);
			continue;
		}
		left = earliest - now_monotonic();
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t) left;
		ts.tv_nsec += (long) ((left - (time_t) left) * 1e9);
		if (ts.tv_nsec >= 1000000000L)
		{
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&work_cond, &work_lock, &ts);
	}
}

static void *
worker_main(void *unused)
{
	Db db = {NULL}; /* this worker's own session, for its life */
	void *args[BATCH_MAX];
	bool expired[BATCH_MAX];

	(void) unused;
	for (;;)
	{
		WorkFn fn;
		int n = 0;

		pthread_mutex_lock(&work_lock);
		wait_for_work();
		if (head == NULL)
		{
			pthread_mutex_unlock(&work_lock);
			db_close(&db);
			return NULL;
		}
		/* what is already queued for the same function, never waiting for more */
		fn = head->fn;
		do
		{
			args[n] = take(&expired[n])->arg;
			n++;
		} while (head && head->fn == fn && n < (int) shim_config.batch_max);
		if (head != NULL) /* what this batch left: another worker's (work_submit woke one) */
			pthread_cond_signal(&work_cond);
		pthread_mutex_unlock(&work_lock);
		fn(&db, args, expired, n);
	}
}

bool
work_start(unsigned n)
{
	unsigned i;

	workers = calloc(n, sizeof(pthread_t));
	if (workers == NULL)
		return false;
	for (i = 0; i < n; i++)
	{
		if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0)
			return false;
		nworkers++;
	}
	return true;
}

void
work_submit(WorkJob *job, WorkFn fn, void *arg)
{
	job->fn = fn;
	job->arg = arg;
	job->queued_at = now_monotonic();
	pthread_mutex_lock(&work_lock);
	/* a queue already waiting has woken its worker, who takes this job with the rest */
	if (head == NULL)
		pthread_cond_signal(&work_cond);
	append(job);
	pthread_mutex_unlock(&work_lock);
}

void
work_defer(WorkJob *job, double not_before)
{
	pthread_mutex_lock(&work_lock);
	job->not_before = not_before;
	job->next = deferred;
	deferred = job;
	ndeferred++;
	pthread_cond_signal(&work_cond); /* a sleeping worker learns the new earliest time */
	pthread_mutex_unlock(&work_lock);
}

void
work_wake_deferred(void)
{
	pthread_mutex_lock(&work_lock);
	for (WorkJob *job = deferred; job != NULL; job = job->next)
		job->not_before = 0;
	pthread_cond_broadcast(&work_cond);
	pthread_mutex_unlock(&work_lock);
}

unsigned
work_deferred(void)
{
	unsigned n;

	pthread_mutex_lock(&work_lock);
	n = ndeferred;
	pthread_mutex_unlock(&work_lock);
	return n;
}

bool
work_stopping(void)
{
	bool s;

	pthread_mutex_lock(&work_lock);
	s = stopping;
	pthread_mutex_unlock(&work_lock);
	return s;
}

unsigned
work_queued(void)
{
	unsigned n;

	pthread_mutex_lock(&work_lock);
	n = queued;
	pthread_mutex_unlock(&work_lock);
	return n;
}

void
work_stop(void)
{
	unsigned i;

	pthread_mutex_lock(&work_lock);
	stopping = true;
	pthread_cond_broadcast(&work_cond);
	pthread_mutex_unlock(&work_lock);
	/* the workers empty the queue (expired jobs are answered without a call), then end */
	for (i = 0; i < nworkers; i++)
		pthread_join(workers[i], NULL);
	nworkers = 0;
}
