/*
 * metrics.c: the counters behind GET /metrics, in Prometheus text format: requests by
 * status, a latency histogram, requests in flight, the database pool's state and the keys.
 */
#include "shim.h"

#include <stdatomic.h>

#define NSTATUS 600

static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
#define NBUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static atomic_ulong by_status[NSTATUS];
static atomic_ulong buckets[NBUCKETS]; /* not cumulative here: summed when rendered */
static atomic_ulong count;
static atomic_ullong sum_us;
static atomic_long inflight;
static atomic_ulong refused; /* connections closed at accept: --allow-ip */

void
metrics_request(int status, double seconds)
{
	size_t i;

	if (status < 0 || status >= NSTATUS)
		status = 0; /* 0: no response was sent (the client went away) */
	atomic_fetch_add(&by_status[status], 1);
	for (i = 0; i < NBUCKETS; i++)
		if (seconds <= bucket_bounds[i])
		{
			atomic_fetch_add(&buckets[i], 1);
			break;
		}
	atomic_fetch_add(&count, 1);
	atomic_fetch_add(&sum_us, (unsigned long long) (seconds * 1e6));
}

void
metrics_inflight_add(int delta)
{
	atomic_fetch_add(&inflight, delta);
}

void
metrics_refused(void)
{
	atomic_fetch_add(&refused, 1);
}

long
metrics_inflight(void)
{
	return atomic_load(&inflight);
}

static void
render_spool(Buf *out)
{
	SpoolStats ss;

	spool_stats(&ss);
	buf_printf(out,
			   "# HELP leadintake_db_wait_requests Requests waiting for the database (--db-wait).\n"
			   "# TYPE leadintake_db_wait_requests gauge\n"
			   "leadintake_db_wait_requests %u\n",
			   work_deferred());
	if (!ss.enabled)
		return;
	buf_printf(
		out,
		"# HELP leadintake_spool_depth Requests in the spool, not yet sent to the database.\n"
		"# TYPE leadintake_spool_depth gauge\n"
		"leadintake_spool_depth %u\n"
		"# HELP leadintake_spool_bytes Bytes the spool's requests take on disk.\n"
		"# TYPE leadintake_spool_bytes gauge\n"
		"leadintake_spool_bytes %llu\n"
		"# HELP leadintake_spool_oldest_age_seconds Age of the oldest spooled request.\n"
		"# TYPE leadintake_spool_oldest_age_seconds gauge\n"
		"leadintake_spool_oldest_age_seconds %.3f\n"
		"# HELP leadintake_spool_requests_total Spooled requests: written, sent to the "
		"database, or kept in failed/ after a database error.\n"
		"# TYPE leadintake_spool_requests_total counter\n"
		"leadintake_spool_requests_total{event=\"written\"} %llu\n"
		"leadintake_spool_requests_total{event=\"sent\"} %llu\n"
		"leadintake_spool_requests_total{event=\"failed\"} %llu\n",
		ss.depth, (unsigned long long) ss.bytes, ss.oldest_age, (unsigned long long) ss.spooled,
		(unsigned long long) ss.replayed, (unsigned long long) ss.failed);
}

void
metrics_render(Buf *out)
{
	DbStats ds;
	unsigned queued = work_queued();
	unsigned long cumulative = 0;
	int s;
	size_t i;

	buf_puts(out, "# HELP leadintake_http_requests_total HTTP requests answered, by status code "
				  "(0: the client left before the answer).\n"
				  "# TYPE leadintake_http_requests_total counter\n");
	for (s = 0; s < NSTATUS; s++)
	{
		unsigned long n = atomic_load(&by_status[s]);

		if (n > 0)
			buf_printf(out, "leadintake_http_requests_total{code=\"%d\"} %lu\n", s, n);
	}

	buf_puts(out, "# HELP leadintake_http_request_duration_seconds Time from the request line "
				  "to the end of the answer.\n"
				  "# TYPE leadintake_http_request_duration_seconds histogram\n");
	for (i = 0; i < NBUCKETS; i++)
	{
		cumulative += atomic_load(&buckets[i]);
		buf_printf(out, "leadintake_http_request_duration_seconds_bucket{le=\"%g\"} %lu\n",
				   bucket_bounds[i], cumulative);
	}
	buf_printf(out, "leadintake_http_request_duration_seconds_bucket{le=\"+Inf\"} %lu\n",
			   atomic_load(&count));
	buf_printf(out, "leadintake_http_request_duration_seconds_sum %.6f\n",
			   (double) atomic_load(&sum_us) / 1e6);
	buf_printf(out, "leadintake_http_request_duration_seconds_count %lu\n", atomic_load(&count));

	buf_printf(out,
			   "# HELP leadintake_http_requests_in_flight Requests received and not yet "
			   "answered.\n"
			   "# TYPE leadintake_http_requests_in_flight gauge\n"
			   "leadintake_http_requests_in_flight %ld\n",
			   atomic_load(&inflight));
	buf_printf(out,
			   "# HELP leadintake_http_connections_refused_total Connections closed at accept "
			   "because the client address is not in --allow-ip.\n"
			   "# TYPE leadintake_http_connections_refused_total counter\n"
			   "leadintake_http_connections_refused_total %lu\n",
			   atomic_load(&refused));

	render_spool(out);
	db_stats(&ds);
	buf_printf(out,
			   "# HELP leadintake_db_pool_size Database workers (--pool-size), each with its "
			   "own connection.\n"
			   "# TYPE leadintake_db_pool_size gauge\n"
			   "leadintake_db_pool_size %u\n"
			   "# HELP leadintake_db_pool_connections Database connections by state.\n"
			   "# TYPE leadintake_db_pool_connections gauge\n"
			   "leadintake_db_pool_connections{state=\"busy\"} %u\n"
			   "leadintake_db_pool_connections{state=\"idle\"} %u\n"
			   "# HELP leadintake_db_pool_waiting Requests waiting for a worker and its "
			   "connection (as leadintake_db_queue).\n"
			   "# TYPE leadintake_db_pool_waiting gauge\n"
			   "leadintake_db_pool_waiting %u\n"
			   "# HELP leadintake_db_queue Requests queued for a worker thread.\n"
			   "# TYPE leadintake_db_queue gauge\n"
			   "leadintake_db_queue %u\n"
			   "# HELP leadintake_db_up 1 when the last attempt reached the database.\n"
			   "# TYPE leadintake_db_up gauge\n"
			   "leadintake_db_up %d\n"
			   "# HELP leadintake_db_connects_total Database connections established.\n"
			   "# TYPE leadintake_db_connects_total counter\n"
			   "leadintake_db_connects_total %llu\n"
			   "# HELP leadintake_db_connect_failures_total Failed attempts to connect "
			   "(or to prepare the statement).\n"
			   "# TYPE leadintake_db_connect_failures_total counter\n"
			   "leadintake_db_connect_failures_total %llu\n"
			   "# HELP leadintake_db_unavailable_total Calls answered 503 because the "
			   "database could not serve.\n"
			   "# TYPE leadintake_db_unavailable_total counter\n"
			   "leadintake_db_unavailable_total %llu\n"
			   "# HELP leadintake_db_errors_total Calls that failed with an unexpected "
			   "database error (answered 500).\n"
			   "# TYPE leadintake_db_errors_total counter\n"
			   "leadintake_db_errors_total %llu\n"
			   "# HELP leadintake_db_batches_total Transactions that carried several "
			   "queued calls (one commit for all).\n"
			   "# TYPE leadintake_db_batches_total counter\n"
			   "leadintake_db_batches_total %llu\n"
			   "# HELP leadintake_db_batch_retries_total Calls run again alone because "
			   "another call made their batch's transaction fail.\n"
			   "# TYPE leadintake_db_batch_retries_total counter\n"
			   "leadintake_db_batch_retries_total %llu\n",
			   shim_config.pool_size, ds.busy, ds.open > ds.busy ? ds.open - ds.busy : 0, queued,
			   queued, ds.up ? 1 : 0, (unsigned long long) ds.connects,
			   (unsigned long long) ds.connect_failures, (unsigned long long) ds.unavailable,
			   (unsigned long long) ds.errors, (unsigned long long) ds.batches,
			   (unsigned long long) ds.batch_retries);

	buf_printf(out,
			   "# HELP leadintake_api_keys Keys loaded from the API key file.\n"
			   "# TYPE leadintake_api_keys gauge\n"
			   "leadintake_api_keys %d\n",
			   keys_count());
}
