/*
 * fuzz_form.c: shim/form.c (form and query-string decoding, the JSON payload it becomes)
 * and shim/buf.c (JSON string escaping).
 *
 * Input: a form body or query string, as is. Checked besides the sanitizers: each
 * parameter is decoded as a reference decoder says (`+` a space, %XX a byte, a bad % kept);
 * the JSON is valid, one member per distinct key in the order keys first appear, a repeated
 * key an array in request order, the values decoded back byte for byte; no secret key of
 * contract section 3 (any case) appears in it, and param_is_secret agrees with the
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

typedef struct Ref
{
	char *key;
	size_t klen;
	char *value;
	size_t vlen;
} Ref;

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
		refs[nrefs].key = malloc(klen + 1);
		refs[nrefs].klen = ref_decode(seg, klen, refs[nrefs].key);
		refs[nrefs].value = malloc(seglen + 1);
		refs[nrefs].vlen = eq ? ref_decode(eq + 1, seglen - klen - 1, refs[nrefs].value) : 0;
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

			if (done[i] || fuzz_is_secret(refs[i].key, refs[i].klen))
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
