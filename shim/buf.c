/*
 * buf.c: the growable byte buffer every part writes into, and JSON string escaping.
 * An allocation failure sets buf->oom and stops writing; callers answer 500 then.
 */
#include "shim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
buf_init(Buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
	b->oom = false;
}

void
buf_free(Buf *b)
{
	free(b->data);
	buf_init(b);
}

static bool
buf_reserve(Buf *b, size_t extra)
{
	size_t need;
	size_t cap;
	char *p;

	if (b->oom)
		return false;
	if (extra > SIZE_MAX - b->len - 1)
	{
		b->oom = true;
		return false;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = (cap > SIZE_MAX / 2) ? need : cap * 2;
	p = realloc(b->data, cap);
	if (p == NULL)
	{
		b->oom = true;
		return false;
	}
	b->data = p;
	b->cap = cap;
	return true;
}

void
buf_append(Buf *b, const void *data, size_t len)
{
	if (!buf_reserve(b, len))
		return;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
}

void
buf_puts(Buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void
buf_printf(Buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !buf_reserve(b, (size_t) n))
	{
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t) n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t) n;
}

void
buf_json_string(Buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t i;
	size_t run = 0; /* start of the pending run of plain bytes */

	buf_append(b, "\"", 1);
	for (i = 0; i < len; i++)
	{
		unsigned char c = (unsigned char) s[i];
		char esc[6];
		size_t esclen;

		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		buf_append(b, s + run, i - run);
		run = i + 1;
		switch (c)
		{
			case '"':
				esc[0] = '\\', esc[1] = '"', esclen = 2;
				break;
			case '\\':
				esc[0] = '\\', esc[1] = '\\', esclen = 2;
				break;
			case '\n':
				esc[0] = '\\', esc[1] = 'n', esclen = 2;
				break;
			case '\r':
				esc[0] = '\\', esc[1] = 'r', esclen = 2;
				break;
			case '\t':
				esc[0] = '\\', esc[1] = 't', esclen = 2;
				break;
			default:
				/* other control bytes, NUL included: \u00XX */
				esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
				esc[4] = hex[c >> 4], esc[5] = hex[c & 15], esclen = 6;
				break;
		}
		buf_append(b, esc, esclen);
	}
	buf_append(b, s + run, len - run);
	buf_append(b, "\"", 1);
}
