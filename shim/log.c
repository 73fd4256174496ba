/*
 * log.c: the one JSON line per request on stdout (no secret, no query string, no body) and
 * the operator's messages on stderr; also the clock the other parts measure time with.
 */
#include "shim.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

double
now_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
format_time(char *out, size_t outlen)
{
	struct timespec ts;
	struct tm tm;
	char base[32];

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out, outlen, "%s.%03ldZ", base, ts.tv_nsec / 1000000L);
}

/* A JSON string of at most max bytes of s (longer text is cut). */
static void
json_field(Buf *b, const char *name, const char *s, size_t max)
{
	size_t len;

	buf_printf(b, ",\"%s\":", name);
	if (s == NULL)
	{
		buf_puts(b, "null");
		return;
	}
	len = strlen(s);
	buf_json_string(b, s, len > max ? max : len);
}

void
log_request(const RequestLog *r)
{
	Buf b;
	char ts[48];

	format_time(ts, sizeof(ts));
	buf_init(&b);
	buf_printf(&b, "{\"time\":\"%s\"", ts);
	json_field(&b, "method", r->method, 32);
	json_field(&b, "path", r->path, 512);
	buf_printf(&b, ",\"status\":%d,\"duration_ms\":%.3f", r->status, r->duration_ms);
	json_field(&b, "key", r->key_name, KEY_NAME_MAX);
	json_field(&b, "client", r->client_addr, 64);
	buf_puts(&b, "}\n");
	if (!b.oom)
	{
		pthread_mutex_lock(&log_lock);
		fwrite(b.data, 1, b.len, stdout);
		fflush(stdout);
		pthread_mutex_unlock(&log_lock);
	}
	buf_free(&b);
}

void
log_msg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_vmsg(fmt, ap);
	va_end(ap);
}

void
log_vmsg(const char *fmt, va_list ap)
{
	char line[1024];
	char ts[48];
	size_t len;

	vsnprintf(line, sizeof(line), fmt, ap);
	len = strlen(line);
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	format_time(ts, sizeof(ts));
	pthread_mutex_lock(&log_lock);
	fprintf(stderr, "%s %s: %s\n", ts, SHIM_NAME, line);
	fflush(stderr);
	pthread_mutex_unlock(&log_lock);
}
