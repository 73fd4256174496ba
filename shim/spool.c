/*
 * spool.c: the durable spool of contract section 8 (--spool-dir): a request the database could
 * not take within --db-wait is written to disk, then sent in arrival order once it answers.
 *
 * On disk, the maildir pattern (Postfix and qmail): one file a request, written in tmp/,
 * fsynced, renamed into new/, and new/ fsynced, before the client gets its 202; a file is
 * removed only after the database answered its call (any status), or moved to failed/ when
 * the call raised an error the shim cannot retry (the operator sees it, nothing is dropped).
 * A file's name is its receive time in microseconds, then a sequence number: sorting the
 * names sorts the arrival order. Its text: a header of "name value" lines, a blank line, the
 * body (secrets already removed: form_to_json, or json_drop_secrets for a JSON body).
 */
#include "shim.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SPOOL_MAGIC "leadintake-spool 1"
/* A replay that finds the database away tries again this often (or when it answers). */
#define RETRY_SECONDS 1
/*
 * A file whose call keeps failing as "cannot serve" (a lock, a timeout) while the database
 * answers a plain SELECT would hold the whole spool behind it: after this many tries it goes
 * to failed/ like a file the database refused.
 */
#define STUCK_TRIES 10
/* File names read per directory scan: the oldest ones; the rest wait for the next scan. */
#define SCAN_MAX 512

static char *spool_dir;
static pthread_mutex_t spool_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t spool_cond = PTHREAD_COND_INITIALIZER;
static uint64_t spool_bytes;   /* of the files in new/, under spool_lock */
static unsigned spool_depth_n; /* files in new/, under spool_lock */
static unsigned spool_seq;     /* under spool_lock */
static bool replayer_stop;     /* under spool_lock */
static bool replayer_running;
static pthread_t replayer;
static atomic_ullong n_spooled, n_replayed, n_failed;

bool
spool_enabled(void)
{
	return spool_dir != NULL;
}

unsigned
spool_depth(void)
{
	unsigned n;

	pthread_mutex_lock(&spool_lock);
	n = spool_depth_n;
	pthread_mutex_unlock(&spool_lock);
	return n;
}

static void
path_of(char *out, size_t outlen, const char *sub, const char *name)
{
	snprintf(out, outlen, "%s/%s%s%s", spool_dir, sub, name ? "/" : "", name ? name : "");
}

static bool
fsync_dir(const char *sub)
{
	char path[4096];
	int fd;
	bool ok;

	path_of(path, sizeof(path), sub, NULL);
	fd = open(path, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return false;
	ok = fsync(fd) == 0;
	close(fd);
	return ok;
}

/* The names in new/ (spool files only), sorted: the oldest first; at most max. */
static int
scan_new(char (*names)[64], int max, uint64_t *bytes, unsigned *count)
{
	char path[4096];
	DIR *d;
	struct dirent *e;
	int n = 0;

	*bytes = 0;
	*count = 0;
	path_of(path, sizeof(path), "new", NULL);
	d = opendir(path);
	if (d == NULL)
		return -1;
	while ((e = readdir(d)) != NULL)
	{
		struct stat st;
		char file[4096];

		if (e->d_name[0] < '0' || e->d_name[0] > '9' || strlen(e->d_name) >= 64)
			continue;
		path_of(file, sizeof(file), "new", e->d_name);
		if (stat(file, &st) == 0)
			*bytes += (uint64_t) st.st_size;
		(*count)++;
		if (n < max)
			memcpy(names[n++], e->d_name, strlen(e->d_name) + 1);
		else
		{
			/* keep the max oldest: replace the newest kept one if this one is older */
			int newest = 0;

			for (int i = 1; i < n; i++)
				if (strcmp(names[i], names[newest]) > 0)
					newest = i;
			if (strcmp(e->d_name, names[newest]) < 0)
				memcpy(names[newest], e->d_name, strlen(e->d_name) + 1);
		}
	}
	closedir(d);
	qsort(names, (size_t) n, sizeof(names[0]), (int (*)(const void *, const void *)) strcmp);
	return n;
}

static bool
make_dir(const char *sub, char *err, size_t errlen)
{
	char path[4096];

	path_of(path, sizeof(path), sub, NULL);
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
	{
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		return false;
	}
	return true;
}

bool
spool_open(const char *dir, char *err, size_t errlen)
{
	char path[4096];
	char names[1][64];
	DIR *d;
	struct dirent *e;

	spool_dir = strdup(dir);
	if (spool_dir == NULL || !make_dir("", err, errlen) || !make_dir("tmp", err, errlen) ||
		!make_dir("new", err, errlen) || !make_dir("failed", err, errlen))
		return false;
	/* a file left in tmp/ by a killed shim was never answered 202: it is not the spool's */
	path_of(path, sizeof(path), "tmp", NULL);
	if ((d = opendir(path)) != NULL)
	{
		while ((e = readdir(d)) != NULL)
			if (e->d_name[0] != '.')
			{
				char file[4096];

				path_of(file, sizeof(file), "tmp", e->d_name);
				unlink(file);
			}
		closedir(d);
	}
	if (scan_new(names, 0, &spool_bytes, &spool_depth_n) < 0)
	{
		snprintf(err, errlen, "cannot read %s/new: %s", dir, strerror(errno));
		return false;
	}
	if (spool_depth_n > 0)
		log_msg("the spool holds %u requests from before: they go to the database first",
				spool_depth_n);
	return true;
}

/* Writes all of data to fd; false on any error. */
static bool
write_all(int fd, const char *data, size_t len)
{
	while (len > 0)
	{
		ssize_t w = write(fd, data, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		data += w;
		len -= (size_t) w;
	}
	return true;
}

SpoolResult
spool_write(const IntakeCall *r)
{
	char name[64], tmp_path[4096], new_path[4096];
	Buf head;
	int fd;
	bool ok;
	uint64_t size;

	buf_init(&head);
	buf_printf(&head, "%s\nreceived_us %lld\nkey_name %s\nclient_addr %s\nminimal %d\n\n",
			   SPOOL_MAGIC, (long long) r->received_us, r->key_name ? r->key_name : "",
			   r->client_addr ? r->client_addr : "", r->param_key ? 1 : 0);
	if (head.oom)
		return SPOOL_FAILED;
	size = head.len + r->body_len;
	pthread_mutex_lock(&spool_lock);
	if (spool_bytes + size > shim_config.spool_max)
	{
		pthread_mutex_unlock(&spool_lock);
		buf_free(&head);
		log_msg("the spool is full (--spool-max %llu bytes): answering 503",
				(unsigned long long) shim_config.spool_max);
		return SPOOL_FULL;
	}
	spool_bytes += size; /* reserved now, so that two writers cannot both pass the check */
	snprintf(name, sizeof(name), "%016lld.%08u.%d", (long long) r->received_us, spool_seq++,
			 (int) getpid());
	pthread_mutex_unlock(&spool_lock);

	path_of(tmp_path, sizeof(tmp_path), "tmp", name);
	path_of(new_path, sizeof(new_path), "new", name);
	fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	ok = fd >= 0 && write_all(fd, head.data, head.len) && write_all(fd, r->body, r->body_len) &&
		 fsync(fd) == 0;
	if (fd >= 0 && close(fd) != 0)
		ok = false;
	ok = ok && rename(tmp_path, new_path) == 0 && fsync_dir("new");
	buf_free(&head);
	pthread_mutex_lock(&spool_lock);
	if (ok)
	{
		spool_depth_n++;
		pthread_cond_signal(&spool_cond);
	}
	else
		spool_bytes -= size;
	pthread_mutex_unlock(&spool_lock);
	if (!ok)
	{
		log_msg("cannot write to the spool (%s): answering 503", strerror(errno));
		unlink(tmp_path);
		return SPOOL_FAILED;
	}
	atomic_fetch_add(&n_spooled, 1);
	return SPOOL_OK;
}

/* Reads a spool file into rec (its strings point into *text, which the caller frees). */
static bool
read_record(const char *path, char **text, IntakeCall *rec)
{
	FILE *f = fopen(path, "rb");
	long len;
	char *p, *end, *body;

	*text = NULL;
	if (f == NULL)
		return false;
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 || len > INT_MAX ||
		fseek(f, 0, SEEK_SET) != 0 || (*text = malloc((size_t) len + 1)) == NULL ||
		fread(*text, 1, (size_t) len, f) != (size_t) len)
	{
		fclose(f);
		return false;
	}
	fclose(f);
	(*text)[len] = '\0';
	body = strstr(*text, "\n\n");
	if (strncmp(*text, SPOOL_MAGIC "\n", strlen(SPOOL_MAGIC) + 1) != 0 || body == NULL)
		return false;
	memset(rec, 0, sizeof(*rec));
	*body = '\0';
	rec->body = body + 2;
	rec->body_len = (size_t) len - (size_t) (rec->body - *text);
	for (p = *text + strlen(SPOOL_MAGIC) + 1; p < body; p = end + 1)
	{
		char *sp;

		end = strchr(p, '\n');
		if (end == NULL || end > body)
			end = body;
		*end = '\0';
		sp = strchr(p, ' ');
		if (sp == NULL)
			continue;
		*sp++ = '\0';
		if (strcmp(p, "received_us") == 0)
			rec->received_us = strtoll(sp, NULL, 10);
		else if (strcmp(p, "key_name") == 0)
			rec->key_name = sp;
		else if (strcmp(p, "client_addr") == 0)
			rec->client_addr = sp;
		else if (strcmp(p, "minimal") == 0)
			rec->param_key = *sp == '1';
	}
	return rec->received_us > 0;
}

/*
 * One file's call; true when it left new/ (answered, or moved to failed/). tries: how many
 * times in a row this file's call found the database unable to serve it.
 */
static bool
replay_one(Db *db, const char *name, int tries)
{
	char path[4096], failed[4096];
	char *text;
	IntakeCall call;
	IntakeCall *one = &call;
	struct stat st;
	off_t size;

	path_of(path, sizeof(path), "new", name);
	size = stat(path, &st) == 0 ? st.st_size : 0;
	if (read_record(path, &text, &call))
		db_intake(db, &one, 1);
	else
		call = (IntakeCall){.outcome = DB_ERROR}; /* unreadable: kept for the operator */
	free(text);
	free(call.result.response);
	free(call.result.dashboard_query);
	if (call.outcome == DB_UNAVAILABLE && (tries < STUCK_TRIES || db_ping(db) != DB_OK))
		return false;
	if (call.outcome == DB_OK)
	{
		unlink(path);
		atomic_fetch_add(&n_replayed, 1);
	}
	else
	{
		path_of(failed, sizeof(failed), "failed", name);
		rename(path, failed);
		atomic_fetch_add(&n_failed, 1);
		log_msg("spooled request %s failed in the database: kept in %s/failed/", name, spool_dir);
	}
	fsync_dir("new");
	pthread_mutex_lock(&spool_lock);
	spool_depth_n--;
	spool_bytes -= (uint64_t) size;
	pthread_mutex_unlock(&spool_lock);
	return true;
}

/* Sleeps until a file is spooled, the stop, or seconds pass. */
static void
replayer_sleep(int seconds)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += seconds;
	pthread_mutex_lock(&spool_lock);
	if (!replayer_stop)
		pthread_cond_timedwait(&spool_cond, &spool_lock, &ts);
	pthread_mutex_unlock(&spool_lock);
}

static bool
stopping(void)
{
	bool s;

	pthread_mutex_lock(&spool_lock);
	s = replayer_stop;
	pthread_mutex_unlock(&spool_lock);
	return s;
}

/* The replayer thread: the oldest files first, one call each, while the database answers. */
static void *
replay_main(void *unused)
{
	static char names[SCAN_MAX][64];
	char last[64] = "";
	int tries = 0;
	Db db = {NULL}; /* a session of its own, held only while there are files to send */

	(void) unused;
	while (!stopping())
	{
		uint64_t bytes;
		unsigned count;
		int n = scan_new(names, SCAN_MAX, &bytes, &count);
		bool blocked = false;

		for (int i = 0; i < n && !stopping(); i++)
		{
			tries = strcmp(names[i], last) == 0 ? tries + 1 : 1;
			memcpy(last, names[i], sizeof(last));
			if (!replay_one(&db, names[i], tries))
			{
				blocked = true; /* the database is away: keep the order, try later */
				break;
			}
		}
		if (n <= 0)
			db_close(&db);
		if (n <= 0 || blocked)
			replayer_sleep(RETRY_SECONDS);
	}
	db_close(&db);
	return NULL;
}

bool
spool_start(void)
{
	if (!spool_enabled())
		return true;
	if (pthread_create(&replayer, NULL, replay_main, NULL) != 0)
		return false;
	replayer_running = true;
	return true;
}

void
spool_wake(void)
{
	pthread_mutex_lock(&spool_lock);
	pthread_cond_signal(&spool_cond);
	pthread_mutex_unlock(&spool_lock);
}

void
spool_stop(void)
{
	if (!replayer_running)
		return;
	pthread_mutex_lock(&spool_lock);
	replayer_stop = true;
	pthread_cond_signal(&spool_cond);
	pthread_mutex_unlock(&spool_lock);
	pthread_join(replayer, NULL);
	replayer_running = false;
}

void
spool_stats(SpoolStats *s)
{
	char oldest[1][64];
	uint64_t bytes;
	unsigned count;

	memset(s, 0, sizeof(*s));
	if (!spool_enabled())
		return;
	s->enabled = true;
	pthread_mutex_lock(&spool_lock);
	s->depth = spool_depth_n;
	s->bytes = spool_bytes;
	pthread_mutex_unlock(&spool_lock);
	s->spooled = atomic_load(&n_spooled);
	s->replayed = atomic_load(&n_replayed);
	s->failed = atomic_load(&n_failed);
	if (s->depth > 0 && scan_new(oldest, 1, &bytes, &count) == 1)
	{
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		s->oldest_age = now.tv_sec + now.tv_nsec / 1e9 - strtoll(oldest[0], NULL, 10) / 1e6;
	}
}
