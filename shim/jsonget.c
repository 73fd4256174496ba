/*
 * jsonget.c: one string member of a small JSON object, decoded: what the console reads of the
 * bodies it does not pass to the database (sign-in's key, test-lead's key_name and query).
 */
#include "shim.h"

#include <string.h>

static size_t
skip_ws(const char *s, size_t len, size_t i)
{
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	return i;
}

static unsigned
hex4(const char *p)
{
	unsigned v = 0;

	for (int k = 0; k < 4; k++)
	{
		char c = p[k];

		v = v * 16 + (unsigned) (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

static void
put_utf8(Buf *out, unsigned cp)
{
	static const unsigned char lead[5] = {0, 0, 0xC0, 0xE0, 0xF0};
	unsigned char b[4];
	size_t n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;

	for (size_t k = n - 1; k > 0; k--)
	{
		b[k] = (unsigned char) (0x80 | (cp & 0x3F));
		cp >>= 6;
	}
	b[0] = (unsigned char) (lead[n] | cp);
	buf_append(out, b, n);
}

/*
 * Decodes the string s[i..end) (quotes included, already validated by json_value_end) into
 * out; a lone surrogate becomes U+FFFD.
 */
static void
decode_string(const char *s, size_t i, size_t end, Buf *out)
{
	static const char escapes[] = "\"\"\\\\//b\bf\fn\nr\rt\t";

	buf_append(out, "", 0); /* "" is a value too: data is then not NULL */
	for (i++; i + 1 < end; i++)
	{
		unsigned cp;

		if (s[i] != '\\')
		{
			buf_append(out, s + i, 1);
			continue;
		}
		i++;
		if (s[i] != 'u')
		{
			const char *e = strchr(escapes, s[i]);

			buf_append(out, e + 1, 1); /* pairs: the escape letter, then its byte */
			continue;
		}
		cp = hex4(s + i + 1);
		i += 4;
		if (cp >= 0xD800 && cp < 0xDC00 && i + 6 < end && s[i + 1] == '\\' && s[i + 2] == 'u')
		{
			unsigned lo = hex4(s + i + 3);

			if (lo >= 0xDC00 && lo < 0xE000)
			{
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				i += 6;
			}
		}
		if (cp >= 0xD800 && cp < 0xE000)
			cp = 0xFFFD;
		put_utf8(out, cp);
	}
}

/* True when the member name s[i..end) (a string, quotes included) is exactly name. */
static bool
key_is(const char *s, size_t i, size_t end, const char *name)
{
	bool same;
	Buf key;

	buf_init(&key);
	decode_string(s, i, end, &key);
	same = !key.oom && key.len == strlen(name) && memcmp(key.data, name, key.len) == 0;
	buf_free(&key);
	return same;
}

bool
json_get_string(const char *s, size_t len, const char *name, Buf *out)
{
	size_t i = skip_ws(s, len, 0);
	int found = 0;

	if (i >= len || s[i] != '{' || skip_ws(s, len, json_value_end(s, len, i)) != len)
		return false; /* not one valid JSON value, or not an object */
	i = skip_ws(s, len, i + 1);
	while (i < len && s[i] == '"')
	{
		size_t key_end = json_value_end(s, len, i);
		size_t val = skip_ws(s, len, skip_ws(s, len, key_end) + 1); /* past the ':' */
		size_t val_end = json_value_end(s, len, val);

		if (key_is(s, i, key_end, name))
		{
			if (s[val] != '"' || found++ > 0)
				return false;
			decode_string(s, val, val_end, out);
		}
		i = skip_ws(s, len, val_end);
		if (s[i] == ',')
			i = skip_ws(s, len, i + 1);
	}
	return found == 1 && !out->oom;
}
