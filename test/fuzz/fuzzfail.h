/*
 * fuzzfail.h: how a harness reports a failed check. run.sh gives libFuzzer
 * -close_fd_mask=3 (the code under test logs a lot), which closes stderr after
 * LLVMFuzzerInitialize; libFuzzer and the sanitizers keep a copy of it, and so does this:
 * FUZZ_FAIL writes there, then aborts (libFuzzer saves the input as a crash).
 */
#ifndef FUZZFAIL_H
#define FUZZFAIL_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* postgres.h maps these to the server's own printf; a harness has libc's */
#undef snprintf
#undef vsnprintf

static int fuzz_fail_fd = 2;

/* Call from LLVMFuzzerInitialize. */
static inline void
fuzz_fail_init(void)
{
	int fd = dup(2);

	if (fd >= 0)
		fuzz_fail_fd = fd;
}

static void fuzz_fail(const char *who, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), noreturn, unused));

static void
fuzz_fail(const char *who, const char *fmt, ...)
{
	char msg[2048];
	int n;
	va_list ap;

	n = snprintf(msg, sizeof(msg), "\n==FAILED CHECK== %s: ", who);
	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - n - 2 > 0 ? sizeof(msg) - n - 2 : 0, fmt, ap);
	va_end(ap);
	if (n > (int) sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(fuzz_fail_fd, msg, n) < 0)
		(void) 0;
	abort();
}

/*
 * FUZZ_STRICT=1 also enables the checks of known, still open findings (test/fuzz/known/):
 * run.sh replays their reproducers that way and reports them as TODO, while the fuzzing
 * itself runs without them so that it can still find anything else.
 */
static inline int
fuzz_strict(void)
{
	static int strict = -1;

	if (strict < 0)
	{
		const char *v = getenv("FUZZ_STRICT");

		strict = v != NULL && *v != '\0' && *v != '0';
	}
	return strict;
}

#endif /* FUZZFAIL_H */
