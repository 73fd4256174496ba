/*
 * fuzz_keys.c: shim/keys.c, the API key file parser (keys_load) and the constant-time key
 * check (keys_match), which sees the X-Dialer-Api-Key header or the api_key parameter.
 *
 * Input: a key file, as is (written to a memfd, loaded by path). Checked besides the
 * sanitizers: the file loads exactly when a reference parser (written from docs/shim.md)
 * accepts it; a failed load keeps the keys loaded before; each loaded secret matches its
 * own name and nothing else; the secret with a byte more, a byte less or one byte changed
 * does not match; a presented key longer than any secret does not match.
 */
#define _GNU_SOURCE
#include "../../shim/shim.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzzfail.h"

#define FAIL(...) fuzz_fail("fuzz_keys", __VA_ARGS__)

#define SECRET_MAX 1024
#define LINE_MAX_CHARS (KEY_NAME_MAX + SECRET_MAX + 8 - 2) /* fgets buffer, less \n and NUL */

int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static int memfd = -1;
static char path[64];

/* The keys loaded now, as the reference sees them (after a success). */
typedef struct RefKey
{
	char name[KEY_NAME_MAX];
	char *secret;
} RefKey;

static RefKey *loaded;
static int nloaded;

static const char base_file[] = "base:base-secret-0123456789abcdef\n";

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[256];

	fuzz_fail_init();

	memfd = memfd_create("fuzz-keys", 0);
	if (memfd < 0)
		FAIL("memfd_create");
	fchmod(memfd, 0600);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	if (ftruncate(memfd, 0) != 0 || write(memfd, base_file, strlen(base_file)) < 0)
		FAIL("write");
	if (!keys_load(path, err, sizeof(err)))
		FAIL("the base key file does not load: %s", err);
	loaded = calloc(1, sizeof(RefKey));
	strcpy(loaded[0].name, "base");
	loaded[0].secret = strdup("base-secret-0123456789abcdef");
	nloaded = 1;
	return 0;
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

/* The reference: docs/shim.md's rules. Fills keys; false when the file is refused. */
static bool
ref_parse(const char *text, size_t size, RefKey **keys, int *nkeys)
{
	size_t pos = 0;

	*keys = NULL;
	*nkeys = 0;
	while (pos < size)
	{
		const char *nl = memchr(text + pos, '\n', size - pos);
		size_t len = nl ? (size_t) (nl - text - pos) : size - pos;
		char *line;
		char *name;
		char *colon;
		char *secret;
		bool ok = true;

		if (len > LINE_MAX_CHARS)
			return false; /* line too long */
		line = strndup(text + pos, len);
		pos += len + 1;
		name = trim(line);
		if (*name == '\0' || *name == '#')
		{
			free(line);
			continue;
		}
		colon = strchr(name, ':');
		if (colon == NULL)
			ok = false;
		else
		{
			*colon = '\0';
			name = trim(name);
			secret = trim(colon + 1);
			if (*name == '\0' || strlen(name) >= KEY_NAME_MAX)
				ok = false;
			for (const char *c = name; ok && *c; c++)
				if (!isalnum((unsigned char) *c) && !strchr("._-@", *c))
					ok = false;
			if (*secret == '\0' || strlen(secret) > SECRET_MAX)
				ok = false;
			for (int i = 0; ok && i < *nkeys; i++)
				if (strcmp((*keys)[i].secret, secret) == 0)
					ok = false; /* two keys, one secret */
		}
		if (!ok)
		{
			free(line);
			return false;
		}
		*keys = realloc(*keys, (*nkeys + 1) * sizeof(RefKey));
		snprintf((*keys)[*nkeys].name, KEY_NAME_MAX, "%s", name);
		(*keys)[*nkeys].secret = strdup(secret);
		(*nkeys)++;
		free(line);
	}
	return true;
}

static void
free_keys(RefKey *keys, int n)
{
	for (int i = 0; i < n; i++)
		free(keys[i].secret);
	free(keys);
}

/* Whom the reference says a presented key belongs to; NULL for nobody. */
static const char *
ref_owner(const char *s, size_t len)
{
	for (int i = 0; i < nloaded; i++)
		if (strlen(loaded[i].secret) == len && memcmp(loaded[i].secret, s, len) == 0)
			return loaded[i].name;
	return NULL;
}

static void
check_match(const char *s, size_t len, const char *what)
{
	char name[KEY_NAME_MAX];
	const char *owner = ref_owner(s, len);
	bool got;

	memset(name, 0, sizeof(name));
	got = keys_match(s, len, name, sizeof(name));
	if (len > SECRET_MAX || len == 0)
		owner = NULL;
	if (got != (owner != NULL))
		FAIL("keys_match(%s) = %d, the reference says %s", what, got, owner ? owner : "no key");
	if (got && strcmp(name, owner) != 0)
		FAIL("keys_match(%s) named \"%s\", the key is \"%s\"", what, name, owner);
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	char err[512];
	RefKey *keys;
	int nkeys;
	bool ref_ok;
	bool ok;
	bool has_nul = memchr(data, '\0', size) != NULL;

	if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t) size)
		FAIL("write");
	ref_ok = ref_parse((const char *) data, size, &keys, &nkeys);
	err[0] = '\0';
	ok = keys_load(path, err, sizeof(err));
	if (!ok && err[0] == '\0')
		FAIL("keys_load failed without a message");
	if (has_nul)
	{
		/* fgets and a NUL byte: no reference; only the sanitizers and the checks below */
		if (ok)
		{
			free_keys(keys, nkeys);
			keys = NULL;
			nkeys = 0;
			free_keys(loaded, nloaded);
			loaded = NULL;
			nloaded = 0;
			/* the loaded set is unknown to the reference: put a known one back */
			if (ftruncate(memfd, 0) != 0 || pwrite(memfd, base_file, strlen(base_file), 0) < 0 ||
				!keys_load(path, err, sizeof(err)))
				FAIL("reloading the base file");
			loaded = calloc(1, sizeof(RefKey));
			strcpy(loaded[0].name, "base");
			loaded[0].secret = strdup("base-secret-0123456789abcdef");
			nloaded = 1;
		}
		else
			free_keys(keys, nkeys);
		return 0;
	}
	if (ok != ref_ok)
		FAIL("keys_load %s the file, the reference %s it (%s)", ok ? "accepted" : "refused",
			 ref_ok ? "accepts" : "refuses", err);
	if (ok)
	{
		free_keys(loaded, nloaded);
		loaded = keys;
		nloaded = nkeys;
	}
	else
		free_keys(keys, nkeys); /* the old keys stay */
	if (keys_count() != nloaded)
		FAIL("keys_count() = %d, expected %d", keys_count(), nloaded);

	for (int i = 0; i < nloaded; i++)
	{
		const char *s = loaded[i].secret;
		size_t len = strlen(s);
		char *v = malloc(len + 2);

		check_match(s, len, "a secret");
		memcpy(v, s, len);
		v[len] = 'x';
		check_match(v, len + 1, "a secret and a byte more");
		check_match(s, len - 1, "a secret less its last byte");
		v[len / 2] ^= 1;
		check_match(v, len, "a secret with one byte changed");
		free(v);
	}
	/* the input itself, presented as a key (as a header would bring it, up to a NUL) */
	check_match((const char *) data, strnlen((const char *) data, size), "the input");
	{
		char *longer = malloc(SECRET_MAX + 2);

		memset(longer, 'a', SECRET_MAX + 1);
		check_match(longer, SECRET_MAX + 1, "a key over the length limit");
		free(longer);
	}
	return 0;
}
