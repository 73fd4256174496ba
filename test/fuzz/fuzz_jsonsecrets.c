/*
 * fuzz_jsonsecrets.c: shim/jsonsecrets.c (json_drop_secrets: a JSON body without its
 * top-level secret members, for the durable spool of contract section 8).
 *
 * Input: a request body, as is. A reference parser below (RFC 8259, written from the RFC,
 * not from jsonsecrets.c) reads it. Checked besides the sanitizers:
 *  - json_drop_secrets accepts exactly the bodies the reference reads as one JSON object
 *    with at most 64 containers open at once (both refuse deeper): a spool file must hold a
 *    body the database reads as the same JSON, so accepting more is a failure too;
 *  - what it writes is "{", the input's top-level members that are not secrets, each byte
 *    for byte from its key to the end of its value, joined with ",", then "}";
 *  - that is one valid JSON object whose keys, decoded by the reference (every escape,
 *    surrogate pairs included), are the input's in order without the secrets; no key of it
 *    decodes to a secret name (contract section 3, any ASCII case, as the extension's
 *    pg_strncasecmp compares), whatever escapes spell it;
 *  - json_drop_secrets of its own output gives the same bytes.
 *
 * Not checked, on purpose: UTF-8 validity, \u0000 and lone surrogates. RFC 8259's grammar
 * allows them, jsonsecrets.c copies the kept bytes unchanged, and the database judges them
 * when the spooled request is served (as it would have judged the request itself).
 */
#include "../../shim/shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzfail.h"
#include "secrets.h"

#define FAIL(...) fuzz_fail("fuzz_jsonsecrets", __VA_ARGS__)

/* as jsonsecrets.c's MAX_DEPTH: containers open at once, the top-level one included */
#define REF_MAX_DEPTH 64

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* ---------------------------------------------------------------- the reference parser */

typedef struct RefMember
{
	char *key; /* decoded to UTF-8 */
	size_t klen;
	size_t start; /* the key's opening quote */
	size_t end;	  /* past the value */
} RefMember;

typedef struct RefDoc
{
	bool is_object;
	RefMember *members; /* the top-level object's, in order */
	size_t count;
} RefDoc;

typedef struct Cursor
{
	const char *s;
	size_t len;
	size_t pos;
} Cursor;

static bool ref_value(Cursor *c, int depth, RefDoc *doc);

static int
peek(const Cursor *c)
{
	return c->pos < c->len ? (unsigned char) c->s[c->pos] : -1;
}

static void
ref_ws(Cursor *c)
{
	while (peek(c) == ' ' || peek(c) == '\t' || peek(c) == '\n' || peek(c) == '\r')
		c->pos++;
}

static int
hexval(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* the 4 hex digits after "\u"; -1 if they are not */
static long
ref_hex4(Cursor *c)
{
	long v = 0;

	for (int k = 0; k < 4; k++)
	{
		int h = hexval(peek(c));

		if (h < 0)
			return -1;
		v = v * 16 + h;
		c->pos++;
	}
	return v;
}

static size_t
put_utf8(char *out, long cp)
{
	if (cp < 0x80)
	{
		out[0] = (char) cp;
		return 1;
	}
	if (cp < 0x800)
	{
		out[0] = (char) (0xC0 | (cp >> 6));
		out[1] = (char) (0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000)
	{
		out[0] = (char) (0xE0 | (cp >> 12));
		out[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		out[2] = (char) (0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char) (0xF0 | (cp >> 18));
	out[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
	out[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
	out[3] = (char) (0x80 | (cp & 0x3F));
	return 4;
}

/*
 * A string at the cursor ('"'); decoded into out (room for as many bytes as the string's raw
 * text: no escape decodes longer than it is written) unless out is NULL. A lone surrogate
 * decodes to U+FFFD: it is no secret's name either way.
 */
static bool
ref_string(Cursor *c, char *out, size_t *outlen)
{
	size_t n = 0;

	if (peek(c) != '"')
		return false;
	c->pos++;
	for (;;)
	{
		int ch = peek(c);
		char tmp[4];
		size_t tn;

		if (ch < 0 || ch < 0x20)
			return false;
		c->pos++;
		if (ch == '"')
			break;
		if (ch != '\\')
		{
			tmp[0] = (char) ch;
			tn = 1;
		}
		else
		{
			int e = peek(c);
			long cp;

			c->pos++;
			switch (e)
			{
				case '"':
				case '\\':
				case '/':
					cp = e;
					break;
				case 'b':
					cp = '\b';
					break;
				case 'f':
					cp = '\f';
					break;
				case 'n':
					cp = '\n';
					break;
				case 'r':
					cp = '\r';
					break;
				case 't':
					cp = '\t';
					break;
				case 'u':
					if ((cp = ref_hex4(c)) < 0)
						return false;
					if (cp >= 0xD800 && cp <= 0xDBFF && c->len - c->pos >= 6 &&
						c->s[c->pos] == '\\' && c->s[c->pos + 1] == 'u')
					{
						Cursor save = *c;
						long lo;

						c->pos += 2;
						lo = ref_hex4(c);
						if (lo >= 0xDC00 && lo <= 0xDFFF)
							cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
						else
							*c = save; /* not a pair: the next escape is read on its own */
					}
					if (cp >= 0xD800 && cp <= 0xDFFF)
						cp = 0xFFFD;
					break;
				default:
					return false;
			}
			tn = put_utf8(tmp, cp);
		}
		if (out)
			memcpy(out + n, tmp, tn);
		n += tn;
	}
	if (outlen)
		*outlen = n;
	return true;
}

static bool
ref_digits(Cursor *c)
{
	size_t from = c->pos;

	while (peek(c) >= '0' && peek(c) <= '9')
		c->pos++;
	return c->pos > from;
}

/* number = [ minus ] int [ frac ] [ exp ]; int = zero / ( digit1-9 *DIGIT ) */
static bool
ref_number(Cursor *c)
{
	if (peek(c) == '-')
		c->pos++;
	if (peek(c) == '0')
		c->pos++;
	else if (!(peek(c) >= '1' && peek(c) <= '9') || !ref_digits(c))
		return false;
	if (peek(c) == '.')
	{
		c->pos++;
		if (!ref_digits(c))
			return false;
	}
	if (peek(c) == 'e' || peek(c) == 'E')
	{
		c->pos++;
		if (peek(c) == '+' || peek(c) == '-')
			c->pos++;
		if (!ref_digits(c))
			return false;
	}
	return true;
}

static bool
ref_literal(Cursor *c, const char *word)
{
	size_t n = strlen(word);

	if (c->len - c->pos < n || memcmp(c->s + c->pos, word, n) != 0)
		return false;
	c->pos += n;
	return true;
}

/* an object's key, decoded into a new allocation */
static bool
ref_key(Cursor *c, char **key, size_t *klen)
{
	Cursor scan = *c;

	if (!ref_string(&scan, NULL, NULL))
		return false;
	*key = malloc(scan.pos - c->pos + 1);
	if (*key == NULL || !ref_string(c, *key, klen))
		FAIL("the reference failed to decode a key it had read");
	return true;
}

/* An object or array at the cursor; doc (the top level only) gets the object's members. */
static bool
ref_container(Cursor *c, int depth, RefDoc *doc)
{
	bool object = peek(c) == '{';
	int close = object ? '}' : ']';

	if (depth + 1 > REF_MAX_DEPTH)
		return false;
	c->pos++;
	ref_ws(c);
	if (peek(c) == close)
	{
		c->pos++;
		return true;
	}
	for (;;)
	{
		size_t start = c->pos;
		char *key = NULL;
		size_t klen = 0;

		if (object)
		{
			if (doc ? !ref_key(c, &key, &klen) : !ref_string(c, NULL, NULL))
				return false;
			if (doc)
			{
				doc->members[doc->count].key = key;
				doc->members[doc->count].klen = klen;
				doc->members[doc->count].start = start;
				doc->count++;
			}
			ref_ws(c);
			if (peek(c) != ':')
				return false;
			c->pos++;
			ref_ws(c);
		}
		if (!ref_value(c, depth + 1, NULL))
			return false;
		if (object && doc)
			doc->members[doc->count - 1].end = c->pos;
		ref_ws(c);
		if (peek(c) == close)
		{
			c->pos++;
			return true;
		}
		if (peek(c) != ',')
			return false;
		c->pos++;
		ref_ws(c);
	}
}

/* A value at the cursor, inside depth open containers. */
static bool
ref_value(Cursor *c, int depth, RefDoc *doc)
{
	switch (peek(c))
	{
		case '{':
		case '[':
			return ref_container(c, depth, doc);
		case '"':
			return ref_string(c, NULL, NULL);
		case 't':
			return ref_literal(c, "true");
		case 'f':
			return ref_literal(c, "false");
		case 'n':
			return ref_literal(c, "null");
		default:
			return ref_number(c);
	}
}

/* True when s is one JSON text (ws value ws); doc gets its top-level object's members. */
static bool
ref_parse(const char *s, size_t len, RefDoc *doc)
{
	Cursor c = {s, len, 0};

	doc->count = 0;
	/* a member takes at least 5 bytes ("":0,), so this is room enough */
	doc->members = calloc(len / 2 + 1, sizeof(RefMember));
	ref_ws(&c);
	doc->is_object = peek(&c) == '{';
	if (!ref_value(&c, 0, doc))
		return false;
	ref_ws(&c);
	return c.pos == len;
}

static void
ref_free(RefDoc *doc)
{
	for (size_t i = 0; i < doc->count; i++)
		free(doc->members[i].key);
	free(doc->members);
}

static void
show(const char *what, const char *s, size_t len)
{
	char msg[600];
	size_t n = 0;

	for (size_t i = 0; i < len && n + 5 < sizeof(msg); i++)
	{
		unsigned char ch = (unsigned char) s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '\\')
			msg[n++] = (char) ch;
		else
			n += (size_t) snprintf(msg + n, sizeof(msg) - n, "\\x%02x", ch);
	}
	msg[n] = '\0';
	if (write(fuzz_fail_fd, what, strlen(what)) < 0 || write(fuzz_fail_fd, msg, n) < 0 ||
		write(fuzz_fail_fd, "\n", 1) < 0)
		(void) 0;
}

/* ---------------------------------------------------------------- the checks */

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_fail_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	const char *text = (const char *) data;
	RefDoc in;
	RefDoc again_doc;
	Buf out;
	Buf expect;
	Buf again;
	bool valid;
	bool ok;
	size_t k = 0;

	valid = ref_parse(text, size, &in) && in.is_object;
	buf_init(&out);
	ok = json_drop_secrets(text, size, &out);
	if (valid && !ok)
	{
		show("input: ", text, size);
		FAIL("json_drop_secrets refused a JSON object the reference reads (%zu members)",
			 in.count);
	}
	if (ok && !valid)
	{
		show("input: ", text, size);
		FAIL("json_drop_secrets accepted what is not one JSON object within %d levels",
			 REF_MAX_DEPTH);
	}
	if (!ok)
	{
		ref_free(&in);
		buf_free(&out);
		return 0;
	}
	if (out.oom)
		FAIL("json_drop_secrets: out of memory");

	/* the exact bytes: the kept members as they were, joined with "," */
	buf_init(&expect);
	buf_puts(&expect, "{");
	for (size_t i = 0; i < in.count; i++)
	{
		if (fuzz_is_secret(in.members[i].key, in.members[i].klen))
			continue;
		if (k++ > 0)
			buf_puts(&expect, ",");
		buf_append(&expect, text + in.members[i].start, in.members[i].end - in.members[i].start);
	}
	buf_puts(&expect, "}");
	if (out.len != expect.len || memcmp(out.data, expect.data, out.len) != 0)
	{
		show("input:    ", text, size);
		show("output:   ", out.data, out.len);
		show("expected: ", expect.data, expect.len);
		FAIL("the output is not the input's non-secret members byte for byte");
	}

	/* the output, read again by the reference: an object, the right keys, no secret */
	if (!ref_parse(out.data, out.len, &again_doc) || !again_doc.is_object)
		FAIL("the output is not one valid JSON object");
	k = 0;
	for (size_t i = 0; i < in.count; i++)
	{
		const RefMember *m = &in.members[i];

		if (fuzz_is_secret(m->key, m->klen))
			continue;
		if (k >= again_doc.count || again_doc.members[k].klen != m->klen ||
			memcmp(again_doc.members[k].key, m->key, m->klen) != 0)
			FAIL("output member %zu: not the input's member %zu", k, i);
		k++;
	}
	if (k != again_doc.count)
		FAIL("the output has %zu members, expected %zu", again_doc.count, k);
	for (size_t i = 0; i < again_doc.count; i++)
		if (fuzz_is_secret(again_doc.members[i].key, again_doc.members[i].klen))
			FAIL("a secret key (output member %zu) reached the spool", i);
	ref_free(&again_doc);

	/* idempotent */
	buf_init(&again);
	if (!json_drop_secrets(out.data, out.len, &again))
		FAIL("json_drop_secrets refused its own output");
	if (again.len != out.len || memcmp(again.data, out.data, out.len) != 0)
		FAIL("json_drop_secrets of its own output changed it");

	buf_free(&again);
	buf_free(&expect);
	buf_free(&out);
	ref_free(&in);
	return 0;
}
