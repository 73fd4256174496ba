/*
 * work.c: the worker threads that make the database calls, so that no HTTP thread ever waits
 * on the database; a job that waited longer than --pool-wait is answered 503 without a call.
 */
#include "shim.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

static pthread_mutex_t work_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t work_cond = PTHREAD_COND_INITIALIZER;
static pthread_cond_t idle_cond = PTHREAD_COND_INITIALIZER;
static WorkJob *head;
static WorkJob *tail;
static unsigned queued;
static unsigned running;
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

static void *
worker_main(void *unused)
{
	WorkJob *batch[64];
	void *args[64];
	bool expired[64];

	(void) unused;
	for (;;)
	{
		int n = 0;

		pthread_mutex_lock(&work_lock);
		while (head == NULL && !stopping)
			pthread_cond_wait(&work_cond, &work_lock);
		if (head == NULL)
		{
			pthread_mutex_unlock(&work_lock);
			return NULL;
		}
		batch[n] = take(&expired[n]);
		n++;
		/* what is already queued behind it, never waiting for more */
		while (batch[0]->batch && head && head->batch == batch[0]->batch &&
			   n < (int) shim_config.batch_max && n < (int) (sizeof(batch) / sizeof(batch[0])))
		{
			batch[n] = take(&expired[n]);
			n++;
		}
		running++;
		pthread_mutex_unlock(&work_lock);

		/* the jobs may be gone after this */
		if (batch[0]->batch)
		{
			for (int i = 0; i < n; i++)
				args[i] = batch[i]->arg;
			batch[0]->batch(args, expired, n);
		}
		else
			batch[0]->fn(batch[0]->arg, expired[0]);

		pthread_mutex_lock(&work_lock);
		running--;
		if (running == 0 && head == NULL)
			pthread_cond_broadcast(&idle_cond);
		pthread_mutex_unlock(&work_lock);
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

static void
enqueue(WorkJob *job, WorkFn fn, WorkBatchFn batch, void *arg)
{
	job->fn = fn;
	job->batch = batch;
	job->arg = arg;
	job->queued_at = now_monotonic();
	job->next = NULL;
	pthread_mutex_lock(&work_lock);
	if (tail)
		tail->next = job;
	else
		head = job;
	tail = job;
	queued++;
	pthread_cond_signal(&work_cond);
	pthread_mutex_unlock(&work_lock);
}

void
work_submit(WorkJob *job, WorkFn fn, void *arg)
{
	enqueue(job, fn, NULL, arg);
}

void
work_submit_batch(WorkJob *job, WorkBatchFn batch, void *arg)
{
	enqueue(job, NULL, batch, arg);
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
