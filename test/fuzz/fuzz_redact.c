/*
 * fuzz_redact.c: li_redact_text (extension/redact.c), which hides the secrets of a body
 * that is not valid JSON before it is kept in intake_log.raw_body.
 *
 * Input: the body (the server hands the function NUL-terminated text: bytes after a NUL
 * are not seen). Checked besides the sanitizers:
 *   - the result is exactly that of ref_redact below, a plain second implementation of the
 *     rule README.md documents (it reads code points where redact.c compares bytes);
 *   - redacting twice gives the same text; every secret key (api_key, dialer_api_key, pass,
 *     orig_pass, phone_pass, any case, each character plain or a \uXXXX escape, at a word
 *     boundary) followed by an optional quote, spaces and ':' or '=' has the value
 *     "[redacted]"; text without a secret name is unchanged;
 *   - planted: the input, with a secret key and a value of one of the shapes a lenient
 *     reader reads (quoted, single-quoted, with a stray quote, an array, an object, bare)
 *     put after it, keeps no byte of that value. The value's bytes are marked (MARK, which
 *     is removed from the text around), so that any byte of it left over is seen.
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

static size_t ref_skip(const char *s, size_t j, bool stop_at_line);

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
			j = ref_skip(s, j, false);
			if (s[j] != ':' && s[j] != '=')
				continue;
			j = ref_skip(s, j + 1, false);
			if (strncmp(s + j, "\"[redacted]\"", 12) != 0)
				return i;
		}
	}
	return -1;
}

/* ---------------------------------------------------------------- the reference */

/*
 * The code point at s (strict UTF-8: an overlong form, a surrogate or a stray byte is one
 * byte that is no code point, -1) and its length in *len.
 */
static long
code_point(const char *s, int *len)
{
	const unsigned char *u = (const unsigned char *) s;
	int n = u[0] < 0x80                   ? 1
			: u[0] >= 0xC2 && u[0] < 0xE0 ? 2
			: u[0] >= 0xE0 && u[0] < 0xF0 ? 3
			: u[0] >= 0xF0 && u[0] < 0xF5 ? 4
										  : 0;
	long cp;

	*len = 1;
	if (n == 0)
		return -1;
	cp = n == 1 ? u[0] : u[0] & (0x7F >> n);
	for (int k = 1; k < n; k++)
	{
		if ((u[k] & 0xC0) != 0x80)
			return -1;
		cp = (cp << 6) | (u[k] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
		(cp >= 0xD800 && cp <= 0xDFFF))
		return -1;
	*len = n;
	return cp;
}

static bool
ref_is_space(long cp)
{
	return cp == ' ' || (cp >= '\t' && cp <= '\r') || cp == 0xA0 || cp == 0x1680 ||
		   (cp >= 0x2000 && cp <= 0x200B) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
		   cp == 0x205F || cp == 0x3000 || cp == 0xFEFF;
}

/* 1 for a colon-like sign, 2 for an equals-like one (a form's), 0 for anything else. */
static int
ref_sign(long cp)
{
	if (cp == ':' || cp == 0xFF1A || cp == 0xFE55 || cp == 0xFE13 || cp == 0x2236)
		return 1;
	if (cp == '=' || cp == 0xFF1D || cp == 0xFE66)
		return 2;
	return 0;
}

static size_t
ref_skip(const char *s, size_t j, bool stop_at_line)
{
	int len;

	while (s[j] && !(stop_at_line && (s[j] == '\n' || s[j] == '\r')) &&
		   ref_is_space(code_point(s + j, &len)))
		j += len;
	return j;
}

/* After the secret name at s + i, the value's start, or 0 when no sign follows. */
static size_t
ref_after_name(const char *s, size_t j, int *sign)
{
	int len;

	if (s[j] == '"' || s[j] == '\'')
		j++;
	j = ref_skip(s, j, false);
	if ((*sign = ref_sign(code_point(s + j, &len))) == 0)
		return 0;
	return ref_skip(s, j + len, false);
}

/* Where the name ends if s + i spells it (letters plain or as \\u escapes), else 0. */
static size_t
ref_name(const char *s, size_t i, const char *name)
{
	for (; *name; name++)
	{
		long c = (unsigned char) s[i];
		size_t step = 1;

		if (s[i] == '\\' && s[i + 1] == 'u')
		{
			bool hex = true;

			for (int k = 2; k < 6; k++)
				hex = hex && isxdigit((unsigned char) s[i + k]);
			if (hex)
			{
				char h[5] = {s[i + 2], s[i + 3], s[i + 4], s[i + 5], 0};

				c = strtol(h, NULL, 16);
				step = 6;
			}
		}
		if (c >= 128 || tolower((int) c) != *name)
			return 0;
		i += step;
	}
	return word(s[i]) ? 0 : i;
}

/* The end of a value at s + j, by the rule: quoted, bracketed, else bare; stray: bare. */
static size_t
ref_value_end(const char *s, size_t j, bool form)
{
	size_t k = j;

	if (s[k] == '"' || s[k] == '\'')
	{
		char q = s[k++];

		while (s[k] && s[k] != q)
			k += (s[k] == '\\' && s[k + 1]) ? 2 : 1;
		if (s[k])
			k++;
	}
	else if (s[k] == '[' || s[k] == '{')
	{
		int depth = 0;

		do
		{
			if (s[k] == '"' || s[k] == '\'')
			{
				char q = s[k++];

				while (s[k] && s[k] != q)
					k += (s[k] == '\\' && s[k + 1]) ? 2 : 1;
				if (s[k])
					k++;
				continue;
			}
			if (s[k] == '[' || s[k] == '{')
				depth++;
			if (s[k] == ']' || s[k] == '}')
				depth--;
			k++;
		} while (s[k - 1] && depth > 0 && s[k]);
		if (depth > 0)
			k = strlen(s);
	}
	if (k > j)
	{
		size_t after = ref_skip(s, k, true);

		if (s[after] == '\0' || strchr(",;&}])\r\n", s[after]))
			return k;
	}
	while (s[k] && s[k] != '\n' && s[k] != '\r' && !(form && s[k] == '&'))
		k++;
	return k;
}

/* Where a secret assignment at s + i has its value, or 0; *sign as ref_sign says. */
static size_t
ref_assignment(const char *s, size_t i, int *sign)
{
	if (i > 0 && word(s[i - 1]))
		return 0;
	for (size_t k = 0; k < sizeof(secrets) / sizeof(secrets[0]); k++)
	{
		size_t e = ref_name(s, i, secrets[k]);
		size_t start = e ? ref_after_name(s, e, sign) : 0;

		if (start)
			return start;
	}
	return 0;
}

/* The reference redactor (malloc'd): a value's end stretches over the assignments in it. */
static char *
ref_redact(const char *s)
{
	size_t n = strlen(s), o = 0, i = 0;
	char *out = malloc(n * 12 + 13);

	while (s[i])
	{
		int sign = 0;
		size_t start = ref_assignment(s, i, &sign);
		size_t end;

		if (!start)
		{
			out[o++] = s[i++];
			continue;
		}
		memcpy(out + o, s + i, start - i);
		o += start - i;
		memcpy(out + o, "\"[redacted]\"", 12);
		o += 12;
		end = ref_value_end(s, start, sign == 2);
		for (size_t k = start; k < end; k++)
		{
			size_t inner = ref_assignment(s, k, &sign);

			if (inner && ref_value_end(s, inner, sign == 2) > end)
				end = ref_value_end(s, inner, sign == 2);
		}
		i = end;
	}
	out[o] = '\0';
	return out;
}

/* ---------------------------------------------------------------- the planted secret */

#define MARK '\x01'

/* Takes the next byte of the input (0 when used up). */
static unsigned char
take(const uint8_t **data, size_t *size)
{
	unsigned char c = *size ? **data : 0;

	if (*size)
		(*data)++, (*size)--;
	return c;
}

/* Appends content: the fuzzer's bytes without those in banned, each after a MARK. */
static void
put_marked(StringInfo b, const uint8_t **data, size_t *size, const char *banned)
{
	int n = take(data, size) % 8;

	appendStringInfoChar(b, MARK);
	for (int k = 0; k < n; k++)
	{
		unsigned char c = take(data, size);

		if (c == 0 || c == MARK || strchr(banned, c))
			c = 'x';
		appendStringInfoChar(b, (char) c);
		appendStringInfoChar(b, MARK);
	}
}

/* Appends the fuzzer's text as it is, without MARK or NUL bytes. */
static void
put_text(StringInfo b, const uint8_t *data, size_t size)
{
	for (size_t k = 0; k < size; k++)
		if (data[k] != 0 && data[k] != MARK)
			appendStringInfoChar(b, (char) data[k]);
}

/*
 * text + joiner + secret key + sign + a marked value + text: the first bytes of the input
 * choose the key, its spelling, the sign and the value's shape; then the value's bytes;
 * the rest is split into the text before and after.
 */
static char *
planted(const uint8_t *data, size_t size)
{
	static const char *const joiners[] = {",", "{", " ", "&", "\n", "?", ", "};
	static const char *const signs[] = {
		":",       "=",         " : ",          "\f:",          "\xC2\xA0:", "\xEF\xBC\x9A",
		"\r\n=\t", ":\xC2\xA0", "\xEF\xBC\x9D", "\xE3\x80\x80:"};
	StringInfoData b;
	const char *secret = secrets[take(&data, &size) % 5];
	int spelling = take(&data, &size) % 4;
	const char *sign = signs[take(&data, &size) % lengthof(signs)];
	bool form = strchr(sign, '=') || strstr(sign, "\xEF\xBC\x9D");
	int shape = take(&data, &size) % 7;
	size_t half = size / 2;
	const uint8_t *rest = data + half;
	size_t rest_size = size - half;

	initStringInfo(&b);
	put_text(&b, data, half / 2);
	appendStringInfoString(&b, joiners[half % lengthof(joiners)]);
	data += half / 2;
	size = half - half / 2;
	if (spelling == 1)
		appendStringInfo(&b, "\"%s\"", secret);
	else if (spelling == 2)
		appendStringInfo(&b, "'%s'", secret);
	else if (spelling == 3)
		appendStringInfo(&b, "\\u%04X%s", toupper(secret[0]), secret + 1);
	else
		appendStringInfoString(&b, secret);
	appendStringInfoString(&b, sign);
	switch (shape)
	{
		case 0: /* "..." */
			appendStringInfoChar(&b, '"');
			put_marked(&b, &data, &size, "\"\\");
			appendStringInfoChar(&b, '"');
			break;
		case 1: /* '...' */
			appendStringInfoChar(&b, '\'');
			put_marked(&b, &data, &size, "'\\");
			appendStringInfoChar(&b, '\'');
			break;
		case 2: /* "..."... : a stray quote, the rest of the value on its line */
			appendStringInfoChar(&b, '"');
			put_marked(&b, &data, &size, "\"\\");
			appendStringInfoChar(&b, '"');
			put_marked(&b, &data, &size, form ? "\r\n&" : "\r\n");
			break;
		case 3: /* ["...", "..."] */
			appendStringInfoString(&b, "[\"");
			put_marked(&b, &data, &size, "\"\\");
			appendStringInfoString(&b, "\", \"");
			put_marked(&b, &data, &size, "\"\\");
			appendStringInfoString(&b, "\"]");
			break;
		case 4: /* {"a": "...", "b": [...]} */
			appendStringInfoString(&b, "{\"a\": \"");
			put_marked(&b, &data, &size, "\"\\");
			appendStringInfoString(&b, "\", \"b\": [");
			put_marked(&b, &data, &size, "\"'\\[]{}");
			appendStringInfoString(&b, "]}");
			break;
		default: /* bare: to the end of the line (or the pair, after '=') */
			put_marked(&b, &data, &size, form ? "\r\n&" : "\r\n");
			break;
	}
	put_text(&b, rest, rest_size);
	return b.data;
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
	{
		char *ref = ref_redact(in);

		if (strcmp(once, ref) != 0)
			FAIL("differs from the reference:\n  in:   %.200s\n  got:  %.200s\n  ref:  %.200s", in,
				 once, ref);
		free(ref);
	}
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
	{
		char *text = planted(data, size);
		char *out = li_redact_text(text);

		if (strchr(out, MARK) != NULL)
			FAIL("a byte of a planted secret value survived:\n  in:  %.200s\n  out: %.200s", text,
				 out);
	}
	pgfake_reset();
	return 0;
}
