/*
 * log.c: the one JSON line per request (and per console sign-in) on stdout (no secret, no query
 * string, no body; written in batches) and the operator's messages on stderr; also the clock
 * the other parts measure with.
 */
#include "shim.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * Request lines are gathered here and written by log_flush (a thread of their own every
 * 100 ms, so that a slow stdout never delays the --timeout sweeper; main on SIGHUP and after
 * the drain at exit), not with one write(2) per request,
 * which cost about a tenth of the shim's CPU under load. The buffer only ever holds whole
 * lines and is written whole: no line is ever left half written between two flushes. Lines
 * reach a file or a pipe at most ~100 ms late; a terminal gets each line at once.
 */
#define PENDING_SIZE (64 * 1024)

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char pending[PENDING_SIZE]; /* under log_lock */
static size_t pending_len;
static int stdout_tty = -1; /* -1: not known yet */

double
now_monotonic(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/*
 * UTC with milliseconds, "2024-01-15T10:30:00.123Z" (out: at least 25 bytes). The part up
 * to the second is made once a second per thread: strftime for every request was not free.
 */
static void
format_time(char *out, size_t outlen)
{
	static _Thread_local time_t cached_sec = -1;
	static _Thread_local char cached[32];
	static _Thread_local size_t cached_len;
	struct timespec ts;
	struct tm tm;
	long ms;

	clock_gettime(CLOCK_REALTIME, &ts);
	if (ts.tv_sec != cached_sec)
	{
		gmtime_r(&ts.tv_sec, &tm);
		cached_len = strftime(cached, sizeof(cached), "%Y-%m-%dT%H:%M:%S", &tm);
		cached_sec = ts.tv_sec;
	}
	if (cached_len + 6 > outlen)
	{
		out[0] = '\0';
		return;
	}
	ms = ts.tv_nsec / 1000000L;
	memcpy(out, cached, cached_len);
	out += cached_len;
	*out++ = '.';
	*out++ = (char) ('0' + ms / 100);
	*out++ = (char) ('0' + ms / 10 % 10);
	*out++ = (char) ('0' + ms % 10);
	*out++ = 'Z';
	*out = '\0';
}

/* Decimal digits of n, without printf (called for every request). */
static void
put_uint(Buf *b, unsigned long long n)
{
	char digits[24];
	size_t i = sizeof(digits);

	do
	{
		digits[--i] = (char) ('0' + n % 10);
		n /= 10;
	} while (n > 0);
	buf_append(b, digits + i, sizeof(digits) - i);
}

/* A JSON string of at most max bytes of s (longer text is cut). */
static void
json_field(Buf *b, const char *name, const char *s, size_t max)
{
	size_t len;

	buf_puts(b, ",\"");
	buf_puts(b, name);
	buf_puts(b, "\":");
	if (s == NULL)
	{
		buf_puts(b, "null");
		return;
	}
	len = strlen(s);
	buf_json_string(b, s, len > max ? max : len);
}

/* Writes the pending lines; under log_lock. */
static void
flush_locked(void)
{
	if (pending_len == 0)
		return;
	fwrite(pending, 1, pending_len, stdout);
	fflush(stdout);
	pending_len = 0;
}

/* Queues one whole line (or writes it at once to a terminal). */
static void
log_line(const Buf *b)
{
	if (b->oom)
		return;
	pthread_mutex_lock(&log_lock);
	if (stdout_tty < 0)
		stdout_tty = isatty(STDOUT_FILENO);
	if (b->len > sizeof(pending) - pending_len)
		flush_locked();
	if (stdout_tty || b->len > sizeof(pending))
	{
		/* nothing is pending: the order of the lines is kept */
		fwrite(b->data, 1, b->len, stdout);
		fflush(stdout);
	}
	else
	{
		memcpy(pending + pending_len, b->data, b->len);
		pending_len += b->len;
	}
	pthread_mutex_unlock(&log_lock);
}

/* {"time":"..." : the start of every line. */
static void
line_start(Buf *b)
{
	char ts[48];

	format_time(ts, sizeof(ts));
	buf_puts(b, "{\"time\":\"");
	buf_puts(b, ts);
	buf_puts(b, "\"");
}

void
log_request(const RequestLog *r)
{
	Buf b;
	char frac[4];
	unsigned long long us;

	buf_init(&b);
	line_start(&b);
	json_field(&b, "method", r->method, 32);
	json_field(&b, "path", r->path, 512);
	buf_puts(&b, ",\"status\":");
	if (r->status < 0)
		buf_puts(&b, "-");
	put_uint(&b, (unsigned long long) (r->status < 0 ? -(long long) r->status : r->status));
	/* as %.3f would: milliseconds with three decimals */
	us = r->duration_ms > 0 ? (unsigned long long) (r->duration_ms * 1000.0 + 0.5) : 0;
	buf_puts(&b, ",\"duration_ms\":");
	put_uint(&b, us / 1000);
	frac[0] = '.';
	frac[1] = (char) ('0' + us % 1000 / 100);
	frac[2] = (char) ('0' + us % 100 / 10);
	frac[3] = (char) ('0' + us % 10);
	buf_append(&b, frac, sizeof(frac));
	json_field(&b, "key", r->key_name, KEY_NAME_MAX);
	json_field(&b, "client", r->client_addr, 64);
	buf_puts(&b, "}\n");
	log_line(&b);
	buf_free(&b);
}

void
log_sign_in(const char *key_name, bool ok, const char *client_addr)
{
	Buf b;

	buf_init(&b);
	line_start(&b);
	buf_puts(&b, ",\"event\":\"console_sign_in\"");
	json_field(&b, "key", key_name, KEY_NAME_MAX);
	buf_puts(&b, ok ? ",\"ok\":true" : ",\"ok\":false");
	json_field(&b, "client", client_addr, 64);
	buf_puts(&b, "}\n");
	log_line(&b);
	buf_free(&b);
}

static pthread_t flusher;
static bool flusher_running;
static atomic_bool flusher_stop;

static void *
flush_loop(void *arg)
{
	(void) arg;
	while (!atomic_load(&flusher_stop))
	{
		struct timespec pause = {0, 100 * 1000 * 1000};

		nanosleep(&pause, NULL);
		log_flush();
	}
	return NULL;
}

bool
log_start(void)
{
	flusher_running = pthread_create(&flusher, NULL, flush_loop, NULL) == 0;
	return flusher_running;
}

void
log_stop(void)
{
	if (flusher_running)
	{
		atomic_store(&flusher_stop, true);
		pthread_join(flusher, NULL);
		flusher_running = false;
	}
	log_flush();
}

void
log_flush(void)
{
	pthread_mutex_lock(&log_lock);
	flush_locked();
	pthread_mutex_unlock(&log_lock);
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
