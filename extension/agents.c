/*
 * agents.c: resolves the agent a payload names (contract section 4): dialer_user_id
 * exactly, else user exactly, else user case-insensitively when unique; inactive never.
 *
 * Answers are kept per backend until leadintake.agents changes: a statement trigger on it
 * (1.2) sends a relcache invalidation, which every backend applies at its next transaction
 * (and this one at its next command). Without that trigger nothing is kept.
 */
#include "leadintake.h"

#include "catalog/namespace.h"
#include "miscadmin.h"
#include "catalog/pg_type_d.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#define KEY_LEN  256   /* longer identities are looked up every time */
#define MAX_KEPT 10000 /* answers kept before starting afresh */

typedef struct Kept
{
	char key[KEY_LEN]; /* role \x1f dialer_user_id \x1f user, or role \x1f agent id */
	bool found;
	Agent agent;
	char *error;
} Kept;

static SPIPlanPtr resolve_plan = NULL;
static SPIPlanPtr by_id_plan = NULL;
static MemoryContext kept_cxt = NULL;
static HTAB *kept = NULL; /* NULL: keep nothing (not built, or no trigger) */
static bool kept_valid = false;
static Oid agents_relid = InvalidOid;

static void
agents_changed(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == agents_relid)
		kept_valid = false;
}

void
li_define_agent_cache(void)
{
	CacheRegisterRelcacheCallback(agents_changed, (Datum) 0);
}

/* AFTER ... FOR EACH STATEMENT on leadintake.agents: every backend forgets its answers. */
PG_FUNCTION_INFO_V1(leadintake_agents_changed);
Datum
leadintake_agents_changed(PG_FUNCTION_ARGS)
{
	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR, (errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
						errmsg("leadintake.agents_changed() must be called as a trigger")));
	CacheInvalidateRelcache(((TriggerData *) fcinfo->context)->tg_relation);
	PG_RETURN_POINTER(NULL);
}

/* Starts afresh when agents changed; keeps nothing unless the trigger fires in every mode. */
static void
prepare_kept(void)
{
	HASHCTL ctl;
	Oid nsp;
	bool usable;

	if (kept_valid)
		return;
	if (kept_cxt == NULL)
		kept_cxt =
			AllocSetContextCreate(CacheMemoryContext, "leadintake agents", ALLOCSET_SMALL_SIZES);
	MemoryContextReset(kept_cxt);
	kept = NULL;
	nsp = get_namespace_oid("leadintake", true);
	agents_relid = OidIsValid(nsp) ? get_relname_relid("agents", nsp) : InvalidOid;
	kept_valid = true; /* before the query: an invalidation during it must count */
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_trigger"
							  " WHERE tgrelid OPERATOR(pg_catalog.=) $1"
							  "   AND tgname OPERATOR(pg_catalog.=) 'agents_changed'"
							  "   AND tgenabled OPERATOR(pg_catalog.=) 'A'",
							  1, (Oid[]){OIDOID}, (Datum[]){ObjectIdGetDatum(agents_relid)}, NULL,
							  true, 1) != SPI_OK_SELECT)
		elog(ERROR, "trigger look-up failed");
	usable = SPI_processed == 1;
	if (!usable || !kept_valid)
		return;
	memset(&ctl, 0, sizeof(ctl));
	ctl.keysize = KEY_LEN;
	ctl.entrysize = sizeof(Kept);
	ctl.hcxt = kept_cxt;
	kept = hash_create("leadintake agents", 256, &ctl, HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
}

static char *
kept_strdup(const char *s)
{
	return s ? MemoryContextStrdup(kept_cxt, s) : NULL;
}

/* The caller gets copies: the kept answers may go at the next look-up. */
static bool
from_kept(Kept *k, Agent *agent, char **error)
{
	if (k->found)
	{
		agent->id = k->agent.id;
		agent->username = pstrdup(k->agent.username);
		agent->display_name = k->agent.display_name ? pstrdup(k->agent.display_name) : NULL;
	}
	else
		*error = pstrdup(k->error);
	return k->found;
}

static void
keep(Kept *k, bool found, Agent *agent, char *error)
{
	k->found = found;
	if (found)
	{
		k->agent.id = agent->id;
		k->agent.username = kept_strdup(agent->username);
		k->agent.display_name = kept_strdup(agent->display_name);
	}
	else
		k->error = kept_strdup(error);
}

/* Where an answer for key is kept, or NULL when it is not to be kept. */
static Kept *
kept_entry(const char *key, bool *found)
{
	if (kept == NULL || strlen(key) >= KEY_LEN)
		return NULL;
	if (hash_get_num_entries(kept) >= MAX_KEPT)
	{
		kept_valid = false;
		prepare_kept();
		if (kept == NULL)
			return NULL;
	}
	return hash_search(kept, key, HASH_ENTER, found);
}

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
static bool
resolve(const char *dialer_user_id, const char *user, Agent *agent, char **error)
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

bool
li_resolve_agent(const char *dialer_user_id, const char *user, Agent *agent, char **error)
{
	char *key;
	Kept *k;
	bool found;
	bool ok;

	prepare_kept();
	/* Per role: a role that may not read agents must not get another role's answers. */
	key = psprintf("%u\x1f%s\x1f%s", GetUserId(), dialer_user_id ? dialer_user_id : "\x1e",
				   user ? user : "\x1e");
	k = kept_entry(key, &found);
	if (k && found)
		return from_kept(k, agent, error);
	ok = resolve(dialer_user_id, user, agent, error);
	/* An invalidation during the query may have emptied the table: look again. */
	if (k && kept_valid && kept && (k = kept_entry(key, &found)) != NULL)
		keep(k, ok, agent, *error);
	return ok;
}

/* The username and name to show for agent_id, or NULLs when there is no such agent. */
void
li_agent_by_id(int64 agent_id, LeadAgent *out)
{
	char key[48];
	Kept *k;
	bool found;
	Datum arg = Int64GetDatum(agent_id);
	Agent agent = {agent_id, NULL, NULL};

	prepare_kept();
	snprintf(key, sizeof(key), "%u\x1f" INT64_FORMAT, GetUserId(), agent_id);
	k = kept_entry(key, &found);
	if (!(k && found))
	{
		if (by_id_plan == NULL)
			by_id_plan = li_keep_plan("SELECT username, coalesce(display_name, username)"
									  "  FROM leadintake.agents WHERE id OPERATOR(pg_catalog.=) $1",
									  1, (Oid[]){INT8OID});
		if (SPI_execute_plan(by_id_plan, &arg, NULL, true, 1) != SPI_OK_SELECT)
			elog(ERROR, "agent look-up failed");
		if (SPI_processed == 1)
		{
			agent.username = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
			agent.display_name = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2);
		}
		if (k && kept_valid && kept && (k = kept_entry(key, &found)) != NULL)
			keep(k, agent.username != NULL, &agent, "");
	}
	else if (k->found)
	{
		agent.username = pstrdup(k->agent.username);
		agent.display_name = pstrdup(k->agent.display_name);
	}
	out->username = agent.username;
	out->name = agent.display_name;
}
