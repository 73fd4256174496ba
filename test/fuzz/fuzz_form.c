/*
 * fuzz_form.c: shim/form.c (form and query-string decoding, the JSON payload it becomes)
 * and shim/buf.c (JSON string escaping).
 *
 * Input: a form body or query string, as is. Checked besides the sanitizers: each
 * parameter is decoded as a reference decoder says (`+` a space, %XX a byte, a bad % kept,
 * then a key or value that is not UTF-8 read as Windows-1252);
 * the JSON is valid, one member per distinct key in the order keys first appear, a repeated
 * key an array in request order, the values decoded back byte for byte; no secret key of
 * contract section 3 (any case) nor `redirect` appears in it, and param_is_secret agrees with the
 * contract's list; params_concat keeps every parameter.
 */
#include "../../shim/shim.h"
#include "jsoncheck.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzzfail.h"
#include "hexv.h"
#include "secrets.h"

#define FAIL(...) fuzz_fail("fuzz_form", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* The reference decoder, written from docs/shim.md rather than from form.c. */
static size_t
ref_decode(const char *s, size_t len, char *out)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++)
	{
		if (s[i] == '+')
			out[n++] = ' ';
		else if (s[i] == '%' && len - i >= 3 && fuzz_hexv(s[i + 1]) >= 0 &&
				 fuzz_hexv(s[i + 2]) >= 0)
		{
			out[n++] = (char) (fuzz_hexv(s[i + 1]) << 4 | fuzz_hexv(s[i + 2]));
			i += 2;
		}
		else
			out[n++] = s[i];
	}
	return n;
}

/* Windows-1252's 0x80-0x9F as UTF-8 text; the five undefined ones keep U+0080 + n. */
static const char *const ref_cp1252[32] = {
	"\u20ac",   "\xc2\x81", "\u201a", "\u0192", "\u201e", "\u2026",   "\u2020", "\u2021",
	"\u02c6",   "\u2030",   "\u0160", "\u2039", "\u0152", "\xc2\x8d", "\u017d", "\xc2\x8f",
	"\xc2\x90", "\u2018",   "\u2019", "\u201c", "\u201d", "\u2022",   "\u2013", "\u2014",
	"\u02dc",   "\u2122",   "\u0161", "\u203a", "\u0153", "\xc2\x9d", "\u017e", "\u0178",
};

/* Strict UTF-8, by code point: shortest form, no surrogate, at most U+10FFFF. */
static bool
ref_utf8(const unsigned char *s, size_t len)
{
	static const unsigned long min[5] = {0, 0, 0x80, 0x800, 0x10000};

	for (size_t i = 0; i < len;)
	{
		size_t n = s[i] < 0x80         ? 1
				   : (s[i] >> 5) == 6  ? 2
				   : (s[i] >> 4) == 14 ? 3
				   : (s[i] >> 3) == 30 ? 4
									   : 0;
		unsigned long cp = n == 1 ? s[i] : s[i] & (0x7F >> n);

		if (n == 0 || len - i < n)
			return false;
		for (size_t k = 1; k < n; k++)
		{
			if ((s[i + k] & 0xC0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
			return false;
		i += n;
	}
	return true;
}

/* The decoded bytes in out (room for 3 * len), converted from Windows-1252 unless UTF-8. */
static size_t
ref_text(char *out, size_t len)
{
	unsigned char *in;
	size_t n = 0;

	if (ref_utf8((const unsigned char *) out, len))
		return len;
	in = malloc(len + 1);
	memcpy(in, out, len);
	for (size_t i = 0; i < len; i++)
	{
		if (in[i] < 0x80)
			out[n++] = (char) in[i];
		else if (in[i] < 0xA0)
		{
			memcpy(out + n, ref_cp1252[in[i] - 0x80], strlen(ref_cp1252[in[i] - 0x80]));
			n += strlen(ref_cp1252[in[i] - 0x80]);
		}
		else
		{
			out[n++] = (char) (0xC0 | in[i] >> 6);
			out[n++] = (char) (0x80 | (in[i] & 0x3F));
		}
	}
	free(in);
	return n;
}

typedef struct Ref
{
	char *key;
	size_t klen;
	char *value;
	size_t vlen;
} Ref;

/* redirect, the shim's instruction (docs/shim.md): never in the payload. */
static bool
is_redirect(const Ref *r)
{
	return r->klen == 8 && memcmp(r->key, "redirect", 8) == 0;
}

static bool
is_api_key(const char *k, size_t len)
{
	return len == 7 && strncasecmp(k, "api_key", 7) == 0;
}

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
	Params p;
	Params q;
	Ref *refs = calloc(size + 1, sizeof(Ref));
	size_t nrefs = 0;
	size_t pos = 0;
	Buf json;
	JcObject obj;
	const char *why;
	size_t napi = 0;

	/* the reference parse */
	while (pos < size)
	{
		const char *seg = text + pos;
		const char *amp = memchr(seg, '&', size - pos);
		size_t seglen = amp ? (size_t) (amp - seg) : size - pos;
		const char *eq;
		size_t klen;

		pos += seglen + 1;
		if (seglen == 0)
			continue;
		eq = memchr(seg, '=', seglen);
		klen = eq ? (size_t) (eq - seg) : seglen;
		refs[nrefs].key = malloc(3 * klen + 1);
		refs[nrefs].klen = ref_text(refs[nrefs].key, ref_decode(seg, klen, refs[nrefs].key));
		refs[nrefs].value = malloc(3 * seglen + 1);
		refs[nrefs].vlen = eq ? ref_text(refs[nrefs].value,
										 ref_decode(eq + 1, seglen - klen - 1, refs[nrefs].value))
							  : 0;
		if (is_api_key(refs[nrefs].key, refs[nrefs].klen))
			napi++;
		nrefs++;
	}

	params_init(&p);
	if (!form_parse(&p, text, size))
		FAIL("form_parse failed (out of memory?)");
	if (p.count != nrefs)
		FAIL("%zu parameters, the reference finds %zu", p.count, nrefs);
	for (size_t i = 0; i < nrefs; i++)
	{
		const Param *x = &p.items[i];

		if (x->key_len != refs[i].klen || memcmp(x->key, refs[i].key, x->key_len) != 0 ||
			x->value_len != refs[i].vlen || memcmp(x->value, refs[i].value, x->value_len) != 0)
			FAIL("parameter %zu decoded differently from the reference", i);
		if (x->key[x->key_len] != '\0' || x->value[x->value_len] != '\0')
			FAIL("parameter %zu is not NUL-terminated", i);
		if (param_key_is(x, "api_key", true) != is_api_key(x->key, x->key_len))
			FAIL("param_key_is(api_key) disagrees on parameter %zu", i);
		if (param_is_secret(x) != fuzz_is_secret(x->key, x->key_len))
			FAIL("param_is_secret disagrees with the contract on parameter %zu", i);
	}
	{
		size_t exact = 0;
		const Param *first = NULL;

		for (size_t i = 0; i < nrefs; i++)
			if (refs[i].klen == 7 && memcmp(refs[i].key, "api_key", 7) == 0)
				exact++;
		if (params_lookup(&p, "api_key", &first) != exact || (exact > 0) != (first != NULL))
			FAIL("params_lookup(api_key) is wrong");
	}

	/* the JSON payload */
	buf_init(&json);
	form_to_json(&p, &json);
	if (json.oom)
		FAIL("form_to_json: out of memory");
	if (!jc_read_form_object(json.data, json.len, &obj, &why))
		FAIL("form_to_json wrote invalid JSON (%s): %.*s", why,
			 (int) (json.len > 300 ? 300 : json.len), json.data);
	if (!jc_valid(json.data, json.len))
		FAIL("form_to_json: the strict validator disagrees");
	{
		/* the expected grouping, computed the slow way */
		size_t k = 0;
		bool *done = calloc(nrefs + 1, sizeof(bool));

		for (size_t i = 0; i < nrefs; i++)
		{
			size_t nvals = 0;
			JcEntry *e;

			if (done[i] || fuzz_is_secret(refs[i].key, refs[i].klen) || is_redirect(&refs[i]))
				continue;
			if (k >= obj.count)
				FAIL("the JSON has %zu members, fewer than the distinct keys", obj.count);
			e = &obj.entries[k++];
			if (e->key.len != refs[i].klen || memcmp(e->key.data, refs[i].key, e->key.len) != 0)
				FAIL("member %zu: key differs from the request's (order of first appearance)",
					 k - 1);
			for (size_t j = i; j < nrefs; j++)
			{
				if (refs[j].klen != refs[i].klen ||
					memcmp(refs[j].key, refs[i].key, refs[i].klen) != 0)
					continue;
				done[j] = true;
				if (nvals >= e->nvalues)
					FAIL("member %zu has fewer values than the request", k - 1);
				if (e->values[nvals].len != refs[j].vlen ||
					memcmp(e->values[nvals].data, refs[j].value, refs[j].vlen) != 0)
					FAIL("member %zu value %zu differs from the request's", k - 1, nvals);
				nvals++;
			}
			if (nvals != e->nvalues || e->is_array != (nvals > 1))
				FAIL("member %zu: %zu values, array=%d; expected %zu", k - 1, e->nvalues,
					 e->is_array, nvals);
		}
		if (k != obj.count)
			FAIL("the JSON has %zu members, expected %zu", obj.count, k);
		for (size_t i = 0; i < obj.count; i++)
			if (fuzz_is_secret(obj.entries[i].key.data, obj.entries[i].key.len))
				FAIL("a secret key reached the JSON payload");
		free(done);
	}
	jc_free(&obj);
	buf_free(&json);

	/* params_concat: the query's parameters, then the body's */
	params_init(&q);
	if (!form_parse(&q, text, size / 2))
		FAIL("form_parse failed on a prefix");
	{
		size_t before = p.count + q.count;

		if (!params_concat(&p, &q))
			FAIL("params_concat failed");
		if (p.count != before || q.count != 0 || q.items != NULL)
			FAIL("params_concat lost parameters");
	}
	params_free(&p);
	params_free(&q);

	for (size_t i = 0; i < nrefs; i++)
	{
		free(refs[i].key);
		free(refs[i].value);
	}
	free(refs);
	(void) napi;
	return 0;
}
