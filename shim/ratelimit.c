/*
 * ratelimit.c: the optional per-key token bucket (--rate-limit N: N requests a second, burst
 * N); an empty bucket is a 429 with Retry-After, in whole seconds.
 */
#include "shim.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct Bucket
{
	char name[KEY_NAME_MAX];
	double tokens;
	double updated; /* monotonic seconds */
} Bucket;

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static double rate;     /* tokens a second; 0 = off */
static Bucket *buckets; /* one per key name seen: as many as the key file has */
static size_t nbuckets;

void
ratelimit_init(unsigned per_second)
{
	rate = per_second;
}

bool
ratelimit_take(const char *key_name, unsigned *retry_after)
{
	double now;
	Bucket *b = NULL;
	size_t i;
	bool ok;

	*retry_after = 0;
	if (rate <= 0)
		return true;
	now = now_monotonic();
	pthread_mutex_lock(&rl_lock);
	for (i = 0; i < nbuckets; i++)
		if (strcmp(buckets[i].name, key_name) == 0)
		{
			b = &buckets[i];
			break;
		}
	if (b == NULL)
	{
		Bucket *grown = realloc(buckets, (nbuckets + 1) * sizeof(Bucket));

		if (grown == NULL)
		{
			/* cannot track it: let the request through rather than fail it */
			pthread_mutex_unlock(&rl_lock);
			return true;
		}
		buckets = grown;
		b = &buckets[nbuckets++];
		strncpy(b->name, key_name, KEY_NAME_MAX - 1);
		b->name[KEY_NAME_MAX - 1] = '\0';
		b->tokens = rate; /* a full burst to start with */
		b->updated = now;
	}
	b->tokens += (now - b->updated) * rate;
	if (b->tokens > rate)
		b->tokens = rate;
	b->updated = now;
	ok = b->tokens >= 1.0;
	if (ok)
		b->tokens -= 1.0;
	else
	{
		double wait = (1.0 - b->tokens) / rate;

		*retry_after = (unsigned) ceil(wait);
		if (*retry_after < 1)
			*retry_after = 1;
	}
	pthread_mutex_unlock(&rl_lock);
	return ok;
}
