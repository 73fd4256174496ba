/*
 * fuzz_payload.c: li_read_payload and li_parse_phone (extension/payload.c) with its
 * validators, aliases, secrets, extra and derived values, on a fake jsonb document (pgfake.c).
 *
 * Input, one pair a line: a type letter, the key, a TAB, the value.
 *   s string   n number (its numeric_out text)   b bool ("true" or not)   z null
 *   o object   a array   (any other first byte: a string, and the byte is part of the key)
 * In keys and values \n \r \t \\ and \xHH are escapes. Like jsonb, the fake holds no NUL
 * and only valid UTF-8 (other bytes become '?'); duplicate keys: the last wins. An input
 * that starts with '[' is an array, not an object.
 *
 * Checked besides the sanitizers: nothing the client sent is silently dropped (each key is
 * a secret, a stored value, a field error, an absent value, or in extra); no secret key
 * reaches extra or the logged payload; a stored value is the trimmed text, present, within
 * its limit and of its kind; errors are sorted; full_name, phone and phone_e164 follow the
 * contract's rules; a missing identity is an error on "user".
 */
#include "leadintake.h"
#include "pgfake.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#undef fprintf
#undef snprintf
#undef vsnprintf

#include "fuzzfail.h"
#include "hexv.h"

#define FAIL(...) fuzz_fail("fuzz_payload", __VA_ARGS__)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	fuzz_fail_init();
	li_default_phone_code = "44";
	return 0;
}

/* ---------------------------------------------------------------- input */

/* Unescapes s[0..len) into out (as long), returns the length. */
static int
unescape(const char *s, int len, char *out)
{
	int n = 0;

	for (int i = 0; i < len; i++)
	{
		if (s[i] == '\\' && i + 1 < len)
		{
			char c = s[i + 1];

			if (c == 'n')
				out[n++] = '\n', i++;
			else if (c == 'r')
				out[n++] = '\r', i++;
			else if (c == 't')
				out[n++] = '\t', i++;
			else if (c == '\\')
				out[n++] = '\\', i++;
			else if (c == 'x' && i + 3 < len && fuzz_hexv(s[i + 2]) >= 0 &&
					 fuzz_hexv(s[i + 3]) >= 0)
			{
				out[n++] = (char) (fuzz_hexv(s[i + 2]) * 16 + fuzz_hexv(s[i + 3]));
				i += 3;
			}
			else
				out[n++] = s[i];
		}
		else
			out[n++] = s[i];
	}
	return n;
}

/* The length of a legal UTF-8 character at s (PostgreSQL's pg_utf8_islegal), else 0. */
static int
utf8_char(const unsigned char *s, int left)
{
	int n;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n > left)
		return 0;
	for (int i = 1; i < n; i++)
	{
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10ffff ||
		(cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/* What jsonb can hold: no NUL, legal UTF-8 (other bytes become '?'). In place. */
static void
make_text(char *s, int len)
{
	for (int i = 0; i < len;)
	{
		int n = s[i] ? utf8_char((unsigned char *) s + i, len - i) : 0;

		if (n == 0)
			s[i++] = '?';
		else
			i += n;
	}
}

/* numeric_out's text: [-]digits[.digits], no leading zeros, no "-0"; else "0". */
static int
make_number(char *s, int len)
{
	int i = 0, start, dot = -1;
	bool zero = true;

	if (i < len && s[i] == '-')
		i++;
	start = i;
	for (; i < len; i++)
	{
		if (s[i] == '.' && dot < 0 && i > start && i + 1 < len)
			dot = i;
		else if (s[i] < '0' || s[i] > '9')
			break;
		else if (s[i] != '0')
			zero = false;
	}
	if (i != len || i == start)
	{
		s[0] = '0';
		return 1;
	}
	/* leading zeros of the integer part */
	while (start + 1 < len && s[start] == '0' && s[start + 1] != '.')
	{
		memmove(s + start, s + start + 1, len - start - 1);
		len--;
	}
	if (zero && s[0] == '-')
	{
		memmove(s, s + 1, len - 1);
		len--;
	}
	return len;
}

/* ---------------------------------------------------------------- reference rules */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

static bool
secret_key(const char *k, int len)
{
	static const char *const secrets[] = {"api_key", "dialer_api_key", "pass", "orig_pass",
										  "phone_pass"};

	for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		if ((int) strlen(secrets[i]) == len && strncasecmp(secrets[i], k, len) == 0)
			return true;
	return false;
}

/* The contract's absent values, on trimmed text. */
static bool
absent(const char *s, int len)
{
	if (len == 0)
		return true;
	if (len == 10 && memcmp(s, "0000-00-00", 10) == 0)
		return true;
	if (len == 19 && memcmp(s, "0000-00-00 00:00:00", 19) == 0)
		return true;
	if (len >= 11 && memcmp(s, "--A--", 5) == 0 && memcmp(s + len - 5, "--B--", 5) == 0)
	{
		for (int i = 5; i < len - 5; i++)
			if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
				  (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
				return false;
		return true;
	}
	return false;
}

static void
trimmed(const char *s, int len, const char **out, int *outlen)
{
	while (len > 0 && is_space(*s))
		s++, len--;
	while (len > 0 && is_space(s[len - 1]))
		len--;
	*out = s;
	*outlen = len;
}

static int
utf8_length(const char *s)
{
	int n = 0;

	for (; *s; s++)
		if (((unsigned char) *s & 0xc0) != 0x80)
			n++;
	return n;
}

static bool
has_error(Payload *p, const char *key, int keylen)
{
	ListCell *lc;

	foreach (lc, p->errors)
	{
		FieldError *e = lfirst(lc);

		if ((int) strlen(e->key) == keylen && memcmp(e->key, key, keylen) == 0)
			return true;
	}
	return false;
}

static bool
in_extra(Payload *p, const char *key, int keylen)
{
	int n = pgfake_built_count(p->extra);

	for (int i = 0; i < n; i++)
	{
		const char *k;
		int kl;

		pgfake_built_key(p->extra, i, &k, &kl);
		if (kl == keylen && memcmp(k, key, kl) == 0)
			return true;
	}
	return false;
}

/* The value as the core reads it: trimmed text, the number's text, true/false; NULL absent. */
static bool
value_text(PgfakeType type, const char *v, int vlen, const char **out, int *outlen)
{
	switch (type)
	{
		case PGFAKE_STRING:
			trimmed(v, vlen, out, outlen);
			return !absent(*out, *outlen);
		case PGFAKE_NUMBER:
			*out = v;
			*outlen = vlen;
			return !absent(v, vlen);
		case PGFAKE_BOOL:
			*out = (vlen == 4 && memcmp(v, "true", 4) == 0) ? "true" : "false";
			*outlen = strlen(*out);
			return true;
		default:
			return false;
	}
}

/* A stored value: trimmed, present, within its limit and of its kind. */
static void
check_value(Payload *p, int f)
{
	const DialerField *d = &li_fields[f];
	const char *v = p->values[f];
	int len = strlen(v);

	if (len == 0 || is_space(v[0]) || is_space(v[len - 1]))
		FAIL("%s stored untrimmed or empty: \"%s\"", d->key, v);
	if (absent(v, len))
		FAIL("%s stored an absent value: \"%s\"", d->key, v);
	if ((d->kind == FK_TEXT || d->kind == FK_IDENTITY || d->kind == FK_PHONE ||
		 d->kind == FK_EMAIL || d->kind == FK_PHONE_CODE) &&
		utf8_length(v) > d->max_len)
		FAIL("%s stored %d characters, over its limit %d", d->key, utf8_length(v), d->max_len);
	switch (d->kind)
	{
		case FK_TEXT:
		case FK_IDENTITY:
			break;
		case FK_PHONE:
		{
			bool digit = false;

			for (int i = 0; i < len; i++)
				if (v[i] >= '0' && v[i] <= '9')
					digit = true;
				else if (!(v[i] == '+' && i == 0) && !strchr(" -.()/", v[i]))
					FAIL("%s stored a phone with '%c': \"%s\"", d->key, v[i], v);
			if (!digit)
				FAIL("%s stored a phone without a digit", d->key);
			break;
		}
		case FK_PHONE_CODE:
		{
			const char *s = v[0] == '+' ? v + 1 : v;

			if (strlen(s) < 1 || strlen(s) > 4 || strspn(s, "0123456789") != strlen(s))
				FAIL("%s stored \"%s\"", d->key, v);
			break;
		}
		case FK_EMAIL:
		{
			const char *at = strchr(v, '@');

			if (at == NULL || at == v || strchr(at + 1, '@') || strchr(at + 1, '.') == NULL)
				FAIL("%s stored an implausible address \"%s\"", d->key, v);
			break;
		}
		case FK_DATE:
			if (len != 10 || v[4] != '-' || v[7] != '-')
				FAIL("%s stored \"%s\"", d->key, v);
			break;
		case FK_DATETIME:
			if (len != 19 || v[10] != ' ' || v[13] != ':' || v[16] != ':')
				FAIL("%s stored \"%s\"", d->key, v);
			break;
		case FK_INT:
		{
			char *end;

			errno = 0;
			(void) strtoll(v, &end, 10);
			if (errno != 0 || *end != '\0')
				FAIL("%s stored a non-integer \"%s\"", d->key, v);
			break;
		}
		case FK_IP:
		{
			unsigned char buf[16];

			if (inet_pton(AF_INET, v, buf) != 1 && inet_pton(AF_INET6, v, buf) != 1)
				FAIL("%s stored a non-address \"%s\"", d->key, v);
			break;
		}
		case FK_OFFSET:
		{
			char *end;
			double x = strtod(v, &end);

			if (*end != '\0' || x < -12.0 || x > 14.0)
				FAIL("%s stored \"%s\"", d->key, v);
			break;
		}
	}
}

/* ---------------------------------------------------------------- the harness */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *in = (const char *) data;
	size_t pos = 0;
	bool as_array = size > 0 && in[0] == '[';
	Jsonb *jb;
	Payload p;
	int n;
	bool changed;
	char *kbuf = malloc(size + 1);
	char *vbuf = malloc(size + 1);

	pgfake_doc_begin();
	while (pos < size)
	{
		const char *line = in + pos;
		const char *nl = memchr(line, '\n', size - pos);
		int linelen = nl ? (int) (nl - line) : (int) (size - pos);
		const char *tab;
		PgfakeType type = PGFAKE_STRING;
		int skip = 1;
		int klen, vlen;

		pos += linelen + 1;
		if (linelen == 0)
			continue;
		switch (line[0])
		{
			case 's':
				type = PGFAKE_STRING;
				break;
			case 'n':
				type = PGFAKE_NUMBER;
				break;
			case 'b':
				type = PGFAKE_BOOL;
				break;
			case 'z':
				type = PGFAKE_NULL;
				break;
			case 'o':
				type = PGFAKE_OBJECT;
				break;
			case 'a':
				type = PGFAKE_ARRAY;
				break;
			default:
				skip = 0;
		}
		tab = memchr(line + skip, '\t', linelen - skip);
		klen = unescape(line + skip, (tab ? (int) (tab - line) : linelen) - skip, kbuf);
		make_text(kbuf, klen);
		vlen = tab ? unescape(tab + 1, linelen - (int) (tab + 1 - line), vbuf) : 0;
		make_text(vbuf, vlen);
		if (type == PGFAKE_NUMBER)
			vlen = make_number(vbuf, vlen);
		pgfake_doc_add(kbuf, klen, type, vbuf, vlen);
	}
	free(kbuf);
	free(vbuf);
	jb = pgfake_doc_finish(as_array);

	li_read_payload(jb, &p);

	if (as_array)
	{
		if (!p.not_object)
			FAIL("an array was read as an object");
		goto done;
	}
	if (p.not_object)
		FAIL("an object was read as not an object");

	/* the redaction alone */
	{
		Jsonb *r = li_redact(jb, &changed);
		bool any = false;

		for (int i = 0; i < pgfake_doc_count(); i++)
		{
			const char *k, *v;
			int kl, vl;
			PgfakeType t;

			pgfake_doc_pair(i, &k, &kl, &t, &v, &vl);
			any |= secret_key(k, kl);
		}
		if (changed != any)
			FAIL("li_redact: changed=%d but a secret key %s there", changed, any ? "is" : "is not");
		if (!changed && r != jb)
			FAIL("li_redact: a new object without a change");
	}

	/* every stored value, then nothing dropped */
	for (int f = 0; f < LI_NFIELDS; f++)
		if (p.values[f])
			check_value(&p, f);

	n = pgfake_doc_count();
	for (int i = 0; i < n; i++)
	{
		const char *k, *v, *t;
		int kl, vl, tl;
		PgfakeType type;
		bool is_alias;
		int f;

		pgfake_doc_pair(i, &k, &kl, &type, &v, &vl);
		if (secret_key(k, kl))
		{
			if (in_extra(&p, k, kl))
				FAIL("secret key %.*s kept in extra", kl, k);
			continue;
		}
		f = li_field_lookup(k, kl, &is_alias);
		if (f < 0)
		{
			if (!in_extra(&p, k, kl))
				FAIL("unknown key \"%.*s\" silently dropped (not in extra)", kl, k);
			continue;
		}
		if (in_extra(&p, k, kl) && !is_alias)
			FAIL("known key %.*s went to extra", kl, k);
		if (is_alias && in_extra(&p, k, kl))
		{
			/* only when the canonical key was sent with a value (or an error) */
			const char *ck = li_fields[f].key;

			if (p.values[f] == NULL && !has_error(&p, ck, strlen(ck)))
				FAIL("alias %.*s went to extra, but %s has no value", kl, k, ck);
			continue;
		}
		if (type == PGFAKE_OBJECT || type == PGFAKE_ARRAY)
		{
			if (!has_error(&p, k, kl))
				FAIL("an object or array under %.*s is not an error", kl, k);
			continue;
		}
		if (type == PGFAKE_NULL || !value_text(type, v, vl, &t, &tl))
			continue; /* absent: nothing to keep */
		if (has_error(&p, k, kl))
			continue;
		if (p.values[f] == NULL)
			FAIL("%.*s = \"%.*s\" silently dropped (no value, no error)", kl, k, vl, v);
		if ((int) strlen(p.values[f]) != tl || memcmp(p.values[f], t, tl) != 0)
			FAIL("%.*s stored \"%s\", sent \"%.*s\"", kl, k, p.values[f], tl, t);
	}

	/* errors sorted by key */
	{
		ListCell *lc;
		const char *prev = NULL;

		foreach (lc, p.errors)
		{
			FieldError *e = lfirst(lc);

			if (prev && strcmp(prev, e->key) > 0)
				FAIL("errors not sorted: %s before %s", prev, e->key);
			prev = e->key;
		}
	}

	/* identity */
	if (p.values[F_DIALER_USER_ID] == NULL && p.values[F_USER] == NULL &&
		!has_error(&p, "user", 4) && !has_error(&p, "dialer_user_id", 14) &&
		!has_error(&p, "agent_username", 14))
		FAIL("missing identity is not an error");

	/* derived values */
	if (p.values[F_FULL_NAME])
	{
		if (p.full_name != p.values[F_FULL_NAME])
			FAIL("full_name sent but not used");
	}
	else
	{
		char buf[400] = "";
		int parts[3] = {F_FIRST_NAME, F_MIDDLE_INITIAL, F_LAST_NAME};

		for (int i = 0; i < 3; i++)
			if (p.values[parts[i]])
			{
				if (buf[0])
					strcat(buf, " ");
				strcat(buf, p.values[parts[i]]);
			}
		if (buf[0] == '\0' ? p.full_name != NULL
						   : (p.full_name == NULL || strcmp(buf, p.full_name)))
			FAIL("full_name \"%s\", expected \"%s\"", p.full_name ? p.full_name : "(null)", buf);
	}
	if (p.phone != (p.values[F_PHONE] ? p.values[F_PHONE] : p.values[F_PHONE_NUMBER]))
		FAIL("phone is neither phone nor phone_number");
	/* the phone is parsed on first use (store.c), not by li_read_payload */
	if (p.phone_parsed || p.phone_e164 != NULL)
		FAIL("li_read_payload parsed the phone");
	li_parse_phone(&p);
	/* a phone of only a prefix ("0", "00") has no number to match on: NULL then */
	if (p.phone == NULL && p.phone_e164 != NULL)
		FAIL("phone_e164 set without a phone");
	if (p.phone != NULL && p.phone_e164 == NULL && li_phone_e164(p.phone, p.values[F_PHONE_CODE]))
		FAIL("phone_e164 missing for a phone that has one");
	if (p.phone_valid && p.phone_e164 == NULL)
		FAIL("phone_valid without a phone_e164");
	if (p.phone_e164 && (p.phone_e164[0] != '+' || p.phone_e164[1] == '\0' ||
						 strspn(p.phone_e164 + 1, "0123456789") != strlen(p.phone_e164 + 1)))
		FAIL("phone_e164 \"%s\" is not + and digits", p.phone_e164);

done:
	pgfake_reset();
	return 0;
}
