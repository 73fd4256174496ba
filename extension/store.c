/*
 * store.c: the race-free upsert of a lead (contract section 5): its kept statements, the common
 * cases in one each, the phone claim, and the merge into a lead found and locked.
 */
#include "leadintake.h"

#include "access/htup_details.h"
#include "catalog/pg_type_d.h"
#include "catalog/namespace.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/typcache.h"

/*
 * The insert and the update share one parameter layout: $1 an id, then the derived values,
 * then one parameter per stored dialer field.
 */
enum
{
	P_AGENT_ID,                 /* the insert's $1: the agent's id */
	P_CRM_LEAD_ID = P_AGENT_ID, /* the update's $1: the lead's id */
	P_FULL_NAME,
	P_PHONE,
	P_PHONE_E164,
	P_EXTRA,
	P_DIALER_LEAD_ID,
	P_PHONE_VALID,
	P_FIRST_FIELD
};

#define MAX_PARAMS (P_FIRST_FIELD + LI_NFIELDS)
/* After the fields, the update's last parameter: the locked version's ctid. */
#define P_TID nparams

/* A call's shape: bit i set when parameter $(i + 1) is not NULL. */
#define SHAPE_BIT(i) (UINT64CONST(1) << (i))
#define PLAN_SHAPES  32
StaticAssertDecl(MAX_PARAMS <= 64, "a shape is a 64-bit set of parameters");

/* At most this many rounds of "someone else created it first" before giving up. */
#define MAX_ATTEMPTS 8

/* The lead writes: how an UPDATE finds its lead (and where the merged name comes from). */
typedef enum WriteKind
{
	WK_LOCKED,     /* UPDATE of the version the look-up locked, by ctid; the merge made in C */
	WK_BY_LEAD_ID, /* UPDATE by the call's lead id, no look-up first; the name rebuilt in SQL */
	WK_INSERT,     /* INSERT ... ON CONFLICT (dialer_lead_id) DO NOTHING */
	WK_CLAIMING    /* the same, only when no lead has the phone and its claim was free */
} WriteKind;

/* The name parts, in the order a full name joins them. */
static const FieldId name_parts[3] = {F_FIRST_NAME, F_MIDDLE_INITIAL, F_LAST_NAME};

static SPIPlanPtr claim_plan, lock_claim_plan;
static int nparams; /* 0 until prepare_plans */

/*
 * leads.phone_valid (1.5): a module installed before ALTER EXTENSION UPDATE writes leads
 * without it (the response shows null), and the statements are made again once the update
 * has added it.
 */
static bool has_phone_valid;
static bool leads_changed;
static Oid leads_relid = InvalidOid;
static Oid param_types[MAX_PARAMS + 1];
static FieldId param_field[MAX_PARAMS];
static int field_param[LI_NFIELDS]; /* a stored field's parameter index; 0 for none */

/* A dialer field stored from its own parameter (the derived ones have theirs). */
static bool
stored_directly(FieldId f)
{
	return li_fields[f].column != NULL && f != F_DIALER_LEAD_ID && f != F_FULL_NAME && f != F_PHONE;
}

/*
 * The statements' cast from a field's text parameter to its column's type; kinds not
 * listed are text columns.
 */
static const char *const kind_casts[] = {
	[FK_DATE] = "::pg_catalog.date",      [FK_DATETIME] = "::pg_catalog.timestamp",
	[FK_INT] = "::pg_catalog.int8",       [FK_IP] = "::pg_catalog.inet",
	[FK_OFFSET] = "::pg_catalog.numeric",
};

static const char *
type_cast(FieldKind kind)
{
	return kind < lengthof(kind_casts) && kind_casts[kind] ? kind_casts[kind] : "";
}

/* The insert's and the update's first columns, one per parameter before the fields. */
static const char *const derived_columns[P_FIRST_FIELD] = {[P_AGENT_ID] = "assigned_agent_id",
														   [P_FULL_NAME] = "full_name",
														   [P_PHONE] = "phone",
														   [P_PHONE_E164] = "phone_e164",
														   [P_EXTRA] = "extra",
														   [P_DIALER_LEAD_ID] = "dialer_lead_id",
														   [P_PHONE_VALID] = "phone_valid"};

/*
 * The writes return the whole row (RETURNING l): one composite value costs the executor
 * less than a projection of every column at each execution.
 */
static void
append_returning(StringInfo sql)
{
	appendStringInfoString(sql, " RETURNING l");
}

/*
 * li_build_full_name in SQL, over the merged parts: the part sent, else the stored one. A
 * part sent is never empty (an empty value is absent), so the name starts at the first
 * non-empty stored part before the first part sent, else at that part, and goes on with
 * every part present (concat_ws), as li_build_full_name joins them.
 */
static void
append_rebuilt_name(StringInfo sql, uint64 shape)
{
	char part[3][96];
	int first_sent = -1;

	for (int i = 0; i < 3; i++)
	{
		int param = field_param[name_parts[i]];

		if (shape & SHAPE_BIT(param))
		{
			snprintf(part[i], sizeof(part[i]), "$%d", param + 1);
			if (first_sent < 0)
				first_sent = i;
		}
		else
			snprintf(part[i], sizeof(part[i]), "l.%s::pg_catalog.text",
					 quote_identifier(li_fields[name_parts[i]].column));
	}
	Assert(first_sent >= 0);
	if (first_sent > 0)
		appendStringInfoString(sql, "CASE");
	for (int start = 0; start <= first_sent; start++)
	{
		if (start < first_sent)
			appendStringInfo(sql, " WHEN %s OPERATOR(pg_catalog.<>) '' THEN ", part[start]);
		else if (first_sent > 0)
			appendStringInfoString(sql, " ELSE ");
		appendStringInfoString(sql, "pg_catalog.concat_ws(' '");
		for (int i = start; i < 3; i++)
			appendStringInfo(sql, ", %s", part[i]);
		appendStringInfoChar(sql, ')');
	}
	if (first_sent > 0)
		appendStringInfoString(sql, " END");
}

/*
 * phone_e164 and phone_valid of an update by lead id that sends a phone, and so its code
 * (merge_in_statement): the stored ones when the lead has that very phone and phone_code
 * and was parsed by libphonenumber (phone_valid is set: not a lead of before 1.5 awaiting
 * recompute_phones), else the intake's parse, in SQL; a phone with no number to match on
 * keeps the stored phone_e164, as update_locked's does. A derived value whose inputs did not
 * change is not derived again: the call parses no phone.
 */
static void
append_phone_derived(StringInfo sql)
{
	int code = field_param[F_PHONE_CODE] + 1;
	char same[160];

	snprintf(same, sizeof(same),
			 "l.phone OPERATOR(pg_catalog.=) $%d AND l.phone_code OPERATOR(pg_catalog.=) $%d"
			 " AND l.phone_valid IS NOT NULL",
			 P_PHONE + 1, code);
	appendStringInfo(sql,
					 ", phone_e164 = CASE WHEN %s THEN l.phone_e164"
					 " ELSE coalesce(leadintake.phone_e164($%d, $%d), l.phone_e164) END"
					 ", phone_valid = CASE WHEN %s THEN l.phone_valid"
					 " ELSE leadintake.phone_valid($%d, $%d) END",
					 same, P_PHONE + 1, code, same, P_PHONE + 1, code);
}

static bool
shape_has_name_part(uint64 shape)
{
	for (int i = 0; i < 3; i++)
		if (shape & SHAPE_BIT(field_param[name_parts[i]]))
			return true;
	return false;
}

/*
 * The UPDATE of a lead for one shape: the set of parameters that are not NULL. A present
 * value overwrites, an absent one is not set, so the stored value stays (contract section
 * 5) and UPDATE OF triggers, column privileges and audit see only what the call sent.
 * WK_LOCKED updates the version the look-up locked, the merged name in $2; WK_BY_LEAD_ID
 * finds its lead by the lead id itself ($2 is a full_name sent, and a name part sent
 * without one rebuilds the name from the row it updates, so a concurrent change of the
 * stored parts is merged as after the look-up's lock).
 */
static char *
update_sql(uint64 shape, WriteKind kind)
{
	StringInfoData upd;

	initStringInfo(&upd);
	appendStringInfoString(&upd, "UPDATE leadintake.leads AS l SET updated_at = pg_catalog.now()");
	if (shape & SHAPE_BIT(P_FULL_NAME))
		appendStringInfoString(&upd, ", full_name = $2");
	else if (kind == WK_BY_LEAD_ID && shape_has_name_part(shape))
	{
		appendStringInfoString(&upd, ", full_name = ");
		append_rebuilt_name(&upd, shape);
	}
	if (shape & SHAPE_BIT(P_PHONE))
		appendStringInfoString(&upd, ", phone = $3");
	if (shape & SHAPE_BIT(P_PHONE_E164))
		appendStringInfoString(&upd, ", phone_e164 = $4");
	else if (kind == WK_BY_LEAD_ID && (shape & SHAPE_BIT(P_PHONE)) && has_phone_valid)
		append_phone_derived(&upd);
	if (shape & SHAPE_BIT(P_EXTRA))
		appendStringInfoString(&upd, ", extra = l.extra OPERATOR(pg_catalog.||) $5");
	if (shape & SHAPE_BIT(P_DIALER_LEAD_ID))
		appendStringInfoString(&upd, ", dialer_lead_id = coalesce(l.dialer_lead_id, $6)");
	if ((shape & SHAPE_BIT(P_PHONE_VALID)) && has_phone_valid)
		appendStringInfoString(&upd, ", phone_valid = $7");
	for (int i = P_FIRST_FIELD; i < nparams; i++)
		if (shape & SHAPE_BIT(i))
			appendStringInfo(&upd, ", %s = $%d%s",
							 quote_identifier(li_fields[param_field[i]].column), i + 1,
							 type_cast(li_fields[param_field[i]].kind));
	if (kind == WK_BY_LEAD_ID)
		appendStringInfoString(&upd, " WHERE l.dialer_lead_id OPERATOR(pg_catalog.=) $6");
	else
		/* by ctid: the row is locked, so that is its version; no index descent */
		appendStringInfo(
			&upd, " WHERE l.ctid OPERATOR(pg_catalog.=) $%d AND l.id OPERATOR(pg_catalog.=) $1",
			P_TID + 1);
	append_returning(&upd);
	return upd.data;
}

/*
 * The write's plan for this call's shape and kind. A backend keeps the plans of the
 * PLAN_SHAPES it used last; another replaces the least recently used, so a client varying
 * its fields costs a prepare per call, never memory.
 */
static struct
{
	uint64 shape;
	WriteKind kind;
	uint64 used; /* when it was last used: a count of writes */
	SPIPlanPtr plan;
} shapes[PLAN_SHAPES];

static char *insert_sql(uint64 shape, bool claiming);

static SPIPlanPtr
write_plan_for(const char *nulls, WriteKind kind)
{
	static uint64 writes = 0;
	uint64 shape = 0;
	int oldest = 0;
	char *sql;

	for (int i = P_FULL_NAME; i < nparams; i++)
		if (nulls[i] == ' ')
			shape |= SHAPE_BIT(i);
	writes++;
	for (int i = 0; i < PLAN_SHAPES; i++)
	{
		if (shapes[i].plan && shapes[i].shape == shape && shapes[i].kind == kind)
		{
			shapes[i].used = writes;
			return shapes[i].plan;
		}
		if (shapes[i].used < shapes[oldest].used)
			oldest = i;
	}
	if (shapes[oldest].plan)
		SPI_freeplan(shapes[oldest].plan);
	shapes[oldest].plan = NULL; /* until the new one is kept */
	sql = kind == WK_INSERT || kind == WK_CLAIMING ? insert_sql(shape, kind == WK_CLAIMING)
												   : update_sql(shape, kind);
	shapes[oldest].plan = li_keep_plan(sql, P_TID + 1, param_types);
	shapes[oldest].shape = shape;
	shapes[oldest].kind = kind;
	shapes[oldest].used = writes;
	return shapes[oldest].plan;
}

static void
forget_leads(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == leads_relid)
	{
		leads_changed = true;
		leads_relid = InvalidOid; /* dropped and made again, it has another oid */
	}
}

/* Whether leads has phone_valid (and, once, where leads is). */
static bool
leads_has_phone_valid(void)
{
	if (!OidIsValid(leads_relid))
	{
		Oid nsp = get_namespace_oid("leadintake", true);

		leads_relid = OidIsValid(nsp) ? get_relname_relid("leads", nsp) : InvalidOid;
	}
	return OidIsValid(leads_relid) && get_attnum(leads_relid, "phone_valid") != InvalidAttrNumber;
}

/* The insert and the update statements, to be made again (claims do not change). */
static void
forget_lead_plans(void)
{
	nparams = 0;
	for (int i = 0; i < PLAN_SHAPES; i++)
	{
		if (shapes[i].plan)
			SPI_freeplan(shapes[i].plan);
		shapes[i].plan = NULL;
		shapes[i].used = 0;
	}
}

/*
 * The INSERT of a new lead for one shape: a column for each parameter that is not NULL, so a
 * column the call did not send takes its default and, as with the UPDATE, triggers, column
 * privileges and audit see only what the call sent. With claiming, it first claims the phone
 * ($4) when no lead has it, and inserts only when it did: what claim_phone and insert_lead
 * do, in one statement.
 */
static char *
insert_sql(uint64 shape, bool claiming)
{
	StringInfoData ins, values;

	initStringInfo(&ins);
	initStringInfo(&values);
	if (claiming)
		appendStringInfo(
			&ins,
			"WITH claim AS (INSERT INTO leadintake.phone_claims (phone_e164) SELECT $%d"
			" WHERE NOT EXISTS (SELECT FROM leadintake.leads"
			" WHERE phone_e164 OPERATOR(pg_catalog.=) $%d)"
			" ON CONFLICT (phone_e164) DO NOTHING RETURNING 1) ",
			P_PHONE_E164 + 1, P_PHONE_E164 + 1);
	appendStringInfo(&ins, "INSERT INTO leadintake.leads AS l (%s", derived_columns[P_AGENT_ID]);
	appendStringInfoString(&values, "$1");
	for (int i = P_FULL_NAME; i < nparams; i++)
	{
		if (!(shape & SHAPE_BIT(i)) || (i == P_PHONE_VALID && !has_phone_valid))
			continue;
		appendStringInfo(&ins, ", %s",
						 i < P_FIRST_FIELD ? derived_columns[i]
										   : quote_identifier(li_fields[param_field[i]].column));
		appendStringInfo(&values, ", $%d%s", i + 1,
						 i < P_FIRST_FIELD ? "" : type_cast(li_fields[param_field[i]].kind));
	}
	appendStringInfo(&ins, claiming ? ") SELECT %s FROM claim" : ") VALUES (%s)", values.data);
	appendStringInfoString(&ins, " ON CONFLICT (dialer_lead_id) DO NOTHING");
	append_returning(&ins);
	return ins.data;
}

static void
prepare_plans(void)
{
	Oid two_text[2] = {TEXTOID, TEXTOID};
	static bool callback = false;

	if (!callback)
	{
		CacheRegisterRelcacheCallback(forget_leads, (Datum) 0);
		callback = true;
	}
	leads_changed = false;
	has_phone_valid = leads_has_phone_valid();

	/* A claim that is new needs no more; one that exists is locked, then the lead re-read. */
	if (claim_plan == NULL)
		claim_plan = li_keep_plan("INSERT INTO leadintake.phone_claims (phone_e164) VALUES ($1)"
								  " ON CONFLICT (phone_e164) DO NOTHING",
								  1, two_text);
	if (lock_claim_plan == NULL)
		lock_claim_plan = li_keep_plan("SELECT 1 FROM leadintake.phone_claims"
									   " WHERE phone_e164 OPERATOR(pg_catalog.=) $1 FOR UPDATE",
									   1, two_text);

	param_types[P_AGENT_ID] = INT8OID;
	param_types[P_FULL_NAME] = TEXTOID;
	param_types[P_PHONE] = TEXTOID;
	param_types[P_PHONE_E164] = TEXTOID;
	param_types[P_EXTRA] = JSONBOID;
	param_types[P_DIALER_LEAD_ID] = TEXTOID;
	param_types[P_PHONE_VALID] = BOOLOID;
	nparams = P_FIRST_FIELD;
	for (int f = 0; f < LI_NFIELDS; f++)
	{
		if (!stored_directly(f))
			continue;
		param_field[nparams] = f;
		field_param[f] = nparams;
		param_types[nparams] = TEXTOID;
		nparams++;
	}
	param_types[P_TID] = TIDOID;
}

/* True when this call made the claim; false after waiting for and locking another's. */
static bool
claim_phone(const char *e164)
{
	Datum value = CStringGetTextDatum(e164);

	if (SPI_execute_plan(claim_plan, &value, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "phone claim failed");
	if (SPI_processed == 1)
		return true;
	if (SPI_execute_plan(lock_claim_plan, &value, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "phone claim failed");
	return false;
}

/*
 * The row a write returned, deformed into li_lead_columns() order. The columns are found by
 * name once per version of the row type (a column dropped and added moves them).
 */
static void
lead_row(Datum written, LeadRow *lead)
{
	static AttrNumber attnum[LC_NOWN + LI_NFIELDS];
	static uint64 mapped_version = 0;
	int ncols;
	const LeadColumn *cols = li_lead_columns(&ncols);
	HeapTupleHeader h = DatumGetHeapTupleHeader(written);
	Oid type = HeapTupleHeaderGetTypeId(h);
	int32 typmod = HeapTupleHeaderGetTypMod(h);
	TupleDesc desc = lookup_rowtype_tupdesc(type, typmod);
	uint64 version = assign_record_type_identifier(type, typmod);
	HeapTupleData tuple = {.t_len = HeapTupleHeaderGetDatumLength(h), .t_data = h};
	Datum *all = palloc(desc->natts * sizeof(Datum));
	bool *allnull = palloc(desc->natts * sizeof(bool));

	if (mapped_version != version)
	{
		for (int i = 0; i < ncols; i++)
			if ((attnum[i] = SPI_fnumber(desc, cols[i].column)) <= 0)
			{
				/* before ALTER EXTENSION UPDATE to 1.5: shown as null */
				if (i == LC_PHONE_VALID)
					attnum[i] = InvalidAttrNumber;
				else
					elog(ERROR, "column \"%s\" of leadintake.leads is missing", cols[i].column);
			}
		mapped_version = version;
	}
	ItemPointerSetInvalid(&tuple.t_self);
	heap_deform_tuple(&tuple, desc, all, allnull);
	lead->values = palloc(ncols * sizeof(Datum));
	lead->nulls = palloc(ncols * sizeof(bool));
	for (int i = 0; i < ncols; i++)
	{
		lead->values[i] = attnum[i] ? all[attnum[i] - 1] : (Datum) 0;
		lead->nulls[i] = attnum[i] ? allnull[attnum[i] - 1] : true;
	}
	ReleaseTupleDesc(desc);
}

/* One write of the lead; false when it touched no row. The lead as stored, into *lead. */
static bool
write_lead(SPIPlanPtr plan, Datum *values, char *nulls, LeadRow *lead)
{
	int rc = SPI_execute_plan(plan, values, nulls, false, 0);
	bool isnull;

	if (rc != SPI_OK_INSERT_RETURNING && rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "lead write failed");
	if (SPI_processed != 1)
		return false;
	lead_row(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull), lead);
	return true;
}

/* One call's upsert: the payload, the statements' parameters, and the lead as written. */
typedef struct Upsert
{
	Payload *p;
	Datum values[MAX_PARAMS + 1];
	char nulls[MAX_PARAMS + 1];
	LeadRow *lead;
} Upsert;

/*
 * Update the lead just locked: present fields overwrite, derived values follow the merged
 * lead, status and agent stay (contract section 5). The statement is the one for the
 * call's shape: the set of parameters that are not NULL.
 */
static void
update_locked(Upsert *u, FoundLead *found)
{
	Payload *p = u->p;
	char *full_name = p->values[F_FULL_NAME];
	char *phone = p->phone ? p->phone : found->column[FL_PHONE];
	char *e164 = NULL;
	bool valid = false;

	u->values[P_CRM_LEAD_ID] = Int64GetDatum(found->crm_lead_id);
	u->nulls[P_CRM_LEAD_ID] = ' ';
	u->values[P_TID] = PointerGetDatum(&found->tid);
	u->nulls[P_TID] = ' ';
	if (full_name == NULL && p->name_part_sent)
		full_name = li_build_full_name(
			p->values[F_FIRST_NAME] ? p->values[F_FIRST_NAME] : found->column[FL_FIRST_NAME],
			p->values[F_MIDDLE_INITIAL] ? p->values[F_MIDDLE_INITIAL]
										: found->column[FL_MIDDLE_INITIAL],
			p->values[F_LAST_NAME] ? p->values[F_LAST_NAME] : found->column[FL_LAST_NAME]);
	if (p->phone || p->values[F_PHONE_CODE])
		e164 = li_phone_parse(
			phone, p->values[F_PHONE_CODE] ? p->values[F_PHONE_CODE] : found->column[FL_PHONE_CODE],
			&valid);
	/* NULL keeps the stored value; phone_valid is set with the phone it judges */
	u->values[P_FULL_NAME] = li_text_or_null(full_name, &u->nulls[P_FULL_NAME]);
	u->values[P_PHONE_E164] = li_text_or_null(e164, &u->nulls[P_PHONE_E164]);
	u->values[P_PHONE_VALID] = BoolGetDatum(valid);
	u->nulls[P_PHONE_VALID] = (p->phone || p->values[F_PHONE_CODE]) && phone ? ' ' : 'n';
	if (!write_lead(write_plan_for(u->nulls, WK_LOCKED), u->values, u->nulls, u->lead))
		elog(ERROR, "locked lead disappeared");
}

/*
 * Whether the call's lead, if it has its lead id, can be updated without a look-up first:
 * the merge then needs no stored value but the name parts, which the statement reads. A
 * phone sent without its code (or the reverse) is parsed with the stored one: looked up.
 */
static bool
merge_in_statement(Payload *p)
{
	return p->values[F_DIALER_LEAD_ID] != NULL &&
		   (p->phone != NULL) == (p->values[F_PHONE_CODE] != NULL);
}

/*
 * The lead with the call's lead id, updated by one statement that finds and locks it: the
 * values update_locked would give it, since the merge needs nothing stored but the name and
 * the phone's (append_phone_derived). False when no lead has that lead id (or none the
 * caller may see).
 */
static bool
update_by_lead_id(Upsert *u)
{
	Payload *p = u->p;

	u->nulls[P_CRM_LEAD_ID] = 'n';
	u->nulls[P_TID] = 'n';
	u->values[P_FULL_NAME] = li_text_or_null(p->values[F_FULL_NAME], &u->nulls[P_FULL_NAME]);
	/* before 1.5's phone_valid, the statement cannot tell a stored phone parsed: C parses */
	if (!has_phone_valid)
		li_parse_phone(p);
	u->values[P_PHONE_E164] = li_text_or_null(p->phone_e164, &u->nulls[P_PHONE_E164]);
	u->values[P_PHONE_VALID] = BoolGetDatum(p->phone_valid);
	u->nulls[P_PHONE_VALID] = p->phone && p->phone_parsed ? ' ' : 'n';
	return write_lead(write_plan_for(u->nulls, WK_BY_LEAD_ID), u->values, u->nulls, u->lead);
}

typedef struct Adopting
{
	Upsert *u;
	FoundLead *found;
} Adopting;

static void
adopting_update(void *arg)
{
	Adopting *a = arg;

	update_locked(a->u, a->found);
}

/*
 * update_locked, except when the lead was found by phone and takes the call's lead id (it
 * had none): a concurrent caller may have created a lead with that id meanwhile, and the
 * unique index then refuses this update once that caller commits. Only that case runs in a
 * subtransaction; it returns false after such a refusal, and the caller finds again (now
 * the other lead, by id), as if the two calls had run one after the other.
 */
static bool
update_adopting(Upsert *u, FoundLead *found)
{
	Adopting a = {u, found};
	ErrorData *edata;

	if (u->p->values[F_DIALER_LEAD_ID] == NULL || found->column[FL_DIALER_LEAD_ID] != NULL)
	{
		update_locked(u, found);
		return true;
	}
	edata = li_subtransaction(adopting_update, &a);
	if (edata && edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
		ReThrowError(edata);
	return edata == NULL;
}

/*
 * INSERT ... ON CONFLICT (dialer_lead_id) DO NOTHING: false when that lead id exists (or,
 * with WK_CLAIMING, when a lead has the phone or its claim was taken).
 */
static bool
insert_lead(Upsert *u, Agent *agent, WriteKind kind)
{
	u->values[P_AGENT_ID] = Int64GetDatum(agent->id);
	u->nulls[P_AGENT_ID] = ' ';
	u->nulls[P_TID] = 'n';
	u->values[P_FULL_NAME] = li_text_or_null(u->p->full_name, &u->nulls[P_FULL_NAME]);
	u->values[P_PHONE_E164] = li_text_or_null(u->p->phone_e164, &u->nulls[P_PHONE_E164]);
	u->values[P_PHONE_VALID] = BoolGetDatum(u->p->phone_valid);
	u->nulls[P_PHONE_VALID] = u->p->phone ? ' ' : 'n';
	return write_lead(write_plan_for(u->nulls, kind), u->values, u->nulls, u->lead);
}

/*
 * Find the lead by the dialer's lead id, else by phone (the oldest), else create it. A
 * creation by phone first takes the phone's claim row, so concurrent callers for one number
 * queue there and then find the winner's lead; a creation by lead id relies on the unique
 * index. Both wait on tuples, never on a lock-table entry held to commit.
 */
static bool
upsert(Upsert *u, Agent *agent)
{
	const char *dialer_lead_id = u->p->values[F_DIALER_LEAD_ID];
	const char *e164;
	bool merged = merge_in_statement(u->p);
	FoundLead found;
	bool insert_lost = false;

	/*
	 * The common cases in one statement each: the lead with the call's lead id updated, else
	 * (none has it) a new lead created when no lead has the phone and its claim is free.
	 * Anything else takes the look-up below. Only the update may do without the parse.
	 */
	if (merged && update_by_lead_id(u))
		return false;
	li_parse_phone(u->p);
	e164 = u->p->phone_e164;
	if (merged && insert_lead(u, agent, e164 ? WK_CLAIMING : WK_INSERT))
		return true;
	for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++)
	{
		if ((dialer_lead_id || e164) && li_find_lead(dialer_lead_id, e164, &found))
		{
			if (update_adopting(u, &found))
				return false;
			continue; /* its lead id was just created by another caller: merge into that */
		}
		/* Someone else created a lead for this phone, or is about to: queue, then re-read. */
		if (e164 && !claim_phone(e164) && li_find_lead(dialer_lead_id, e164, &found))
		{
			update_locked(u, &found);
			return false;
		}
		if (insert_lead(u, agent, WK_INSERT))
			return true;

		/*
		 * A concurrent caller created this lead id and has committed: update theirs. Unless
		 * the look-up, with a snapshot taken after that commit, did not see it either: then
		 * the row is there but hidden from this role, and no retry will change that.
		 */
		if (insert_lost)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("a lead with lead_id \"%s\" exists that the current role cannot see",
							dialer_lead_id),
					 errdetail("Row-level security on leadintake.leads hides it: the call can "
							   "neither update it nor create another lead with that lead_id.")));
		insert_lost = true;
	}
	ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					errmsg("could not store the lead because of concurrent changes"),
					errhint("Retry the request.")));
}

/*
 * Store a valid payload as its lead for agent: true when the call created it. *lead is the
 * lead as stored, in li_lead_columns() order.
 */
bool
li_store_lead(Payload *p, Agent *agent, LeadRow *lead)
{
	Upsert u = {.p = p, .lead = lead};

	if (nparams && leads_changed && leads_has_phone_valid() != has_phone_valid)
		forget_lead_plans();
	leads_changed = false;
	if (nparams == 0)
		prepare_plans();
	u.values[P_PHONE] = li_text_or_null(p->phone, &u.nulls[P_PHONE]);
	u.values[P_EXTRA] = p->extra ? JsonbPGetDatum(p->extra) : (Datum) 0;
	u.nulls[P_EXTRA] = p->extra ? ' ' : 'n';
	u.values[P_DIALER_LEAD_ID] =
		li_text_or_null(p->values[F_DIALER_LEAD_ID], &u.nulls[P_DIALER_LEAD_ID]);
	for (int i = P_FIRST_FIELD; i < nparams; i++)
		u.values[i] = li_text_or_null(p->values[param_field[i]], &u.nulls[i]);
	return upsert(&u, agent);
}
