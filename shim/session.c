/*
 * session.c: the console's sessions (in memory, a random cookie token and CSRF token each,
 * ended after --console-idle unused) and the count of failed sign-ins per client address.
 */
#include "shim.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

/* Sessions held at once: a new one past this ends the one unused longest. */
#define SESSION_MAX 64

/* More failed sign-ins than SIGNIN_FAILURES from one address in SIGNIN_WINDOW s: 429. */
#define SIGNIN_FAILURES 5
#define SIGNIN_WINDOW   60.0
/* Addresses remembered: a new one past this forgets the one that failed longest ago. */
#define SIGNIN_ADDRESSES 256

typedef struct Session
{
	bool live;
	char token[SESSION_TOKEN_LEN + 1]; /* the cookie's value */
	char csrf[SESSION_TOKEN_LEN + 1];
	char key_name[KEY_NAME_MAX];
	double last_used; /* monotonic seconds */
} Session;

static pthread_mutex_t session_lock = PTHREAD_MUTEX_INITIALIZER;
static Session sessions[SESSION_MAX]; /* under session_lock */

/* The last failures of one address, a ring: failed_at[next] is the oldest. */
typedef struct Failures
{
	char client[CLIENT_ADDR_MAX]; /* "" : a free entry */
	double failed_at[SIGNIN_FAILURES];
	int next;
	double latest;
} Failures;

static pthread_mutex_t failures_lock = PTHREAD_MUTEX_INITIALIZER;
static Failures failures[SIGNIN_ADDRESSES]; /* under failures_lock */

/* 32 bytes of the kernel's randomness as 64 hex digits; false when there are none. */
static bool
random_token(char out[SESSION_TOKEN_LEN + 1])
{
	unsigned char bytes[SESSION_TOKEN_LEN / 2];

	if (getrandom(bytes, sizeof(bytes), 0) != (ssize_t) sizeof(bytes))
		return false;
	for (size_t i = 0; i < sizeof(bytes); i++)
		snprintf(out + 2 * i, 3, "%02x", bytes[i]);
	return true;
}

bool
token_equal(const char *a, const char *b)
{
	size_t len = strlen(a);
	size_t blen = strlen(b);
	volatile unsigned char diff = (unsigned char) (len != blen);

	for (size_t i = 0; i < len && i < blen; i++)
		diff |= (unsigned char) a[i] ^ (unsigned char) b[i];
	return diff == 0;
}

/* Ends the sessions unused past --console-idle; under session_lock. */
static void
expire(double now)
{
	for (int i = 0; i < SESSION_MAX; i++)
		if (sessions[i].live && now - sessions[i].last_used > shim_config.console_idle)
			memset(&sessions[i], 0, sizeof(Session));
}

bool
session_create(const char *key_name, char token[SESSION_TOKEN_LEN + 1])
{
	Session fresh = {.live = true};
	int slot = 0;
	double now = now_monotonic();

	if (!random_token(fresh.token) || !random_token(fresh.csrf))
		return false;
	snprintf(fresh.key_name, sizeof(fresh.key_name), "%s", key_name);
	fresh.last_used = now;
	pthread_mutex_lock(&session_lock);
	expire(now);
	/* a free slot, else the session unused longest */
	for (int i = 0; i < SESSION_MAX; i++)
	{
		if (!sessions[i].live)
		{
			slot = i;
			break;
		}
		if (sessions[i].last_used < sessions[slot].last_used)
			slot = i;
	}
	sessions[slot] = fresh;
	pthread_mutex_unlock(&session_lock);
	memcpy(token, fresh.token, sizeof(fresh.token));
	return true;
}

/* The live session of token, under session_lock; every slot is compared (constant time). */
static Session *
lookup(const char *token)
{
	Session *found = NULL;

	if (strlen(token) != SESSION_TOKEN_LEN)
		return NULL;
	expire(now_monotonic());
	for (int i = 0; i < SESSION_MAX; i++)
		if (sessions[i].live && token_equal(sessions[i].token, token))
			found = &sessions[i];
	return found;
}

bool
session_find(const char *token, SessionInfo *info)
{
	Session *s;

	pthread_mutex_lock(&session_lock);
	s = lookup(token);
	if (s != NULL)
	{
		s->last_used = now_monotonic();
		memcpy(info->key_name, s->key_name, sizeof(info->key_name));
		memcpy(info->csrf, s->csrf, sizeof(info->csrf));
	}
	pthread_mutex_unlock(&session_lock);
	return s != NULL;
}

void
session_end(const char *token)
{
	Session *s;

	pthread_mutex_lock(&session_lock);
	s = lookup(token);
	if (s != NULL)
		memset(s, 0, sizeof(Session));
	pthread_mutex_unlock(&session_lock);
}

/* The entry of client, or NULL; under failures_lock. */
static Failures *
failures_of(const char *client)
{
	if (client[0] == '\0')
		client = "?"; /* no address known: one entry for all such */
	for (int i = 0; i < SIGNIN_ADDRESSES; i++)
		if (failures[i].client[0] && strcmp(failures[i].client, client) == 0)
			return &failures[i];
	return NULL;
}

bool
signin_blocked(const char *client, unsigned *retry_after)
{
	Failures *f;
	double oldest;
	double now = now_monotonic();
	bool blocked = false;

	*retry_after = 0;
	pthread_mutex_lock(&failures_lock);
	f = failures_of(client);
	if (f != NULL)
	{
		/* SIGNIN_FAILURES failures, the oldest of them within the window */
		oldest = f->failed_at[f->next];
		blocked = oldest > 0 && now - oldest < SIGNIN_WINDOW;
		if (blocked)
			*retry_after = (unsigned) (SIGNIN_WINDOW - (now - oldest)) + 1;
	}
	pthread_mutex_unlock(&failures_lock);
	return blocked;
}

void
signin_failed(const char *client)
{
	Failures *f;
	double now = now_monotonic();

	pthread_mutex_lock(&failures_lock);
	f = failures_of(client);
	if (f == NULL)
	{
		/* a free entry, else the one whose last failure is the oldest */
		f = &failures[0];
		for (int i = 0; i < SIGNIN_ADDRESSES && f->client[0]; i++)
			if (!failures[i].client[0] || failures[i].latest < f->latest)
				f = &failures[i];
		memset(f, 0, sizeof(Failures));
		snprintf(f->client, sizeof(f->client), "%s", client[0] ? client : "?");
	}
	f->failed_at[f->next] = now;
	f->next = (f->next + 1) % SIGNIN_FAILURES;
	f->latest = now;
	pthread_mutex_unlock(&failures_lock);
}
