/*
 * main.c: start-up (configuration, keys, pool, HTTP daemons) and the signals: SIGHUP reloads
 * the key files; SIGTERM or SIGINT stops accepting, drains the requests in flight, exits 0.
 */
#include "shim.h"

#include <netinet/in.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

/* The URL a daemon answers on at the address, for the start-up message. */
static void
listen_url(const struct sockaddr_storage *addr, unsigned port, char *out, size_t outlen)
{
	const struct sockaddr *sa = (const struct sockaddr *) addr;
	char host[INET6_ADDRSTRLEN] = "";
	const char *scheme = shim_config.tls_cert ? "https" : "http";

	if (sa->sa_family == AF_INET6)
	{
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, host, sizeof(host));
		snprintf(out, outlen, "%s://[%s]:%u", scheme, host, port);
	}
	else
	{
		inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s://%s:%u", scheme, host, port);
	}
}

int
main(int argc, char **argv)
{
	sigset_t sigs;
	struct MHD_Daemon *daemon;
	struct MHD_Daemon *console = NULL;
	char err[512];
	char url[128];
	int sig;
	double deadline;

	config_load(argc, argv);
	if (!keys_load(shim_config.api_key_file, err, sizeof(err)))
	{
		fprintf(stderr, "%s: %s\n", SHIM_NAME, err);
		return EXIT_CONFIG;
	}
	if (shim_config.console_key_file &&
		!keyring_load(console_keys, shim_config.console_key_file, dialer_keys, err, sizeof(err)))
	{
		fprintf(stderr, "%s: %s\n", SHIM_NAME, err);
		return EXIT_CONFIG;
	}
	ratelimit_init(shim_config.rate_limit);
	if (shim_config.spool_dir && !spool_open(shim_config.spool_dir, err, sizeof(err)))
	{
		fprintf(stderr, "%s: --spool-dir: %s\n", SHIM_NAME, err);
		return EXIT_CONFIG;
	}

	/* the signals are taken by sigwait below; every thread started later inherits this */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);

	{
		/* one call now, so that a wrong --db shows at once (it is not fatal) */
		Db probe = {NULL};

		db_ping(&probe);
		db_close(&probe);
	}
	if (!log_start())
	{
		fprintf(stderr, "%s: cannot start the thread that writes the access log\n", SHIM_NAME);
		return 1;
	}
	if (!work_start(shim_config.pool_size))
	{
		fprintf(stderr, "%s: cannot start the worker threads\n", SHIM_NAME);
		return 1;
	}
	if (!spool_start())
	{
		fprintf(stderr, "%s: cannot start the thread that sends the spool\n", SHIM_NAME);
		return 1;
	}
	daemon = http_start();
	if (daemon == NULL)
	{
		fprintf(stderr,
				"%s: cannot serve on %s%s (address in use or not local, or a "
				"certificate and key that do not go together: see the message above)\n",
				SHIM_NAME, shim_config.listen, shim_config.tls_cert ? " with TLS" : "");
		return EXIT_CONFIG;
	}
	listen_url(&shim_config.listen_addr, http_bound_port(daemon), url, sizeof(url));
	log_msg("listening on %s (%d API keys, %u database connections, %u threads)", url, keys_count(),
			shim_config.pool_size, shim_config.threads);
	if (shim_config.console_key_file)
	{
		console = console_start(url);
		if (console == NULL)
		{
			fprintf(stderr, "%s: cannot serve the console on %s (see the message above)\n",
					SHIM_NAME, shim_config.console_listen);
			return EXIT_CONFIG;
		}
		listen_url(&shim_config.console_addr, http_bound_port(console), url, sizeof(url));
		log_msg("console on %s/console/ (%d console keys)", url, keyring_count(console_keys));
	}

	for (;;)
	{
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig != SIGHUP)
			break;
		log_flush();
		if (keyring_load(dialer_keys, shim_config.api_key_file, console_keys, err, sizeof(err)))
			log_msg("SIGHUP: reloaded the API key file (%d keys)", keys_count());
		else
			log_msg("SIGHUP: %s; keeping the %d keys loaded before", err, keys_count());
		if (shim_config.console_key_file == NULL)
			continue;
		if (keyring_load(console_keys, shim_config.console_key_file, dialer_keys, err, sizeof(err)))
			log_msg("SIGHUP: reloaded the console key file (%d keys)", keyring_count(console_keys));
		else
			log_msg("SIGHUP: %s; keeping the %d console keys loaded before", err,
					keyring_count(console_keys));
	}

	log_msg("%s: no new connections; answering %ld requests in flight",
			sig == SIGTERM ? "SIGTERM" : "SIGINT", metrics_inflight());
	console_stop(console); /* its test leads in flight end first: the workers still run */
	http_quiesce(daemon);
	deadline = now_monotonic() + shim_config.drain_timeout;
	while (metrics_inflight() > 0 && now_monotonic() < deadline)
		sleep_ms(20);
	if (metrics_inflight() > 0)
		log_msg("drain timeout: answering 503 to the requests still queued, closing the "
				"others");
	/* no connection may stay suspended: queued calls are answered 503, running ones end */
	work_stop();
	deadline = now_monotonic() + 2;
	while (metrics_inflight() > 0 && now_monotonic() < deadline)
		sleep_ms(20);
	http_stop(daemon);
	spool_stop(); /* what it still holds is sent by the next start */
	log_stop();   /* the last request lines: none is lost on a normal stop */
	log_msg("stopped");
	return 0;
}
