/*
 * config.c: the command line and its LEADINTAKE_* environment variables (a flag wins over
 * its variable), --help, and the checks that make a bad configuration exit 2 at start.
 */
#include "shim.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

ShimConfig shim_config;

enum
{
	OPT_DB = 1000,
	OPT_LISTEN,
	OPT_API_KEY_FILE,
	OPT_ALLOW_QUERY_KEY,
	OPT_DASHBOARD_URL,
	OPT_MAX_BODY,
	OPT_RATE_LIMIT,
	OPT_ALLOW_IP,
	OPT_TLS_CERT,
	OPT_TLS_KEY,
	OPT_TIMEOUT,
	OPT_THREADS,
	OPT_MAX_CONNECTIONS,
	OPT_MAX_CONNECTIONS_PER_IP,
	OPT_POOL_SIZE,
	OPT_POOL_WAIT,
	OPT_BATCH_MAX,
	OPT_CONNECT_TIMEOUT,
	OPT_QUERY_TIMEOUT,
	OPT_DRAIN_TIMEOUT,
	OPT_DB_WAIT,
	OPT_SPOOL_DIR,
	OPT_SPOOL_MAX,
	OPT_CONSOLE_KEY_FILE,
	OPT_CONSOLE_LISTEN,
	OPT_CONSOLE_DB,
	OPT_CONSOLE_IDLE,
	OPT_HELP,
	OPT_VERSION
};

typedef struct Setting
{
	int id;
	const char *flag; /* without the leading -- */
	const char *env;
	const char *arg; /* NULL: a switch */
	const char *help;
} Setting;

static const Setting settings[] = {
	{OPT_DB, "db", "LEADINTAKE_DB", "CONNINFO",
	 "libpq connection string or URI (default: libpq's PG* environment)"},
	{OPT_LISTEN, "listen", "LEADINTAKE_LISTEN", "HOST:PORT",
	 "address to listen on; [::1]:8080 for IPv6, port 0 picks one (default 127.0.0.1:8080)"},
	{OPT_API_KEY_FILE, "api-key-file", "LEADINTAKE_API_KEY_FILE", "FILE",
	 "API keys, one name:secret a line, # comments; reloaded on SIGHUP (required)"},
	{OPT_ALLOW_QUERY_KEY, "allow-query-key", "LEADINTAKE_ALLOW_QUERY_KEY", NULL,
	 "also accept the key as an api_key query or form parameter (VICIdial URLs; "
	 "the key then shows in URLs: see docs/vicidial.md) (default off)"},
	{OPT_DASHBOARD_URL, "dashboard-url", "LEADINTAKE_DASHBOARD_URL", "URL",
	 "with redirect=1 in the request, answer a created/updated lead with 303 to "
	 "URL?from_dialer=true&lead_id=... (default none)"},
	{OPT_MAX_BODY, "max-body", "LEADINTAKE_MAX_BODY", "BYTES",
	 "largest request body, k/M suffixes allowed; larger is 413 (default 65536)"},
	{OPT_RATE_LIMIT, "rate-limit", "LEADINTAKE_RATE_LIMIT", "N",
	 "per API key: N requests a second, burst N; over it is 429 (default 0: off)"},
	{OPT_ALLOW_IP, "allow-ip", "LEADINTAKE_ALLOW_IP", "CIDR",
	 "allow only these client addresses (repeatable; the variable takes a comma-"
	 "separated list); others are closed at accept, unanswered (default: all)"},
	{OPT_TLS_CERT, "tls-cert", "LEADINTAKE_TLS_CERT", "FILE",
	 "PEM certificate (chain): serve HTTPS (needs --tls-key)"},
	{OPT_TLS_KEY, "tls-key", "LEADINTAKE_TLS_KEY", "FILE", "PEM private key of --tls-cert"},
	{OPT_TIMEOUT, "timeout", "LEADINTAKE_TIMEOUT", "SECONDS",
	 "close a connection idle this long, or one whose request is not all in this long "
	 "after it began: slow clients (default 15)"},
	{OPT_THREADS, "threads", "LEADINTAKE_THREADS", "N",
	 "HTTP threads; they never wait on the database (default 2)"},
	{OPT_MAX_CONNECTIONS, "max-connections", "LEADINTAKE_MAX_CONNECTIONS", "N",
	 "most client connections at once (default 256)"},
	{OPT_MAX_CONNECTIONS_PER_IP, "max-connections-per-ip", "LEADINTAKE_MAX_CONNECTIONS_PER_IP", "N",
	 "most connections at once from one client address; more are closed at accept; 0 = no "
	 "cap, for a proxy in front (default 64)"},
	{OPT_POOL_SIZE, "pool-size", "LEADINTAKE_POOL_SIZE", "N",
	 "database connections, and as many threads making the calls (default 8)"},
	{OPT_POOL_WAIT, "pool-wait", "LEADINTAKE_POOL_WAIT", "MS",
	 "longest wait in the queue for a database worker, then 503 (default 2000)"},
	{OPT_BATCH_MAX, "batch-max", "LEADINTAKE_BATCH_MAX", "N",
	 "most queued requests one transaction carries, one commit for all; 1 = one each "
	 "(default 16)"},
	{OPT_CONNECT_TIMEOUT, "connect-timeout", "LEADINTAKE_CONNECT_TIMEOUT", "SECONDS",
	 "libpq connect_timeout (default 3)"},
	{OPT_QUERY_TIMEOUT, "query-timeout", "LEADINTAKE_QUERY_TIMEOUT", "MS",
	 "statement_timeout of the intake call, then 503 (default 10000)"},
	{OPT_DB_WAIT, "db-wait", "LEADINTAKE_DB_WAIT", "SECONDS",
	 "a request that finds the database unavailable waits this long for it (no thread "
	 "held), then is spooled or answered 503; 0 = no wait (default 10)"},
	{OPT_SPOOL_DIR, "spool-dir", "LEADINTAKE_SPOOL_DIR", "DIR",
	 "after --db-wait, write the request here durably and answer 202; sent to the database "
	 "in arrival order when it answers, also after a restart (default none: 503)"},
	{OPT_SPOOL_MAX, "spool-max", "LEADINTAKE_SPOOL_MAX", "BYTES",
	 "most bytes the spool may hold, k/M/G suffixes; past it 503 (default 1G)"},
	{OPT_DRAIN_TIMEOUT, "drain-timeout", "LEADINTAKE_DRAIN_TIMEOUT", "SECONDS",
	 "on SIGTERM, longest wait for requests in flight (default 30)"},
	{OPT_CONSOLE_KEY_FILE, "console-key-file", "LEADINTAKE_CONSOLE_KEY_FILE", "FILE",
	 "console keys, one name:secret a line, a file of its own (never a dialer key); "
	 "reloaded on SIGHUP; without it no console listens (default none)"},
	{OPT_CONSOLE_LISTEN, "console-listen", "LEADINTAKE_CONSOLE_LISTEN", "HOST:PORT",
	 "the console's own address, /console/ (TLS as --tls-cert) (default 127.0.0.1:8081)"},
	{OPT_CONSOLE_DB, "console-db", "LEADINTAKE_CONSOLE_DB", "CONNINFO",
	 "the console's database connection, a role in leadintake_console (default --db)"},
	{OPT_CONSOLE_IDLE, "console-idle", "LEADINTAKE_CONSOLE_IDLE", "SECONDS",
	 "a console session unused this long ends (default 43200: 12 h)"},
	{OPT_HELP, "help", NULL, NULL, "show this help and exit"},
	{OPT_VERSION, "version", NULL, NULL, "show the version and exit"},
};
#define NSETTINGS (sizeof(settings) / sizeof(settings[0]))

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", SHIM_NAME);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(EXIT_CONFIG);
}

/* Prints text from column indent, wrapped at 79 columns; the first line goes on as it is. */
static void
print_wrapped(const char *text, int indent, int col)
{
	const char *p = text;

	while (*p)
	{
		const char *word = p;
		int len;

		while (*p && *p != ' ')
			p++;
		len = (int) (p - word);
		if (col > indent && col + 1 + len > 79)
		{
			printf("\n%*s", indent, "");
			col = indent;
		}
		else if (col > indent)
		{
			putchar(' ');
			col++;
		}
		printf("%.*s", len, word);
		col += len;
		while (*p == ' ')
			p++;
	}
	putchar('\n');
}

static void
usage(void)
{
	size_t i;

	printf("Usage: %s --api-key-file FILE [--db CONNINFO] [--listen HOST:PORT]\n"
		   "                       [OPTION]...\n"
		   "\n"
		   "The HTTP front of the leadintake PostgreSQL extension: POST or GET\n"
		   "/api/leads/from-dialer/ (JSON, form or query string), GET /healthz and\n"
		   "GET /metrics; with --console-key-file, the console on a listen address of its\n"
		   "own (docs/console.md).\n"
		   "Every option can also be set by its environment variable; an option given on\n"
		   "the command line wins. A bad setting exits with status 2.\n"
		   "Signals: SIGHUP reloads the key files; SIGTERM (or SIGINT) stops accepting,\n"
		   "answers the requests in flight, then exits 0.\n\n",
		   SHIM_NAME);
	for (i = 0; i < NSETTINGS; i++)
	{
		char left[64];
		int n;

		if (settings[i].arg)
			n = snprintf(left, sizeof(left), "  --%s %s", settings[i].flag, settings[i].arg);
		else
			n = snprintf(left, sizeof(left), "  --%s", settings[i].flag);
		printf("%s", left);
		if (n < 30)
		{
			printf("%*s", 30 - n, "");
			n = 30;
		}
		print_wrapped(settings[i].help, 30, n);
		if (settings[i].env)
			printf("%30s[env %s]\n", "", settings[i].env);
	}
	printf("\nBooleans (LEADINTAKE_ALLOW_QUERY_KEY, --allow-query-key=...): 1/true/yes/on or\n"
		   "0/false/no/off. More: docs/shim.md.\n");
}

static const Setting *
setting_by_id(int id)
{
	size_t i;

	for (i = 0; i < NSETTINGS; i++)
		if (settings[i].id == id)
			return &settings[i];
	return NULL;
}

static unsigned
parse_uint(const Setting *s, const char *v, unsigned min, unsigned max)
{
	char *end;
	unsigned long n;

	errno = 0;
	while (isspace((unsigned char) *v))
		v++;
	if (*v == '-' || *v == '\0')
		die("bad --%s \"%s\": expected a number from %u to %u", s->flag, v, min, max);
	n = strtoul(v, &end, 10);
	if (errno || *end != '\0' || n < min || n > max)
		die("bad --%s \"%s\": expected a number from %u to %u", s->flag, v, min, max);
	return (unsigned) n;
}

static unsigned long long
parse_size(const Setting *s, const char *v, unsigned long long max)
{
	char *end;
	unsigned long long n;

	errno = 0;
	if (*v == '-' || *v == '\0' || isspace((unsigned char) *v))
		die("bad --%s \"%s\": expected a byte count such as 65536 or 64k", s->flag, v);
	n = strtoull(v, &end, 10);
	if (*end == 'k' || *end == 'K')
		n *= 1024, end++;
	else if (*end == 'm' || *end == 'M')
		n *= 1024 * 1024, end++;
	else if (*end == 'g' || *end == 'G')
		n *= 1024ULL * 1024 * 1024, end++;
	if (errno || *end != '\0' || n < 1 || n > max)
		die("bad --%s \"%s\": expected a byte count from 1 to %lluM", s->flag, v,
			max / (1024 * 1024));
	return n;
}

static bool
parse_bool(const Setting *s, const char *v)
{
	if (strcasecmp(v, "1") == 0 || strcasecmp(v, "true") == 0 || strcasecmp(v, "yes") == 0 ||
		strcasecmp(v, "on") == 0)
		return true;
	if (strcasecmp(v, "0") == 0 || strcasecmp(v, "false") == 0 || strcasecmp(v, "no") == 0 ||
		strcasecmp(v, "off") == 0 || *v == '\0')
		return false;
	die("bad --%s \"%s\": expected 1/true/yes/on or 0/false/no/off", s->flag, v);
}

/* The CIDR lists: from the environment, and from the command line (which replaces it). */
static const char **cidrs_env;
static size_t ncidrs_env;
static const char **cidrs_flag;
static size_t ncidrs_flag;

static void
push(const char ***list, size_t *n, const char *v)
{
	const char **grown = realloc(*list, (*n + 1) * sizeof(char *));

	if (grown == NULL)
		die("out of memory");
	*list = grown;
	(*list)[(*n)++] = v;
}

static void
apply(int id, const char *v, bool from_env)
{
	const Setting *s = setting_by_id(id);
	ShimConfig *c = &shim_config;

	switch (id)
	{
		case OPT_DB:
			c->db = v;
			break;
		case OPT_LISTEN:
			c->listen = v;
			break;
		case OPT_API_KEY_FILE:
			c->api_key_file = v;
			break;
		case OPT_ALLOW_QUERY_KEY:
			c->allow_query_key = v ? parse_bool(s, v) : true;
			break;
		case OPT_DASHBOARD_URL:
			c->dashboard_url = *v ? v : NULL;
			break;
		case OPT_MAX_BODY:
			c->max_body = (size_t) parse_size(s, v, 64ULL * 1024 * 1024);
			break;
		case OPT_RATE_LIMIT:
			c->rate_limit = parse_uint(s, v, 0, 1000000);
			break;
		case OPT_ALLOW_IP:
			if (from_env)
			{
				/* a comma- or space-separated list */
				char *copy = strdup(v);
				char *tok;
				char *save = NULL;

				if (copy == NULL)
					die("out of memory");
				for (tok = strtok_r(copy, ", \t\n", &save); tok;
					 tok = strtok_r(NULL, ", \t\n", &save))
					push(&cidrs_env, &ncidrs_env, tok);
			}
			else
				push(&cidrs_flag, &ncidrs_flag, v);
			break;
		case OPT_TLS_CERT:
			c->tls_cert = *v ? v : NULL;
			break;
		case OPT_TLS_KEY:
			c->tls_key = *v ? v : NULL;
			break;
		case OPT_TIMEOUT:
			c->timeout = parse_uint(s, v, 1, 3600);
			break;
		case OPT_THREADS:
			c->threads = parse_uint(s, v, 1, 256);
			break;
		case OPT_MAX_CONNECTIONS:
			c->max_connections = parse_uint(s, v, 1, 100000);
			break;
		case OPT_MAX_CONNECTIONS_PER_IP:
			c->max_connections_per_ip = parse_uint(s, v, 0, 100000);
			break;
		case OPT_POOL_SIZE:
			c->pool_size = parse_uint(s, v, 1, 256);
			break;
		case OPT_POOL_WAIT:
			c->pool_wait_ms = parse_uint(s, v, 1, 600000);
			break;
		case OPT_BATCH_MAX:
			c->batch_max = parse_uint(s, v, 1, BATCH_MAX);
			break;
		case OPT_CONNECT_TIMEOUT:
			c->connect_timeout = parse_uint(s, v, 2, 600);
			break;
		case OPT_QUERY_TIMEOUT:
			c->query_timeout_ms = parse_uint(s, v, 100, 3600000);
			break;
		case OPT_DRAIN_TIMEOUT:
			c->drain_timeout = parse_uint(s, v, 0, 3600);
			break;
		case OPT_DB_WAIT:
			c->db_wait = parse_uint(s, v, 0, 3600);
			break;
		case OPT_SPOOL_DIR:
			c->spool_dir = *v ? v : NULL;
			break;
		case OPT_SPOOL_MAX:
			c->spool_max = parse_size(s, v, 1024ULL * 1024 * 1024 * 1024);
			break;
		case OPT_CONSOLE_KEY_FILE:
			c->console_key_file = *v ? v : NULL;
			break;
		case OPT_CONSOLE_LISTEN:
			c->console_listen = v;
			break;
		case OPT_CONSOLE_DB:
			c->console_db = v;
			break;
		case OPT_CONSOLE_IDLE:
			c->console_idle = parse_uint(s, v, 1, 30 * 86400);
			break;
	}
}

/* HOST:PORT, [V6]:PORT or :PORT (all IPv4 interfaces) into the address of --flag. */
static void
parse_listen(const char *flag, const char *v, struct sockaddr_storage *addr, socklen_t *addrlen)
{
	char host[256];
	const char *port;
	struct addrinfo hints;
	struct addrinfo *res = NULL;
	int rc;
	char *end;
	unsigned long portnum;

	if (v[0] == '[')
	{
		const char *close = strchr(v, ']');

		if (close == NULL || close[1] != ':' || (size_t) (close - v - 1) >= sizeof(host))
			die("bad --%s \"%s\": expected HOST:PORT or [IPV6]:PORT", flag, v);
		memcpy(host, v + 1, close - v - 1);
		host[close - v - 1] = '\0';
		port = close + 2;
	}
	else
	{
		const char *colon = strrchr(v, ':');

		if (colon == NULL || memchr(v, ':', colon - v) != NULL ||
			(size_t) (colon - v) >= sizeof(host))
			die("bad --%s \"%s\": expected HOST:PORT or [IPV6]:PORT", flag, v);
		memcpy(host, v, colon - v);
		host[colon - v] = '\0';
		port = colon + 1;
	}
	errno = 0;
	portnum = strtoul(port, &end, 10);
	if (*port == '\0' || *end != '\0' || errno || portnum > 65535)
		die("bad --%s \"%s\": the port must be a number from 0 to 65535", flag, v);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = host[0] ? AF_UNSPEC : AF_INET;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV | (host[0] ? 0 : AI_PASSIVE);
	rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
	if (rc != 0 || res == NULL)
		die("bad --%s \"%s\": %s", flag, v, rc ? gai_strerror(rc) : "no address");
	memcpy(addr, res->ai_addr, res->ai_addrlen);
	*addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

/* Reads a whole PEM file for TLS; exits 2 when it cannot be read or is not PEM. */
static char *
read_pem(const char *flag, const char *path, const char *must_contain)
{
	FILE *f = fopen(path, "rb");
	char *data;
	size_t n;
	struct stat st;

	if (f == NULL)
		die("cannot read --%s \"%s\": %s", flag, path, strerror(errno));
	if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 1024 * 1024)
		die("cannot read --%s \"%s\": not a regular file of at most 1 MiB", flag, path);
	data = malloc((size_t) st.st_size + 1);
	if (data == NULL)
		die("out of memory");
	n = fread(data, 1, (size_t) st.st_size, f);
	if (ferror(f))
		die("cannot read --%s \"%s\": %s", flag, path, strerror(errno));
	fclose(f);
	data[n] = '\0';
	if (strstr(data, "-----BEGIN ") == NULL || strstr(data, must_contain) == NULL)
		die("bad --%s \"%s\": not a PEM file with a %s", flag, path, must_contain);
	return data;
}

static void
check_dashboard_url(const char *u)
{
	const char *p;

	if (strncasecmp(u, "http://", 7) != 0 && strncasecmp(u, "https://", 8) != 0 && u[0] != '/')
		die("bad --dashboard-url \"%s\": expected an http:// or https:// URL, or a path", u);
	for (p = u; *p; p++)
		if ((unsigned char) *p <= 0x20 || *p == 0x7f)
			die("bad --dashboard-url: it contains a space or a control character");
}

void
config_load(int argc, char **argv)
{
	ShimConfig *c = &shim_config;
	struct option longopts[NSETTINGS + 1];
	size_t i;
	int opt;
	char err[256];

	memset(c, 0, sizeof(*c));
	c->db = "";
	c->listen = "127.0.0.1:8080";
	c->max_body = 65536;
	c->timeout = 15;
	c->threads = 2;
	c->max_connections = 256;
	c->max_connections_per_ip = 64;
	c->pool_size = 8;
	c->pool_wait_ms = 2000;
	c->batch_max = 16;
	c->connect_timeout = 3;
	c->query_timeout_ms = 10000;
	c->drain_timeout = 30;
	c->db_wait = 10;
	c->spool_max = 1024ULL * 1024 * 1024;
	c->console_listen = "127.0.0.1:8081";
	c->console_idle = 12 * 3600;

	/* the environment first: a flag on the command line then wins */
	for (i = 0; i < NSETTINGS; i++)
	{
		const char *v;

		if (settings[i].env == NULL || (v = getenv(settings[i].env)) == NULL || *v == '\0')
			continue;
		apply(settings[i].id, v, true);
	}

	for (i = 0; i < NSETTINGS; i++)
	{
		longopts[i].name = settings[i].flag;
		longopts[i].has_arg =
			settings[i].arg
				? required_argument
				: (settings[i].id == OPT_ALLOW_QUERY_KEY ? optional_argument : no_argument);
		longopts[i].flag = NULL;
		longopts[i].val = settings[i].id;
	}
	memset(&longopts[NSETTINGS], 0, sizeof(struct option));
	opterr = 0;
	while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1)
	{
		if (opt == OPT_HELP || opt == 'h')
		{
			usage();
			exit(0);
		}
		if (opt == OPT_VERSION)
		{
			printf("%s %s\n", SHIM_NAME, SHIM_VERSION);
			exit(0);
		}
		if (opt == '?' || opt == ':')
		{
			const char *bad = argv[optind - 1];

			if (optopt >= OPT_DB)
				die("option %s needs a value (try --help)", bad);
			die("unknown option %s (try --help)", bad);
		}
		apply(opt, optarg, false);
	}
	if (optind < argc)
		die("unexpected argument \"%s\" (try --help)", argv[optind]);

	/* checks that need the whole configuration */
	if (c->api_key_file == NULL || *c->api_key_file == '\0')
		die("no API key file: give --api-key-file FILE or LEADINTAKE_API_KEY_FILE "
			"(one name:secret a line)");
	parse_listen("listen", c->listen, &c->listen_addr, &c->listen_addrlen);
	parse_listen("console-listen", c->console_listen, &c->console_addr, &c->console_addrlen);
	if (c->console_key_file && c->api_key_file && strcmp(c->console_key_file, c->api_key_file) == 0)
		die("--console-key-file must be a file of its own, not the --api-key-file: a dialer key "
			"never opens the console");
	if (c->dashboard_url)
		check_dashboard_url(c->dashboard_url);
	if ((c->tls_cert == NULL) != (c->tls_key == NULL))
		die("TLS needs both --tls-cert and --tls-key");
	if (c->tls_cert)
	{
		c->tls_cert_pem = read_pem("tls-cert", c->tls_cert, "CERTIFICATE");
		c->tls_key_pem = read_pem("tls-key", c->tls_key, "PRIVATE KEY");
	}
	for (i = 0; i < (ncidrs_flag ? ncidrs_flag : ncidrs_env); i++)
	{
		const char *cidr = ncidrs_flag ? cidrs_flag[i] : cidrs_env[i];

		if (!acl_add(cidr, err, sizeof(err)))
			die("%s", err);
	}
}
