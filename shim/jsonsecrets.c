/*
 * jsonsecrets.c: a JSON body with the dialer's secrets taken out, for the spool only (contract
 * section 8: nothing secret is written to disk). The shim forwards JSON bodies unparsed; what
 * it spools is read here just enough to drop the top-level members the extension drops.
 */
#include "shim.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

static size_t
skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

/* The end of the string that starts at s[i] ('"'), past its closing quote; 0 if none. */
static size_t
string_end(const char *s, size_t len, size_t i)
{
	for (i++; i < len; i++)
	{
		if (s[i] == '\\')
			i++;
		else if (s[i] == '"')
			return i + 1;
		else if ((unsigned char) s[i] < 0x20)
			return 0;
	}
	return 0;
}

/* The end of the value at s[i]: a string, an object or array (nested), or a bare word. */
static size_t
value_end(const char *s, size_t len, size_t i)
{
	int depth = 0;

	if (i >= len)
		return 0;
	if (s[i] != '{' && s[i] != '[')
	{
		if (s[i] == '"')
			return string_end(s, len, i);
		while (i < len && strchr(",}] \t\r\n", s[i]) == NULL)
			i++;
		return i;
	}
	for (; i < len; i++)
	{
		if (s[i] == '"')
		{
			size_t e = string_end(s, len, i);

			if (e == 0)
				return 0;
			i = e - 1;
		}
		else if (s[i] == '{' || s[i] == '[')
		{
			if (++depth > MAX_DEPTH)
				return 0;
		}
		else if ((s[i] == '}' || s[i] == ']') && --depth == 0)
			return i + 1;
	}
	return 0;
}

/*
 * The key of the string s[i..end) decoded enough to compare it with a secret's name: the
 * escapes \uXXXX of ASCII letters and '_' and the plain bytes; false when it is longer than
 * any secret's name (it is then no secret).
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
		if (n + 1 >= outlen)
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
		if ((val_end = value_end(s, len, val_start)) == 0)
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
