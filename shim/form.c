/*
 * form.c: application/x-www-form-urlencoded bodies and query strings (`+` is a space, %XX a
 * byte, a key or value that is not UTF-8 read as Windows-1252) decoded into parameters, and
 * those written as one JSON object of strings.
 */
#include "shim.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

void
params_init(Params *p)
{
	p->items = NULL;
	p->count = 0;
	p->cap = 0;
}

void
params_free(Params *p)
{
	size_t i;

	for (i = 0; i < p->count; i++)
	{
		free(p->items[i].key);
		free(p->items[i].value);
	}
	free(p->items);
	params_init(p);
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Decodes len bytes of s into a new NUL-terminated string: `+` becomes a space, %XX its
 * byte (%00 included: the JSON then carries \u0000); a `%` not followed by two hex digits
 * stays as it is.
 */
static char *
decode(const char *s, size_t len, size_t *outlen)
{
	char *out = malloc(len + 1);
	size_t i;
	size_t n = 0;

	if (out == NULL)
		return NULL;
	for (i = 0; i < len; i++)
	{
		if (s[i] == '+')
			out[n++] = ' ';
		else if (s[i] == '%' && i + 2 < len && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0)
		{
			out[n++] = (char) (hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		}
		else
			out[n++] = s[i];
	}
	out[n] = '\0';
	*outlen = n;
	return out;
}

/*
 * Windows-1252's 0x80-0x9F (0xA0-0xFF are Latin-1, the code point itself). The five bytes
 * cp1252 leaves undefined keep their Latin-1 code points (C1 controls), as MySQL's latin1,
 * which VICIdial's database uses, and the WHATWG encoding standard do: nothing is lost.
 */
static const uint16_t cp1252_80_9f[32] = {
	0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160,
	0x2039, 0x0152, 0x008D, 0x017D, 0x008F, 0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
	0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
};

/* Length of the well-formed UTF-8 sequence at s (RFC 3629: no overlong, no surrogate), or 0. */
static size_t
utf8_seq(const unsigned char *s, size_t len)
{
	unsigned char c = s[0];
	size_t n;
	unsigned char lo = 0x80;
	unsigned char hi = 0xBF;

	if (c < 0x80)
		return 1;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF)
	{
		n = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	}
	else if (c >= 0xF0 && c <= 0xF4)
	{
		n = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	}
	else
		return 0;
	if (len < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

static bool
utf8_valid(const char *s, size_t len)
{
	size_t i = 0;

	while (i < len)
	{
		size_t n = utf8_seq((const unsigned char *) s + i, len - i);

		if (n == 0)
			return false;
		i += n;
	}
	return true;
}

/* Appends code point cp (below U+10000) as UTF-8; returns the bytes written. */
static size_t
put_utf8(char *out, unsigned cp)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | cp >> 6);
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	out[0] = (char) (0xE0 | cp >> 12);
	out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[2] = (char) (0x80 | (cp & 0x3F));
	return 3;
}

/*
 * A decoded key or value that is not valid UTF-8 is Windows-1252 (VICIdial on a latin1
 * database sends Jos%E9): replaced by its UTF-8 text. Valid UTF-8 is left as it is; each
 * key and value is decided alone. False: out of memory (s unchanged).
 */
static bool
to_utf8(char **s, size_t *len)
{
	const unsigned char *in = (const unsigned char *) *s;
	char *out;
	size_t n = 0;

	if (utf8_valid(*s, *len))
		return true;
	out = malloc(*len * 3 + 1); /* at most 3 bytes a byte (U+20AC) */
	if (out == NULL)
		return false;
	for (size_t i = 0; i < *len; i++)
		n += put_utf8(out + n, in[i] >= 0x80 && in[i] <= 0x9F ? cp1252_80_9f[in[i] - 0x80] : in[i]);
	out[n] = '\0';
	free(*s);
	*s = out;
	*len = n;
	return true;
}

bool
form_parse(Params *p, const char *text, size_t len)
{
	size_t pos = 0;

	while (pos < len)
	{
		const char *seg = text + pos;
		const char *amp = memchr(seg, '&', len - pos);
		size_t seglen = amp ? (size_t) (amp - seg) : len - pos;
		const char *eq;
		size_t klen;
		Param param;

		pos += seglen + 1;
		if (seglen == 0)
			continue; /* "a=1&&b=2": an empty piece carries nothing */
		eq = memchr(seg, '=', seglen);
		klen = eq ? (size_t) (eq - seg) : seglen;
		param.key = decode(seg, klen, &param.key_len);
		if (eq)
			param.value = decode(eq + 1, seglen - klen - 1, &param.value_len);
		else
			param.value = decode("", 0, &param.value_len);
		if (param.key == NULL || param.value == NULL || !to_utf8(&param.key, &param.key_len) ||
			!to_utf8(&param.value, &param.value_len))
		{
			free(param.key);
			free(param.value);
			return false;
		}
		if (p->count == p->cap)
		{
			size_t cap = p->cap ? p->cap * 2 : 16;
			Param *items = realloc(p->items, cap * sizeof(Param));

			if (items == NULL)
			{
				free(param.key);
				free(param.value);
				return false;
			}
			p->items = items;
			p->cap = cap;
		}
		p->items[p->count++] = param;
	}
	return true;
}

bool
params_concat(Params *dst, Params *src)
{
	size_t need = dst->count + src->count;

	if (need > dst->cap)
	{
		Param *items = realloc(dst->items, need * sizeof(Param));

		if (items == NULL)
			return false;
		dst->items = items;
		dst->cap = need;
	}
	if (src->count > 0)
		memcpy(dst->items + dst->count, src->items, src->count * sizeof(Param));
	dst->count = need;
	free(src->items);
	params_init(src);
	return true;
}

/*
 * The dialer's secrets (contract section 3), the shim's one list of them: left out of every
 * payload the shim decodes, so that they never reach the statement's parameter (and so the
 * server's log). The same list as the extension's li_secrets (extension/fields.c), which
 * drops them from JSON bodies: the shim forwards those unparsed. test/e2e/twin_lists.sh
 * checks that the two are equal.
 */
static const char *const secret_keys[] = {
	"api_key", "dialer_api_key", "pass", "orig_pass", "phone_pass",
};

bool
key_is_secret(const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(secret_keys) / sizeof(secret_keys[0]); i++)
		if (strlen(secret_keys[i]) == len && strncasecmp(key, secret_keys[i], len) == 0)
			return true;
	return false;
}

/*
 * redirect is the shim's instruction (contract section 7), not lead data: it never goes
 * to the database. The key as the contract spells it; `Redirect` is data like any key.
 */
bool
param_is_instruction(const Param *param)
{
	return param_key_is(param, "redirect", false);
}

bool
param_is_secret(const Param *param)
{
	return key_is_secret(param->key, param->key_len);
}

bool
param_key_is(const Param *param, const char *name, bool ignore_case)
{
	size_t n = strlen(name);

	if (param->key_len != n)
		return false;
	return ignore_case ? strncasecmp(param->key, name, n) == 0 : memcmp(param->key, name, n) == 0;
}

size_t
params_lookup(const Params *p, const char *name, const Param **first)
{
	size_t i;
	size_t n = 0;

	if (first)
		*first = NULL;
	for (i = 0; i < p->count; i++)
	{
		if (param_key_is(&p->items[i], name, false))
		{
			if (n == 0 && first)
				*first = &p->items[i];
			n++;
		}
	}
	return n;
}

/* Sorting helpers: parameters grouped by key, in the order the keys first appear. */
typedef struct Slot
{
	const Param *param;
	size_t pos;   /* position in the request */
	size_t group; /* position of the key's first appearance */
} Slot;

static int
cmp_key_pos(const void *a, const void *b)
{
	const Slot *x = a;
	const Slot *y = b;
	size_t n = x->param->key_len < y->param->key_len ? x->param->key_len : y->param->key_len;
	int c = memcmp(x->param->key, y->param->key, n);

	if (c != 0)
		return c;
	if (x->param->key_len != y->param->key_len)
		return x->param->key_len < y->param->key_len ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

static int
cmp_group_pos(const void *a, const void *b)
{
	const Slot *x = a;
	const Slot *y = b;

	if (x->group != y->group)
		return x->group < y->group ? -1 : 1;
	return x->pos < y->pos ? -1 : (x->pos > y->pos);
}

static bool
same_key(const Param *a, const Param *b)
{
	return a->key_len == b->key_len && memcmp(a->key, b->key, a->key_len) == 0;
}

void
form_to_json(const Params *p, Buf *out)
{
	Slot *slots;
	size_t n = 0;
	size_t i;

	slots = malloc((p->count ? p->count : 1) * sizeof(Slot));
	if (slots == NULL)
	{
		out->oom = true;
		return;
	}
	for (i = 0; i < p->count; i++)
	{
		/* the shim's credential, its redirect and the dialer's secrets never go further */
		if (param_is_secret(&p->items[i]) || param_is_instruction(&p->items[i]))
			continue;
		slots[n].param = &p->items[i];
		slots[n].pos = i;
		n++;
	}
	/* O(n log n): a body of thousands of parameters costs no quadratic time */
	qsort(slots, n, sizeof(Slot), cmp_key_pos);
	for (i = 0; i < n; i++)
		slots[i].group = (i > 0 && same_key(slots[i - 1].param, slots[i].param))
							 ? slots[i - 1].group
							 : slots[i].pos;
	qsort(slots, n, sizeof(Slot), cmp_group_pos);

	buf_append(out, "{", 1);
	for (i = 0; i < n;)
	{
		size_t j = i + 1;

		while (j < n && slots[j].group == slots[i].group)
			j++;
		if (i > 0)
			buf_append(out, ",", 1);
		buf_json_string(out, slots[i].param->key, slots[i].param->key_len);
		buf_append(out, ":", 1);
		if (j - i == 1)
			buf_json_string(out, slots[i].param->value, slots[i].param->value_len);
		else
		{
			size_t k;

			buf_append(out, "[", 1);
			for (k = i; k < j; k++)
			{
				if (k > i)
					buf_append(out, ",", 1);
				buf_json_string(out, slots[k].param->value, slots[k].param->value_len);
			}
			buf_append(out, "]", 1);
		}
		i = j;
	}
	buf_append(out, "}", 1);
	free(slots);
}
