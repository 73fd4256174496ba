/*
 * enospc.c: an LD_PRELOAD library for a throwaway PostgreSQL server that makes the disk look
 * full: writes that would grow a relation's data file fail with ENOSPC, while a flag file exists.
 *
 * Environment (read by every process that loads it):
 *   LEADINTAKE_ENOSPC_FLAG  the flag file: the fault is on while it exists
 *   LEADINTAKE_ENOSPC_BASE  the cluster's base/ directory (absolute, symlinks resolved)
 *
 * Only files named base/<database oid>/<relfilenode>[_fsm|_vm|_init][.<segment>] are hit, so
 * the WAL (a failed WAL write is a PANIC: another fault), pg_internal.init and temporary files
 * are not; and only writes past the end of the file (the relation extends), since a full
 * file system still lets a file be overwritten in place. Then PostgreSQL raises SQLSTATE
 * 53100 (disk_full), as it does on a real full disk. Built by test/e2e/faults.sh:
 *   gcc -shared -fPIC -o enospc.so enospc.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

/* True when path is base/<digits>/<digits>[_fsm|_vm|_init][.<digits>] under base. */
static bool
is_relation_file(const char *path, const char *base)
{
	size_t blen = strlen(base);
	const char *p;
	const char *suffixes[] = {"_fsm", "_vm", "_init"};

	if (strncmp(path, base, blen) != 0 || path[blen] != '/')
		return false;
	p = path + blen + 1;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	if (*p++ != '/' || *p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9')
		p++;
	for (size_t i = 0; i < sizeof(suffixes) / sizeof(suffixes[0]); i++)
		if (strncmp(p, suffixes[i], strlen(suffixes[i])) == 0)
		{
			p += strlen(suffixes[i]);
			break;
		}
	if (*p == '.')
	{
		p++;
		if (*p < '0' || *p > '9')
			return false;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	return *p == '\0';
}

/*
 * True when a write of len bytes at offset (-1: the file position) to fd must fail: the flag
 * is there, fd is a relation file, and the write goes past its end. errno is left as it was.
 */
static bool
disk_full(int fd, off_t offset, size_t len)
{
	int saved = errno;
	const char *flag = getenv("LEADINTAKE_ENOSPC_FLAG");
	const char *base = getenv("LEADINTAKE_ENOSPC_BASE");
	char link[64];
	char path[4096];
	ssize_t n;
	struct stat st;
	bool full = false;

	if (flag == NULL || base == NULL || len == 0 || access(flag, F_OK) != 0)
		goto out;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0)
		goto out;
	path[n] = '\0';
	if (!is_relation_file(path, base) || fstat(fd, &st) != 0)
		goto out;
	if (offset < 0)
	{
		if (fcntl(fd, F_GETFL) & O_APPEND)
			offset = st.st_size;
		else
			offset = lseek(fd, 0, SEEK_CUR);
	}
	full = offset >= 0 && (off_t) (offset + len) > st.st_size;
out:
	errno = saved;
	return full;
}

#define REAL(name)                                                                                 \
	static __typeof__(name) *real_##name;                                                          \
	if (real_##name == NULL)                                                                       \
		real_##name = (__typeof__(name) *) dlsym(RTLD_NEXT, #name);

static size_t
iov_len(const struct iovec *iov, int n)
{
	size_t len = 0;

	for (int i = 0; i < n; i++)
		len += iov[i].iov_len;
	return len;
}

ssize_t
write(int fd, const void *buf, size_t len)
{
	REAL(write);
	if (disk_full(fd, -1, len))
	{
		errno = ENOSPC;
		return -1;
	}
	return real_write(fd, buf, len);
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t offset)
{
	REAL(pwrite);
	if (disk_full(fd, offset, len))
	{
		errno = ENOSPC;
		return -1;
	}
	return real_pwrite(fd, buf, len, offset);
}

ssize_t
pwrite64(int fd, const void *buf, size_t len, off64_t offset)
{
	REAL(pwrite64);
	if (disk_full(fd, offset, len))
	{
		errno = ENOSPC;
		return -1;
	}
	return real_pwrite64(fd, buf, len, offset);
}

ssize_t
pwritev(int fd, const struct iovec *iov, int n, off_t offset)
{
	REAL(pwritev);
	if (disk_full(fd, offset, iov_len(iov, n)))
	{
		errno = ENOSPC;
		return -1;
	}
	return real_pwritev(fd, iov, n, offset);
}

ssize_t
pwritev64(int fd, const struct iovec *iov, int n, off64_t offset)
{
	REAL(pwritev64);
	if (disk_full(fd, offset, iov_len(iov, n)))
	{
		errno = ENOSPC;
		return -1;
	}
	return real_pwritev64(fd, iov, n, offset);
}

/* posix_fallocate returns the error instead of setting errno. */
int
posix_fallocate(int fd, off_t offset, off_t len)
{
	REAL(posix_fallocate);
	if (len > 0 && disk_full(fd, offset, (size_t) len))
		return ENOSPC;
	return real_posix_fallocate(fd, offset, len);
}

int
posix_fallocate64(int fd, off64_t offset, off64_t len)
{
	REAL(posix_fallocate64);
	if (len > 0 && disk_full(fd, offset, (size_t) len))
		return ENOSPC;
	return real_posix_fallocate64(fd, offset, len);
}

int
fallocate(int fd, int mode, off_t offset, off_t len)
{
	REAL(fallocate);
	if (len > 0 && disk_full(fd, offset, (size_t) len))
	{
		errno = ENOSPC;
		return -1;
	}
	return real_fallocate(fd, mode, offset, len);
}
