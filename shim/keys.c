/*
 * keys.c: the key files (name:secret lines: the dialer's API keys, the console's keys), each
 * loaded at start and again on SIGHUP, and the constant-time check of a presented key; only
 * a key's name ever leaves this file.
 */
#include "shim.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define SECRET_MAX 1024

typedef struct Key
{
	char name[KEY_NAME_MAX];
	char *secret;
	size_t secret_len;
} Key;

typedef struct KeySet
{
	Key *keys;
	int count;
} KeySet;

struct KeyRing
{
	const char *what; /* "API key file", "console key file": for messages */
	pthread_rwlock_t lock;
	KeySet *current; /* under lock */
};

static KeyRing dialer_ring = {"API key file", PTHREAD_RWLOCK_INITIALIZER, NULL};
static KeyRing console_ring = {"console key file", PTHREAD_RWLOCK_INITIALIZER, NULL};
KeyRing *const dialer_keys = &dialer_ring;
KeyRing *const console_keys = &console_ring;

static void
keyset_free(KeySet *set)
{
	int i;

	if (set == NULL)
		return;
	for (i = 0; i < set->count; i++)
	{
		/* do not leave secrets in freed memory */
		volatile char *p = set->keys[i].secret;
		size_t n;

		for (n = 0; n < set->keys[i].secret_len; n++)
			p[n] = 0;
		free(set->keys[i].secret);
	}
	free(set->keys);
	free(set);
}

static char *
trim(char *s)
{
	char *e;

	while (*s && isspace((unsigned char) *s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char) e[-1]))
		*--e = '\0';
	return s;
}

static bool
valid_name(const char *s)
{
	if (*s == '\0' || strlen(s) >= KEY_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char) *s) && strchr("._-@", *s) == NULL)
			return false;
	return true;
}

/* A key of set whose secret is also one of other's (both rings' keys apart), or NULL. */
static const Key *
shared_secret(const KeySet *set, KeyRing *other)
{
	const Key *shared = NULL;

	if (other == NULL)
		return NULL;
	pthread_rwlock_rdlock(&other->lock);
	for (int i = 0; other->current != NULL && i < set->count && !shared; i++)
		for (int j = 0; j < other->current->count && !shared; j++)
			if (strcmp(set->keys[i].secret, other->current->keys[j].secret) == 0)
				shared = &set->keys[i];
	pthread_rwlock_unlock(&other->lock);
	return shared;
}

bool
keyring_load(KeyRing *ring, const char *path, KeyRing *other, char *err, size_t errlen)
{
	const Key *shared;

	FILE *f;
	KeySet *set;
	KeySet *old;
	char line[KEY_NAME_MAX + SECRET_MAX + 8];
	int lineno = 0;
	int cap = 0;
	struct stat st;

	f = fopen(path, "r");
	if (f == NULL)
	{
		snprintf(err, errlen, "cannot read %s \"%s\": %s", ring->what, path, strerror(errno));
		return false;
	}
	if (fstat(fileno(f), &st) == 0 && (st.st_mode & 0077) != 0)
		log_msg("warning: %s \"%s\" is readable by group or others (chmod 600 it)", ring->what,
				path);
	set = calloc(1, sizeof(KeySet));
	if (set == NULL)
	{
		fclose(f);
		snprintf(err, errlen, "out of memory");
		return false;
	}
	while (fgets(line, sizeof(line), f) != NULL)
	{
		char *colon;
		char *name;
		char *secret;
		int i;

		lineno++;
		if (strchr(line, '\n') == NULL && !feof(f))
		{
			snprintf(err, errlen, "%s:%d: line too long", path, lineno);
			goto fail;
		}
		name = trim(line);
		if (*name == '\0' || *name == '#')
			continue;
		colon = strchr(name, ':');
		if (colon == NULL)
		{
			snprintf(err, errlen, "%s:%d: expected name:secret", path, lineno);
			goto fail;
		}
		*colon = '\0';
		name = trim(name);
		secret = trim(colon + 1);
		if (!valid_name(name))
		{
			snprintf(err, errlen, "%s:%d: a key name is 1 to %d letters, digits or . _ - @", path,
					 lineno, KEY_NAME_MAX - 1);
			goto fail;
		}
		if (*secret == '\0')
		{
			snprintf(err, errlen, "%s:%d: empty secret for key \"%s\"", path, lineno, name);
			goto fail;
		}
		if (strlen(secret) > SECRET_MAX)
		{
			snprintf(err, errlen, "%s:%d: secret longer than %d bytes", path, lineno, SECRET_MAX);
			goto fail;
		}
		for (i = 0; i < set->count; i++)
			if (strcmp(set->keys[i].secret, secret) == 0)
			{
				snprintf(err, errlen, "%s:%d: the secret of key \"%s\" is also key \"%s\"'s", path,
						 lineno, name, set->keys[i].name);
				goto fail;
			}
		if (strlen(secret) < 16)
			log_msg("warning: %s:%d: the secret of key \"%s\" is short (under 16 characters)", path,
					lineno, name);
		if (set->count == cap)
		{
			int ncap = cap ? cap * 2 : 8;
			Key *keys = realloc(set->keys, ncap * sizeof(Key));

			if (keys == NULL)
			{
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			set->keys = keys;
			cap = ncap;
		}
		snprintf(set->keys[set->count].name, KEY_NAME_MAX, "%s", name);
		set->keys[set->count].secret = strdup(secret);
		set->keys[set->count].secret_len = strlen(secret);
		if (set->keys[set->count].secret == NULL)
		{
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		set->count++;
	}
	if (ferror(f))
	{
		snprintf(err, errlen, "cannot read %s \"%s\": %s", ring->what, path, strerror(errno));
		goto fail;
	}
	fclose(f);
	memset(line, 0, sizeof(line));
	if ((shared = shared_secret(set, other)) != NULL)
	{
		/* a dialer key never opens the console, a console key never posts a lead */
		snprintf(err, errlen, "%s: the secret of key \"%s\" is also a key of the %s", path,
				 shared->name, other->what);
		keyset_free(set);
		return false;
	}
	if (set->count == 0)
		log_msg("warning: %s \"%s\" holds no key: nobody can authenticate", ring->what, path);

	pthread_rwlock_wrlock(&ring->lock);
	old = ring->current;
	ring->current = set;
	pthread_rwlock_unlock(&ring->lock);
	keyset_free(old);
	return true;

fail:
	fclose(f);
	memset(line, 0, sizeof(line));
	keyset_free(set);
	return false;
}

/*
 * Compares the presented bytes with every key, always all of them and always over the
 * presented length, so that the time taken tells nothing about which bytes matched.
 */
bool
keyring_match(KeyRing *ring, const char *secret, size_t len, char *name, size_t namelen)
{
	const KeySet *current;
	int i;
	int found = -1;

	if (len == 0 || len > SECRET_MAX)
		return false;
	pthread_rwlock_rdlock(&ring->lock);
	current = ring->current;
	for (i = 0; current != NULL && i < current->count; i++)
	{
		const Key *k = &current->keys[i];
		volatile unsigned char diff = (unsigned char) (len != k->secret_len);
		size_t j;

		for (j = 0; j < len; j++)
		{
			/* past the secret's end, compare with its last byte: still a mismatch */
			size_t at = j < k->secret_len ? j : k->secret_len - 1;

			diff |= (unsigned char) secret[j] ^ (unsigned char) k->secret[at];
		}
		if (diff == 0)
			found = i;
	}
	if (found >= 0)
		snprintf(name, namelen, "%s", current->keys[found].name);
	pthread_rwlock_unlock(&ring->lock);
	return found >= 0;
}

int
keyring_count(KeyRing *ring)
{
	int n;

	pthread_rwlock_rdlock(&ring->lock);
	n = ring->current ? ring->current->count : 0;
	pthread_rwlock_unlock(&ring->lock);
	return n;
}

bool
keyring_has(KeyRing *ring, const char *name)
{
	bool found = false;

	pthread_rwlock_rdlock(&ring->lock);
	for (int i = 0; ring->current != NULL && i < ring->current->count && !found; i++)
		found = strcmp(ring->current->keys[i].name, name) == 0;
	pthread_rwlock_unlock(&ring->lock);
	return found;
}

void
keyring_names(KeyRing *ring, Buf *out)
{
	pthread_rwlock_rdlock(&ring->lock);
	buf_puts(out, "[");
	for (int i = 0; ring->current != NULL && i < ring->current->count; i++)
	{
		if (i > 0)
			buf_puts(out, ", ");
		buf_json_string(out, ring->current->keys[i].name, strlen(ring->current->keys[i].name));
	}
	buf_puts(out, "]");
	pthread_rwlock_unlock(&ring->lock);
}

/* The dialer's keys: what the intake endpoint (and its fuzz harnesses) use. */
bool
keys_load(const char *path, char *err, size_t errlen)
{
	return keyring_load(dialer_keys, path, NULL, err, errlen);
}

bool
keys_match(const char *secret, size_t len, char *name, size_t namelen)
{
	return keyring_match(dialer_keys, secret, len, name, namelen);
}

int
keys_count(void)
{
	return keyring_count(dialer_keys);
}
