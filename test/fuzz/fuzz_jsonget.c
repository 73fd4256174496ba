/*
 * fuzz_jsonget.c: shim/jsonget.c (json_get_string: one string member of a JSON body, decoded:
 * the console's sign-in key and test lead), with shim/jsonsecrets.c's scanner under it.
 *
 * Input: byte 0 chooses the escapes, the rest is a value V (any bytes). Checked besides the
 * sanitizers:
 *  - the input itself, as a body: json_get_string accepts it only when it is valid JSON
 *    (jc_valid), and then what it gives is NUL-free only if no \u0000 is in the input;
 *  - {"a": [1, {"key": 2}], "key": <V written with escapes chosen by byte 0>, "z": null}
 *    gives V, byte for byte: plain bytes as they are, \" \\ \/ \b \f \n \r \t and \u00XX as
 *    their byte, \uXXXX of a 2- or 3-byte UTF-8 sequence of V as that sequence;
 *  - the same object with "key" twice, or with a number for it, gives false.
 */
#include "../../shim/shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzzfail.h"
#include "jsoncheck.h"

#define FAIL(...) fuzz_fail("fuzz_jsonget", __VA_ARGS__)

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const unsigned char *data, size_t size);

/* A UTF-8 sequence of 2 or 3 bytes at v (not a surrogate): its code point, else 0. */
static unsigned
utf8_at(const unsigned char *v, size_t n, size_t *seqlen)
{
	if (n >= 2 && (v[0] & 0xE0) == 0xC0 && v[0] >= 0xC2 && (v[1] & 0xC0) == 0x80)
	{
		*seqlen = 2;
		return (unsigned) (v[0] & 0x1F) << 6 | (v[1] & 0x3F);
	}
	if (n >= 3 && (v[0] & 0xF0) == 0xE0 && (v[1] & 0xC0) == 0x80 && (v[2] & 0xC0) == 0x80)
	{
		unsigned cp =
			(unsigned) (v[0] & 0x0F) << 12 | (unsigned) (v[1] & 0x3F) << 6 | (v[2] & 0x3F);

		*seqlen = 3;
		return cp >= 0x800 && (cp < 0xD800 || cp > 0xDFFF) ? cp : 0;
	}
	return 0;
}

/* V as a JSON string, each escape chosen by the bits of mode. */
static void
write_string(Buf *b, const unsigned char *v, size_t n, unsigned mode)
{
	static const char shorts[] = "\"\"\\\\//\bb\ff\nn\rr\tt";

	buf_puts(b, "\"");
	for (size_t i = 0; i < n; i++)
	{
		bool alt = (mode >> (i % 8)) & 1;
		const char *e = v[i] ? strchr(shorts, v[i]) : NULL;
		size_t seqlen;
		unsigned cp;

		if (e != NULL && (e - shorts) % 2 == 0 &&
			(alt || v[i] == '"' || v[i] == '\\' || v[i] < 0x20))
			buf_printf(b, "\\%c", e[1]);
		else if (v[i] < 0x20 || v[i] == '"' || v[i] == '\\' || (alt && v[i] < 0x80))
			buf_printf(b, "\\u%04x", v[i]);
		else if (alt && (cp = utf8_at(v + i, n - i, &seqlen)) != 0)
		{
			buf_printf(b, "\\u%04X", cp);
			i += seqlen - 1;
		}
		else
			buf_append(b, v + i, 1);
	}
	buf_puts(b, "\"");
}

/* True when the text \u0000 is in data. */
static bool
has_escaped_nul(const unsigned char *data, size_t size)
{
	for (size_t i = 0; i + 6 <= size; i++)
		if (memcmp(data + i, "\\u0000", 6) == 0)
			return true;
	return false;
}

static bool
get(const Buf *body, Buf *out)
{
	buf_free(out);
	return json_get_string(body->data, body->len, "key", out);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void) argc;
	(void) argv;
	fuzz_fail_init();
	return 0;
}

int
LLVMFuzzerTestOneInput(const unsigned char *data, size_t size)
{
	Buf body, out;
	const unsigned char *v = data + 1;
	size_t n = size > 0 ? size - 1 : 0;

	if (size == 0)
		return 0;
	buf_init(&out);
	if (json_get_string((const char *) data, size, "key", &out) &&
		!jc_valid((const char *) data, size))
		FAIL("accepted a body that is not valid JSON");
	if (out.data && memchr(out.data, '\0', out.len) && !has_escaped_nul(data, size))
		FAIL("a NUL in the value that no \\u0000 wrote");

	buf_init(&body);
	buf_puts(&body, "{\"a\": [1, {\"key\": 2}], \"k\\u0065y\": ");
	write_string(&body, v, n, data[0]);
	buf_puts(&body, ", \"z\": null}");
	if (!get(&body, &out))
		FAIL("refused %s", body.data);
	if (out.len != n || memcmp(out.data, v, n) != 0)
		FAIL("decoded %s to %zu bytes, not the %zu written", body.data, out.len, n);

	body.data[--body.len] = '\0';
	buf_puts(&body, ", \"key\": \"again\"}");
	if (get(&body, &out))
		FAIL("accepted \"key\" twice: %s", body.data);
	buf_free(&body);
	buf_puts(&body, "{\"key\": 1}");
	if (get(&body, &out))
		FAIL("accepted a number for \"key\"");
	buf_free(&body);
	buf_free(&out);
	return 0;
}
