/*
 * agents.c: resolves the agent a payload names (contract section 4): dialer_user_id
 * exactly, else user exactly, else user case-insensitively when unique; inactive never.
 */
#include "leadintake.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"

static SPIPlanPtr resolve_plan = NULL;

/* One round trip fetches every candidate; the rules below choose among them. */
static const char resolve_sql[] =
	"SELECT id, username, display_name, active,"
	"       coalesce(dialer_user_id OPERATOR(pg_catalog.=) $1, false),"
	"       coalesce(username OPERATOR(pg_catalog.=) $2, false),"
	"       coalesce(pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($2), false)"
	"  FROM leadintake.agents"
	" WHERE dialer_user_id OPERATOR(pg_catalog.=) $1"
	"    OR username OPERATOR(pg_catalog.=) $2"
	"    OR pg_catalog.lower(username) OPERATOR(pg_catalog.=) pg_catalog.lower($2)";

static void
take(HeapTuple tuple, TupleDesc desc, Agent *agent)
{
	bool isnull;

	agent->id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	agent->username = SPI_getvalue(tuple, desc, 2);
	agent->display_name = SPI_getvalue(tuple, desc, 3);
}

static bool
column_true(HeapTuple tuple, TupleDesc desc, int col)
{
	bool isnull;

	return DatumGetBool(SPI_getbinval(tuple, desc, col, &isnull));
}

/*
 * Fills *agent and returns true, or returns false with the 404 sentence in *error. The
 * message names the look-up that ended the search: user when it was sent.
 */
bool
li_resolve_agent(const char *dialer_user_id, const char *user, Agent *agent, char **error)
{
	Oid types[2] = {TEXTOID, TEXTOID};
	Datum values[2];
	char nulls[2] = {' ', ' '};
	SPITupleTable *tt;
	bool inactive_by_id = false, inactive_exact = false, inactive_folded = false;
	int folded_matches = 0;
	uint64 n;

	if (resolve_plan == NULL)
		resolve_plan = li_keep_plan(resolve_sql, 2, types);
	values[0] = dialer_user_id ? CStringGetTextDatum(dialer_user_id) : (Datum) 0;
	values[1] = user ? CStringGetTextDatum(user) : (Datum) 0;
	if (!dialer_user_id)
		nulls[0] = 'n';
	if (!user)
		nulls[1] = 'n';
	if (SPI_execute_plan(resolve_plan, values, nulls, true, 0) != SPI_OK_SELECT)
		elog(ERROR, "agent look-up failed");
	tt = SPI_tuptable;
	n = SPI_processed;

	/* dialer_user_id, exact and unique by constraint */
	for (uint64 i = 0; i < n; i++)
		if (column_true(tt->vals[i], tt->tupdesc, 5))
		{
			if (column_true(tt->vals[i], tt->tupdesc, 4))
			{
				take(tt->vals[i], tt->tupdesc, agent);
				return true;
			}
			inactive_by_id = true;
		}

	if (user)
	{
		/* username, exact */
		for (uint64 i = 0; i < n; i++)
			if (column_true(tt->vals[i], tt->tupdesc, 6))
			{
				if (column_true(tt->vals[i], tt->tupdesc, 4))
				{
					take(tt->vals[i], tt->tupdesc, agent);
					return true;
				}
				inactive_exact = true;
			}

		/* username, case-insensitively, when exactly one active agent matches */
		if (!inactive_exact)
		{
			int last = -1;

			for (uint64 i = 0; i < n; i++)
			{
				if (!column_true(tt->vals[i], tt->tupdesc, 7))
					continue;
				if (column_true(tt->vals[i], tt->tupdesc, 4))
				{
					folded_matches++;
					last = i;
				}
				else
					inactive_folded = true;
			}
			if (folded_matches == 1)
			{
				take(tt->vals[last], tt->tupdesc, agent);
				return true;
			}
		}

		if (inactive_exact || (folded_matches == 0 && inactive_folded))
			*error = psprintf("Agent with username '%s' is inactive", user);
		else if (folded_matches > 1)
			*error = psprintf("Agent with username '%s' not found: %d agents match it "
							  "case-insensitively",
							  user, folded_matches);
		else
			*error = psprintf("Agent with username '%s' not found", user);
		return false;
	}

	if (inactive_by_id)
		*error = psprintf("Agent with dialer_user_id '%s' is inactive", dialer_user_id);
	else
		*error = psprintf("Agent with dialer_user_id '%s' not found", dialer_user_id);
	return false;
}
