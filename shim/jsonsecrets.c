/*
 * jsonsecrets.c: a JSON body with the dialer's secrets taken out, for the spool only (contract
 * section 8: nothing secret is written to disk). The shim forwards JSON bodies unparsed; what
 * it spools is read here just enough to drop the top-level members the extension drops. Its
 * validating scanner serves jsonget.c too.
 */
#include "shim.h"

#include <stdlib.h>
#include <string.h>

/* containers open at once, the top-level object included; deeper is refused (a stack bound) */
#define MAX_DEPTH 64

static size_t value_end(const char *s, size_t len, size_t i, int depth);

static size_t
skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static bool
is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/*
 * The end of the string that starts at s[i] ('"'), past its closing quote; 0 if none or if
 * an escape is not JSON's: what is spooled must be what the database reads as JSON.
 */
static size_t
string_end(const char *s, size_t len, size_t i)
{
	for (i++; i < len; i++)
	{
		if (s[i] == '"')
			return i + 1;
		if ((unsigned char) s[i] < 0x20)
			return 0;
		if (s[i] != '\\')
			continue;
		if (++i >= len)
			return 0;
		if (s[i] == 'u')
		{
			if (len - i < 5 || !is_hex(s[i + 1]) || !is_hex(s[i + 2]) || !is_hex(s[i + 3]) ||
				!is_hex(s[i + 4]))
				return 0;
			i += 4;
		}
		else if (s[i] == '\0' || strchr("\"\\/bfnrt", s[i]) == NULL)
			return 0;
	}
	return 0;
}

static size_t
digits_end(const char *s, size_t len, size_t i)
{
	while (i < len && s[i] >= '0' && s[i] <= '9')
		i++;
	return i;
}

/* The end of the number at s[i] (RFC 8259: no leading zero, no bare '.', no '+'); 0 if none. */
static size_t
number_end(const char *s, size_t len, size_t i)
{
	size_t j;

	if (i < len && s[i] == '-')
		i++;
	if (i < len && s[i] == '0')
		i++;
	else if ((j = digits_end(s, len, i)) > i)
		i = j;
	else
		return 0;
	if (i < len && s[i] == '.')
	{
		if ((j = digits_end(s, len, i + 1)) == i + 1)
			return 0;
		i = j;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E'))
	{
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if ((j = digits_end(s, len, i)) == i)
			return 0;
		i = j;
	}
	return i;
}

/* The end of the literal word at s[i]; 0 if s[i] does not start with it. */
static size_t
word_end(const char *s, size_t len, size_t i, const char *word)
{
	size_t n = strlen(word);

	return len - i >= n && memcmp(s + i, word, n) == 0 ? i + n : 0;
}

/*
 * The end of the object or array at s[i], past its closing bracket, every member valid;
 * depth counts it. 0 if it is not valid JSON.
 */
static size_t
container_end(const char *s, size_t len, size_t i, int depth)
{
	char close = s[i] == '{' ? '}' : ']';

	i = skip_ws(s, len, i + 1);
	if (i < len && s[i] == close)
		return i + 1;
	for (;;)
	{
		if (close == '}')
		{
			if (i >= len || s[i] != '"' || (i = string_end(s, len, i)) == 0)
				return 0;
			i = skip_ws(s, len, i);
			if (i >= len || s[i] != ':')
				return 0;
			i = skip_ws(s, len, i + 1);
		}
		if ((i = value_end(s, len, i, depth)) == 0)
			return 0;
		i = skip_ws(s, len, i);
		if (i < len && s[i] == close)
			return i + 1;
		if (i >= len || s[i] != ',')
			return 0;
		i = skip_ws(s, len, i + 1);
	}
}

/*
 * The end of the JSON value at s[i], inside depth open containers; 0 if it is not one. Every
 * value is checked, not only skipped: the spool must not turn an invalid body into one the
 * database reads differently (or at all).
 */
static size_t
value_end(const char *s, size_t len, size_t i, int depth)
{
	if (i >= len)
		return 0;
	switch (s[i])
	{
		case '"':
			return string_end(s, len, i);
		case '{':
		case '[':
			return depth >= MAX_DEPTH ? 0 : container_end(s, len, i, depth + 1);
		case 't':
			return word_end(s, len, i, "true");
		case 'f':
			return word_end(s, len, i, "false");
		case 'n':
			return word_end(s, len, i, "null");
		default:
			return number_end(s, len, i);
	}
}

/*
 * The key of the string s[i..end) decoded enough to compare it with a secret's name: the
 * escapes \u00XX and the plain bytes (no other escape decodes to ASCII); false when it is
 * longer than any secret's name or holds a NUL (\u0000): it is then no secret, and a NUL
 * in out would end it early ("pass\u0000" is not "pass").
 */
static bool
key_text(const char *s, size_t i, size_t end, char *out, size_t outlen)
{
	size_t n = 0;

	for (i++; i + 1 < end; i++)
	{
		char c = s[i];

		if (c == '\\' && i + 5 < end && s[i + 1] == 'u' && strncmp(s + i + 2, "00", 2) == 0)
		{
			char hex[3] = {s[i + 4], s[i + 5], 0};

			c = (char) strtol(hex, NULL, 16);
			i += 5;
		}
		else if (c == '\\')
			return false;
		if (c == '\0' || n + 1 >= outlen)
			return false;
		out[n++] = c;
	}
	out[n] = '\0';
	return true;
}

bool
json_drop_secrets(const char *s, size_t len, Buf *out)
{
	size_t i = skip_ws(s, len, 0);
	bool first = true;

	if (i >= len || s[i] != '{')
		return false;
	buf_puts(out, "{");
	i = skip_ws(s, len, i + 1);
	if (i < len && s[i] == '}')
	{
		if (skip_ws(s, len, i + 1) != len)
			return false;
		buf_puts(out, "}");
		return !out->oom;
	}
	for (;;)
	{
		size_t key_start = i, key_end, val_start, val_end;
		char key[32];

		if (i >= len || s[i] != '"' || (key_end = string_end(s, len, i)) == 0)
			return false;
		i = skip_ws(s, len, key_end);
		if (i >= len || s[i] != ':')
			return false;
		val_start = skip_ws(s, len, i + 1);
		if ((val_end = value_end(s, len, val_start, 1)) == 0)
			return false;
		if (!(key_text(s, key_start, key_end, key, sizeof(key)) && key_is_secret(key, strlen(key))))
		{
			if (!first)
				buf_puts(out, ",");
			buf_append(out, s + key_start, val_end - key_start);
			first = false;
		}
		i = skip_ws(s, len, val_end);
		if (i < len && s[i] == ',')
		{
			i = skip_ws(s, len, i + 1);
			continue;
		}
		if (i < len && s[i] == '}' && skip_ws(s, len, i + 1) == len)
		{
			buf_puts(out, "}");
			return !out->oom;
		}
		return false;
	}
}

size_t
json_value_end(const char *s, size_t len, size_t i)
{
	return value_end(s, len, i, 0);
}
