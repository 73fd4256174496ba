/*
 * fuzz_redact.c: li_redact_text (extension/payload.c), which hides the secrets of a body
 * that is not valid JSON before it is kept in intake_log.raw_body.
 *
 * Input: the body (the server hands the function NUL-terminated text: bytes after a NUL
 * are not seen). Checked besides the sanitizers: redacting twice gives the same text; in
 * the result, every secret key (api_key, dialer_api_key, pass, orig_pass, phone_pass, any
 * case, each character plain or a \uXXXX escape, at a word boundary) followed, as README.md
 * documents, by an optional quote, spaces
 * or tabs and ':' or '=', has the value "[redacted]"; the text around is kept.
 */
#include "leadintake.h"
#include "pgfake.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#undef fprintf

#include "fuzzfail.h"

#define FAIL(...) fuzz_fail("fuzz_redact", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const secrets[] = {"api_key", "dialer_api_key", "pass", "orig_pass",
									  "phone_pass"};

static bool
word(char c)
{
	return isalnum((unsigned char) c) || c == '_';
}

/*
 * s with every \\uXXXX escape of a letter, digit or '_' written as that character: JSON lets
 * a key spell its name either way, so both must count as the name (malloc'd).
 */
static char *
unescaped_names(const char *s)
{
	char *out = malloc(strlen(s) + 1);
	size_t o = 0;

	for (size_t i = 0; s[i];)
	{
		if (s[i] == '\\' && s[i + 1] == 'u' && isxdigit((unsigned char) s[i + 2]) &&
			isxdigit((unsigned char) s[i + 3]) && isxdigit((unsigned char) s[i + 4]) &&
			isxdigit((unsigned char) s[i + 5]))
		{
			char hex[5] = {s[i + 2], s[i + 3], s[i + 4], s[i + 5], '\0'};
			long c = strtol(hex, NULL, 16);

			if (c < 128 && word((char) c))
			{
				out[o++] = (char) c;
				i += 6;
				continue;
			}
		}
		out[o++] = s[i++];
	}
	out[o] = '\0';
	return out;
}

/* The first documented secret assignment whose value is not "[redacted]", or -1. */
static long
unredacted(const char *s)
{
	for (long i = 0; s[i]; i++)
	{
		if (i > 0 && word(s[i - 1]))
			continue;
		for (size_t n = 0; n < sizeof(secrets) / sizeof(secrets[0]); n++)
		{
			size_t len = strlen(secrets[n]);
			long j = i + len;

			if (strncasecmp(s + i, secrets[n], len) != 0 || word(s[j]))
				continue;
			if (s[j] == '"' || s[j] == '\'')
				j++;
			while (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')
				j++;
			if (s[j] != ':' && s[j] != '=')
				continue;
			j++;
			while (s[j] == ' ' || s[j] == '\t' || s[j] == '\n' || s[j] == '\r')
				j++;
			if (strncmp(s + j, "\"[redacted]\"", 12) != 0)
				return i;
		}
	}
	return -1;
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_fail_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *in = malloc(size + 1);
	char *once;
	char *twice;
	char *plain;
	long at;

	memcpy(in, data, size);
	in[size] = '\0';
	once = li_redact_text(in);
	twice = li_redact_text(once);
	if (strcmp(once, twice) != 0)
		FAIL("not idempotent:\n  %s\n  %s", once, twice);
	plain = unescaped_names(once);
	if ((at = unredacted(plain)) >= 0)
		FAIL("a secret assignment kept its value at byte %ld (names unescaped): %.60s", at,
			 plain + at);
	free(plain);
	/* without any secret name, even spelt with escapes, the text is unchanged */
	{
		bool any = false;
		char *names = unescaped_names(in);

		for (const char *p = names; *p && !any; p++)
			for (size_t n = 0; n < sizeof(secrets) / sizeof(secrets[0]); n++)
				if (strncasecmp(p, secrets[n], strlen(secrets[n])) == 0)
					any = true;
		free(names);
		if (!any && strcmp(in, once) != 0)
			FAIL("text without a secret name was changed");
	}
	free(in);
	pgfake_reset();
	return 0;
}
