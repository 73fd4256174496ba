/*
 * jsoncheck.c: see jsoncheck.h. Strict RFC 8259 grammar, except that bytes >= 0x80 in a
 * string are taken as they are (the shim forwards them; the extension judges the UTF-8).
 */
#include "jsoncheck.h"
#include "hexv.h"

#include <stdlib.h>
#include <string.h>

typedef struct Reader
{
	const char *s;
	size_t len;
	size_t pos;
	int depth;
} Reader;

static void
ws(Reader *r)
{
	while (r->pos < r->len && (r->s[r->pos] == ' ' || r->s[r->pos] == '\t' ||
							   r->s[r->pos] == '\n' || r->s[r->pos] == '\r'))
		r->pos++;
}

/* A string at r->pos; decoded into out when out is not NULL. */
static bool
string(Reader *r, JcString *out)
{
	char *buf = NULL;
	size_t n = 0;

	if (r->pos >= r->len || r->s[r->pos] != '"')
		return false;
	r->pos++;
	if (out)
	{
		buf = malloc(r->len - r->pos + 1);
		if (buf == NULL)
			return false;
	}
	while (r->pos < r->len)
	{
		unsigned char c = (unsigned char) r->s[r->pos++];

		if (c == '"')
		{
			if (out)
			{
				buf[n] = '\0';
				out->data = buf;
				out->len = n;
			}
			return true;
		}
		if (c < 0x20)
			break; /* a raw control character */
		if (c == '\\')
		{
			char e;

			if (r->pos >= r->len)
				break;
			e = r->s[r->pos++];
			if (e == 'u')
			{
				int v = 0;

				if (r->pos + 4 > r->len)
					break;
				for (int i = 0; i < 4; i++)
				{
					int h = fuzz_hexv(r->s[r->pos + i]);

					if (h < 0)
						goto bad;
					v = v * 16 + h;
				}
				r->pos += 4;
				if (buf)
				{
					if (v < 0x80)
						buf[n++] = (char) v;
					else
						buf[n++] = '?'; /* the shim never writes these */
				}
				continue;
			}
			switch (e)
			{
				case '"':
				case '\\':
				case '/':
					c = (unsigned char) e;
					break;
				case 'b':
					c = '\b';
					break;
				case 'f':
					c = '\f';
					break;
				case 'n':
					c = '\n';
					break;
				case 'r':
					c = '\r';
					break;
				case 't':
					c = '\t';
					break;
				default:
					goto bad;
			}
		}
		if (buf)
			buf[n++] = (char) c;
	}
bad:
	free(buf);
	return false;
}

static bool value(Reader *r);

static bool
number(Reader *r)
{
	size_t start = r->pos;

	if (r->pos < r->len && r->s[r->pos] == '-')
		r->pos++;
	if (r->pos >= r->len)
		return false;
	if (r->s[r->pos] == '0')
		r->pos++;
	else if (r->s[r->pos] >= '1' && r->s[r->pos] <= '9')
		while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9')
			r->pos++;
	else
		return false;
	if (r->pos < r->len && r->s[r->pos] == '.')
	{
		size_t d = ++r->pos;

		while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9')
			r->pos++;
		if (r->pos == d)
			return false;
	}
	if (r->pos < r->len && (r->s[r->pos] == 'e' || r->s[r->pos] == 'E'))
	{
		size_t d;

		r->pos++;
		if (r->pos < r->len && (r->s[r->pos] == '+' || r->s[r->pos] == '-'))
			r->pos++;
		d = r->pos;
		while (r->pos < r->len && r->s[r->pos] >= '0' && r->s[r->pos] <= '9')
			r->pos++;
		if (r->pos == d)
			return false;
	}
	return r->pos > start;
}

static bool
literal(Reader *r, const char *word)
{
	size_t n = strlen(word);

	if (r->len - r->pos < n || memcmp(r->s + r->pos, word, n) != 0)
		return false;
	r->pos += n;
	return true;
}

static bool
container(Reader *r, char open, char close)
{
	bool first = true;

	if (++r->depth > 1000)
		return false;
	r->pos++; /* open */
	ws(r);
	if (r->pos < r->len && r->s[r->pos] == close)
	{
		r->pos++;
		r->depth--;
		return true;
	}
	for (;;)
	{
		if (!first)
		{
			ws(r);
			if (r->pos >= r->len)
				return false;
			if (r->s[r->pos] == close)
			{
				r->pos++;
				r->depth--;
				return true;
			}
			if (r->s[r->pos] != ',')
				return false;
			r->pos++;
		}
		first = false;
		ws(r);
		if (open == '{')
		{
			if (!string(r, NULL))
				return false;
			ws(r);
			if (r->pos >= r->len || r->s[r->pos] != ':')
				return false;
			r->pos++;
			ws(r);
		}
		if (!value(r))
			return false;
	}
}

static bool
value(Reader *r)
{
	if (r->pos >= r->len)
		return false;
	switch (r->s[r->pos])
	{
		case '{':
			return container(r, '{', '}');
		case '[':
			return container(r, '[', ']');
		case '"':
			return string(r, NULL);
		case 't':
			return literal(r, "true");
		case 'f':
			return literal(r, "false");
		case 'n':
			return literal(r, "null");
		default:
			return number(r);
	}
}

bool
jc_valid(const char *text, size_t len)
{
	Reader r = {text, len, 0, 0};

	ws(&r);
	if (!value(&r))
		return false;
	ws(&r);
	return r.pos == len;
}

static bool
push_value(JcEntry *e, JcString v)
{
	JcString *grown = realloc(e->values, (e->nvalues + 1) * sizeof(JcString));

	if (grown == NULL)
		return false;
	e->values = grown;
	e->values[e->nvalues++] = v;
	return true;
}

bool
jc_read_form_object(const char *text, size_t len, JcObject *out, const char **why)
{
	Reader r = {text, len, 0, 0};
	bool first = true;

	out->entries = NULL;
	out->count = 0;
	*why = "not an object";
	if (r.pos >= len || text[r.pos] != '{')
		return false;
	r.pos++;
	for (;;)
	{
		JcEntry e;
		JcEntry *grown;

		if (r.pos >= len)
		{
			*why = "unterminated object";
			goto bad;
		}
		if (text[r.pos] == '}')
		{
			r.pos++;
			break;
		}
		if (!first)
		{
			if (text[r.pos] != ',')
			{
				*why = "no comma between members";
				goto bad;
			}
			r.pos++;
		}
		first = false;
		memset(&e, 0, sizeof(e));
		if (!string(&r, &e.key))
		{
			*why = "bad key string";
			goto bad;
		}
		grown = realloc(out->entries, (out->count + 1) * sizeof(JcEntry));
		if (grown == NULL)
		{
			free(e.key.data);
			goto bad;
		}
		out->entries = grown;
		out->entries[out->count++] = e;
		if (r.pos >= len || text[r.pos] != ':')
		{
			*why = "no colon after a key";
			goto bad;
		}
		r.pos++;
		if (r.pos < len && text[r.pos] == '[')
		{
			bool vfirst = true;

			out->entries[out->count - 1].is_array = true;
			r.pos++;
			for (;;)
			{
				JcString v;

				if (r.pos < len && text[r.pos] == ']')
				{
					r.pos++;
					break;
				}
				if (!vfirst)
				{
					if (r.pos >= len || text[r.pos] != ',')
					{
						*why = "no comma in an array";
						goto bad;
					}
					r.pos++;
				}
				vfirst = false;
				if (!string(&r, &v))
				{
					*why = "bad string in an array";
					goto bad;
				}
				if (!push_value(&out->entries[out->count - 1], v))
				{
					free(v.data);
					goto bad;
				}
			}
		}
		else
		{
			JcString v;

			if (!string(&r, &v))
			{
				*why = "bad value string";
				goto bad;
			}
			if (!push_value(&out->entries[out->count - 1], v))
			{
				free(v.data);
				goto bad;
			}
		}
	}
	if (r.pos != len)
	{
		*why = "bytes after the object";
		goto bad;
	}
	return true;

bad:
	jc_free(out);
	return false;
}

void
jc_free(JcObject *obj)
{
	for (size_t i = 0; i < obj->count; i++)
	{
		free(obj->entries[i].key.data);
		for (size_t j = 0; j < obj->entries[i].nvalues; j++)
			free(obj->entries[i].values[j].data);
		free(obj->entries[i].values);
	}
	free(obj->entries);
	obj->entries = NULL;
	obj->count = 0;
}
