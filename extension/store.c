/*
 * store.c: the race-free upsert of a lead (contract section 5) and the intake_log row,
 * through SPI plans prepared once per backend and kept, and rowwrite.c for the writes.
 */
#include "leadintake.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/typcache.h"

/*
 * The insert and the update share one parameter layout: $1 the agent (insert) or the lead
 * (update), then the derived values, then one parameter per stored dialer field.
 */
enum
{
	P_ID,
	P_FULL_NAME,
	P_PHONE,
	P_PHONE_E164,
	P_EXTRA,
	P_DIALER_LEAD_ID,
	P_FIRST_FIELD
};

#define MAX_PARAMS (P_FIRST_FIELD + LI_NFIELDS)
/* After the fields, the update's last parameter: the locked version's ctid. */
#define P_TID nparams

/* A call's shape: bit i set when parameter $(i + 1) is not NULL. */
#define SHAPE_BIT(i)  (UINT64CONST(1) << (i))
#define ALL_SHAPES    (~UINT64CONST(0))
#define UPDATE_SHAPES 16
StaticAssertDecl(MAX_PARAMS <= 64, "a shape is a 64-bit set of parameters");

/* At most this many rounds of "someone else created it first" before giving up. */
#define MAX_ATTEMPTS 8

static SPIPlanPtr claim_plan, lock_claim_plan, insert_plan, update_plan, log_plan;
static int nparams;
static Oid param_types[MAX_PARAMS + 1];
static FieldId param_field[MAX_PARAMS];

SPIPlanPtr
li_keep_plan(const char *sql, int nargs, Oid *types)
{
	/* Every statement is an index look-up or a single-row write: a generic plan is right. */
	SPIPlanPtr plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL)
		elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
	if (SPI_keepplan(plan) != 0)
		elog(ERROR, "could not keep the plan of \"%s\"", sql);
	return plan;
}

/* A dialer field stored from its own parameter (the derived ones have theirs). */
static bool
stored_directly(FieldId f)
{
	return li_fields[f].column != NULL && f != F_LEAD_ID && f != F_FULL_NAME && f != F_PHONE;
}

/*
 * The column type of a dialer field of each kind, and the statements' cast to it from the
 * text parameter; kinds not listed are text columns.
 */
static const struct
{
	Oid type;
	const char *cast;
} kind_columns[] = {
	[FK_DATE] = {DATEOID, "::pg_catalog.date"},
	[FK_DATETIME] = {TIMESTAMPOID, "::pg_catalog.timestamp"},
	[FK_INT] = {INT8OID, "::pg_catalog.int8"},
	[FK_IP] = {INETOID, "::pg_catalog.inet"},
	[FK_OFFSET] = {NUMERICOID, "::pg_catalog.numeric"},
};

static const char *
type_cast(FieldKind kind)
{
	return kind < lengthof(kind_columns) && kind_columns[kind].cast ? kind_columns[kind].cast : "";
}

static Oid
field_type(FieldKind kind)
{
	return kind < lengthof(kind_columns) && kind_columns[kind].cast ? kind_columns[kind].type
																	: TEXTOID;
}

/* The insert's and the update's first columns, one per parameter before the fields. */
static const char *const derived_columns[P_FIRST_FIELD] = {
	[P_ID] = "assigned_agent_id", [P_FULL_NAME] = "full_name",
	[P_PHONE] = "phone",          [P_PHONE_E164] = "phone_e164",
	[P_EXTRA] = "extra",          [P_DIALER_LEAD_ID] = "dialer_lead_id"};

/* intake_log's columns in li_log's order, and the types of the values it gives them. */
#define LOG_NCOLS 11
static const char *const log_columns[LOG_NCOLS] = {
	"received_at", "source",  "key_name",    "client_addr", "status",  "error",
	"lead_id",     "created", "duration_ms", "payload",     "raw_body"};
static const Oid log_types[LOG_NCOLS] = {TIMESTAMPTZOID, TEXTOID,  TEXTOID, INETOID,
										 INT4OID,        TEXTOID,  INT8OID, BOOLOID,
										 FLOAT8OID,      JSONBOID, TEXTOID};

/*
 * The lead's columns the response shows, in the order li_success_response reads them. The
 * writes return the whole row (RETURNING l): a projection of 58 columns, built at every
 * execution, cost more than deforming the one composite value here.
 */
const char *const *
li_lead_columns(int *n)
{
	static const char **cols = NULL;
	static int ncols = 0;

	if (cols == NULL)
	{
		const char **c = MemoryContextAlloc(TopMemoryContext, (LI_NFIELDS + 8) * sizeof(char *));

		c[ncols++] = "id";
		c[ncols++] = "status";
		for (int f = 0; f < LI_NFIELDS; f++)
			if (li_fields[f].column)
				c[ncols++] = li_fields[f].column;
		c[ncols++] = "phone_e164";
		c[ncols++] = "extra";
		c[ncols++] = "created_at";
		c[ncols++] = "updated_at";
		c[ncols++] = "assigned_agent_id";
		cols = c;
	}
	*n = ncols;
	return cols;
}

/* The map of lead_row, made again after any change to leads (a column dropped and added). */
static Oid mapped_type = InvalidOid;
static Oid mapped_rel = InvalidOid;

static void
forget_row_type(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == mapped_rel)
		mapped_type = InvalidOid;
}

/*
 * Deform the row a write returned into li_lead_columns() order. The attribute numbers are
 * found by name once, and again after leads changes.
 */
static void
lead_row(Datum written, LeadRow *row)
{
	static AttrNumber *attnum = NULL;
	int ncols;
	const char *const *cols = li_lead_columns(&ncols);
	HeapTupleHeader h = DatumGetHeapTupleHeader(written);
	TupleDesc desc =
		lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(h), HeapTupleHeaderGetTypMod(h));
	HeapTupleData tuple;
	Datum *all = palloc(desc->natts * sizeof(Datum));
	bool *allnull = palloc(desc->natts * sizeof(bool));

	if (mapped_type != HeapTupleHeaderGetTypeId(h))
	{
		if (attnum == NULL)
		{
			attnum = MemoryContextAlloc(TopMemoryContext, (LI_NFIELDS + 8) * sizeof(AttrNumber));
			CacheRegisterRelcacheCallback(forget_row_type, (Datum) 0);
		}
		mapped_type = InvalidOid; /* until the whole map is made */
		for (int i = 0; i < ncols; i++)
			if ((attnum[i] = SPI_fnumber(desc, cols[i])) <= 0)
				elog(ERROR, "column \"%s\" of leadintake.leads is missing", cols[i]);
		mapped_type = HeapTupleHeaderGetTypeId(h);
		mapped_rel = get_typ_typrelid(mapped_type);
	}
	tuple.t_len = HeapTupleHeaderGetDatumLength(h);
	ItemPointerSetInvalid(&tuple.t_self);
	tuple.t_tableOid = InvalidOid;
	tuple.t_data = h;
	heap_deform_tuple(&tuple, desc, all, allnull);
	row->values = palloc(ncols * sizeof(Datum));
	row->nulls = palloc(ncols * sizeof(bool));
	for (int i = 0; i < ncols; i++)
	{
		row->values[i] = all[attnum[i] - 1];
		row->nulls[i] = allnull[attnum[i] - 1];
	}
	ReleaseTupleDesc(desc);
}

/*
 * The UPDATE of a locked lead for one shape: the set of parameters that are not NULL. A
 * present value overwrites, an absent one keeps the stored value (contract section 5);
 * ALL_SHAPES is the statement for any call, each column coalesce($n, l.column).
 */
static char *
update_sql(uint64 shape)
{
	StringInfoData upd;
	bool any = shape == ALL_SHAPES;

	initStringInfo(&upd);
	appendStringInfoString(&upd, "UPDATE leadintake.leads AS l SET updated_at = pg_catalog.now()");
	if (any || (shape & SHAPE_BIT(P_FULL_NAME)))
		appendStringInfoString(&upd, any ? ", full_name = coalesce($2, l.full_name)"
										 : ", full_name = $2");
	if (any || (shape & SHAPE_BIT(P_PHONE)))
		appendStringInfoString(&upd, any ? ", phone = coalesce($3, l.phone)" : ", phone = $3");
	if (any || (shape & SHAPE_BIT(P_PHONE_E164)))
		appendStringInfoString(&upd, any ? ", phone_e164 = coalesce($4, l.phone_e164)"
										 : ", phone_e164 = $4");
	if (any || (shape & SHAPE_BIT(P_EXTRA)))
		appendStringInfoString(&upd, ", extra = l.extra OPERATOR(pg_catalog.||)"
									 " coalesce($5, '{}'::pg_catalog.jsonb)");
	if (any || (shape & SHAPE_BIT(P_DIALER_LEAD_ID)))
		appendStringInfoString(&upd, ", dialer_lead_id = coalesce(l.dialer_lead_id, $6)");
	for (int i = P_FIRST_FIELD; i < nparams; i++)
	{
		const DialerField *f = &li_fields[param_field[i]];

		if (any)
			appendStringInfo(&upd, ", %s = coalesce($%d%s, l.%s)", quote_identifier(f->column),
							 i + 1, type_cast(f->kind), quote_identifier(f->column));
		else if (shape & SHAPE_BIT(i))
			appendStringInfo(&upd, ", %s = $%d%s", quote_identifier(f->column), i + 1,
							 type_cast(f->kind));
	}
	/* by ctid: the row is locked, so that is its version; no index descent */
	appendStringInfo(&upd,
					 " WHERE l.ctid OPERATOR(pg_catalog.=) $%d AND l.id OPERATOR(pg_catalog.=) $1"
					 " RETURNING l",
					 P_TID + 1);
	return upd.data;
}

/*
 * The UPDATE plan for this call's shape. Setting only the columns a call sends makes the
 * statement compute a third of the columns (most payloads carry about 20 of 50 fields).
 * A backend keeps the plans of its first UPDATE_SHAPES shapes; any other uses the
 * statement for all shapes, so a client varying its fields cannot grow memory.
 */
static SPIPlanPtr
update_plan_for(const char *nulls)
{
	static struct
	{
		uint64 shape;
		SPIPlanPtr plan;
	} shapes[UPDATE_SHAPES];
	static int nshapes = 0;
	uint64 shape = 0;

	for (int i = P_FULL_NAME; i < nparams; i++)
		if (nulls[i] == ' ')
			shape |= SHAPE_BIT(i);
	for (int i = 0; i < nshapes; i++)
		if (shapes[i].shape == shape)
			return shapes[i].plan;
	if (nshapes == UPDATE_SHAPES)
		return update_plan;
	shapes[nshapes].plan = li_keep_plan(update_sql(shape), P_TID + 1, param_types);
	shapes[nshapes].shape = shape;
	return shapes[nshapes++].plan;
}

static void
prepare_plans(void)
{
	Oid two_text[2] = {TEXTOID, TEXTOID};
	StringInfoData ins;
	StringInfoData log;

	/* A claim that is new needs no more; one that exists is locked, then the lead re-read. */
	claim_plan = li_keep_plan("INSERT INTO leadintake.phone_claims (phone_e164) VALUES ($1)"
							  " ON CONFLICT (phone_e164) DO NOTHING",
							  1, two_text);
	lock_claim_plan = li_keep_plan("SELECT 1 FROM leadintake.phone_claims"
								   " WHERE phone_e164 OPERATOR(pg_catalog.=) $1 FOR UPDATE",
								   1, two_text);

	param_types[P_ID] = INT8OID;
	param_types[P_FULL_NAME] = TEXTOID;
	param_types[P_PHONE] = TEXTOID;
	param_types[P_PHONE_E164] = TEXTOID;
	param_types[P_EXTRA] = JSONBOID;
	param_types[P_DIALER_LEAD_ID] = TEXTOID;
	nparams = P_FIRST_FIELD;

	initStringInfo(&ins);
	appendStringInfoString(&ins, "INSERT INTO leadintake.leads AS l (");
	for (int i = 0; i < P_FIRST_FIELD; i++)
		appendStringInfo(&ins, "%s%s", i ? ", " : "", derived_columns[i]);
	for (int f = 0; f < LI_NFIELDS; f++)
	{
		if (!stored_directly(f))
			continue;
		param_field[nparams] = f;
		param_types[nparams] = TEXTOID;
		nparams++;
		appendStringInfo(&ins, ", %s", quote_identifier(li_fields[f].column));
	}
	appendStringInfoString(&ins, ") VALUES ($1, $2, $3, $4,"
								 " coalesce($5, '{}'::pg_catalog.jsonb), $6");
	for (int i = P_FIRST_FIELD; i < nparams; i++)
		appendStringInfo(&ins, ", $%d%s", i + 1, type_cast(li_fields[param_field[i]].kind));
	appendStringInfoString(&ins, ") ON CONFLICT (dialer_lead_id) DO NOTHING RETURNING l");

	param_types[P_TID] = TIDOID;
	insert_plan = li_keep_plan(ins.data, nparams, param_types);
	update_plan = li_keep_plan(update_sql(ALL_SHAPES), P_TID + 1, param_types);

	initStringInfo(&log);
	appendStringInfoString(&log, "INSERT INTO leadintake.intake_log (");
	for (int i = 0; i < LOG_NCOLS; i++)
		appendStringInfo(&log, "%s%s", i ? ", " : "", log_columns[i]);
	appendStringInfoString(&log, ") VALUES (");
	for (int i = 0; i < LOG_NCOLS; i++)
		appendStringInfo(&log, "%s$%d", i ? ", " : "", i + 1);
	appendStringInfoString(&log, ") RETURNING id");
	log_plan = li_keep_plan(log.data, LOG_NCOLS, (Oid *) log_types);
}

static inline Datum
text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}

/* True when this call made the claim; false after waiting for and locking another's. */
static bool
claim_phone(const char *e164)
{
	Datum value = CStringGetTextDatum(e164);

	/* (as a statement: rowwrite.c's start-up costs what this one-column insert does) */
	if (SPI_execute_plan(claim_plan, &value, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "phone claim failed");
	if (SPI_processed == 1)
		return true;
	if (SPI_execute_plan(lock_claim_plan, &value, NULL, false, 0) != SPI_OK_SELECT)
		elog(ERROR, "phone claim failed");
	return false;
}

/* The lead as the last write of this call stored it (RETURNING l), for lead_row(). */
static Datum written_row;

static bool
write_lead(SPIPlanPtr plan, Datum *values, char *nulls)
{
	int rc = SPI_execute_plan(plan, values, nulls, false, 0);
	bool isnull;

	if (rc != SPI_OK_INSERT_RETURNING && rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "lead write failed");
	if (SPI_processed != 1)
		return false;
	written_row = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	return true;
}

/*
 * The lead's columns as rowwrite.c takes them: the insert statement's, each field's value of
 * its column's type (not text); the update's the same and updated_at.
 */
static RowTarget *insert_target, *update_target;
static const char *lead_columns[MAX_PARAMS + 1];
static Oid lead_types[MAX_PARAMS + 1];
static FmgrInfo input[MAX_PARAMS];
static Oid ioparam[MAX_PARAMS];
static Datum empty_extra;

static void
prepare_targets(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	for (int i = 0; i < nparams; i++)
	{
		lead_columns[i] = i < P_FIRST_FIELD ? derived_columns[i] : li_fields[param_field[i]].column;
		lead_types[i] =
			i < P_FIRST_FIELD ? param_types[i] : field_type(li_fields[param_field[i]].kind);
		if (lead_types[i] != TEXTOID && i >= P_FIRST_FIELD)
		{
			Oid fn;

			getTypeInputInfo(lead_types[i], &fn, &ioparam[i]);
			fmgr_info(fn, &input[i]);
		}
	}
	lead_columns[nparams] = "updated_at";
	lead_types[nparams] = TIMESTAMPTZOID;
	empty_extra = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
	insert_target =
		li_row_target("leads", nparams, lead_columns, lead_types, "*", "dialer_lead_id");
	update_target = li_row_target("leads", nparams + 1, lead_columns, lead_types, "*", NULL);
	MemoryContextSwitchTo(old);
}

/* The statements' parameters as their casts make them: text to the column's type. */
static void
typed_values(const Datum *values, const char *nulls, Datum *typed, bool *isnull)
{
	if (insert_target == NULL)
		prepare_targets();
	for (int i = 0; i < nparams; i++)
	{
		isnull[i] = nulls[i] == 'n';
		typed[i] = values[i];
		if (!isnull[i] && i >= P_FIRST_FIELD && lead_types[i] != TEXTOID)
			typed[i] = InputFunctionCall(&input[i], TextDatumGetCString(values[i]), ioparam[i], -1);
	}
}

/*
 * A new lead, inserted as INSERT ... ON CONFLICT (dialer_lead_id) DO NOTHING would insert it
 * (rowwrite.c), with the values the insert statement takes; the statement where rowwrite.c
 * cannot stand for it. False when a lead with that lead id exists after all.
 */
static bool
insert_lead(Datum *values, char *nulls)
{
	Datum typed[MAX_PARAMS];
	bool isnull[MAX_PARAMS];
	RowOutcome outcome;

	typed_values(values, nulls, typed, isnull);
	if (isnull[P_EXTRA])
	{
		typed[P_EXTRA] = empty_extra;
		isnull[P_EXTRA] = false;
	}
	outcome = li_insert_row(insert_target, typed, isnull, &written_row);
	if (outcome == ROW_BY_STATEMENT)
		return write_lead(insert_plan, values, nulls);
	return outcome == ROW_INSERTED;
}

/*
 * The locked lead at tid updated as update_sql()'s statement for this call's shape would
 * update it (rowwrite.c), or by that statement. False when the row was not there.
 */
static bool
update_lead(Datum *values, char *nulls, ItemPointer tid)
{
	Datum typed[MAX_PARAMS + 1];
	bool isnull[MAX_PARAMS + 1];
	RowSet how[MAX_PARAMS + 1];

	typed_values(values, nulls, typed, isnull);
	/* a value sent overwrites; none keeps the stored one; the agent stays */
	for (int i = 0; i < nparams; i++)
		how[i] = isnull[i] ? SET_KEEP : SET_VALUE;
	how[P_ID] = SET_KEEP;
	if (!isnull[P_EXTRA])
		how[P_EXTRA] = SET_CONCAT;
	if (!isnull[P_DIALER_LEAD_ID])
		how[P_DIALER_LEAD_ID] = SET_IF_NULL;
	typed[nparams] = TimestampTzGetDatum(GetCurrentTransactionStartTimestamp()); /* now() */
	isnull[nparams] = false;
	how[nparams] = SET_VALUE;
	if (li_update_row(update_target, tid, typed, isnull, how, &written_row) != ROW_BY_STATEMENT)
		return true;
	return write_lead(update_plan_for(nulls), values, nulls);
}

/*
 * Update the lead just locked: present fields overwrite, derived values follow the merged
 * lead, status and agent stay (contract section 5).
 */
static void
update_locked(Payload *p, FoundLead *found, Datum *values, char *nulls)
{
	char *stored_phone = found->column[FL_PHONE];
	char *stored_code = found->column[FL_PHONE_CODE];
	char *full_name = p->values[F_FULL_NAME];
	char *e164 = NULL;

	values[P_ID] = Int64GetDatum(found->id);
	nulls[P_ID] = ' ';
	values[P_TID] = PointerGetDatum(&found->tid);
	nulls[P_TID] = ' ';
	if (full_name == NULL && p->name_part_sent)
		full_name = li_build_full_name(
			p->values[F_FIRST_NAME] ? p->values[F_FIRST_NAME] : found->column[FL_FIRST_NAME],
			p->values[F_MIDDLE_INITIAL] ? p->values[F_MIDDLE_INITIAL]
										: found->column[FL_MIDDLE_INITIAL],
			p->values[F_LAST_NAME] ? p->values[F_LAST_NAME] : found->column[FL_LAST_NAME]);
	if (p->phone || p->values[F_PHONE_CODE])
		e164 = li_phone_e164(p->phone ? p->phone : stored_phone,
							 p->values[F_PHONE_CODE] ? p->values[F_PHONE_CODE] : stored_code);
	/* NULL keeps the stored value */
	values[P_FULL_NAME] = text_or_null(full_name, &nulls[P_FULL_NAME]);
	values[P_PHONE_E164] = text_or_null(e164, &nulls[P_PHONE_E164]);
	if (!update_lead(values, nulls, &found->tid))
		elog(ERROR, "locked lead disappeared");
}

typedef struct Adopting
{
	Payload *p;
	FoundLead *found;
	Datum *values;
	char *nulls;
} Adopting;

static void
adopting_update(void *arg)
{
	Adopting *a = arg;

	update_locked(a->p, a->found, a->values, a->nulls);
}

/*
 * update_locked, except when the lead was found by phone and takes the call's lead id (it
 * had none): a concurrent caller may have created a lead with that id meanwhile, and the
 * unique index then refuses this update once that caller commits. Only that case runs in a
 * subtransaction; it returns false after such a refusal, and the caller finds again (now
 * the other lead, by id), as if the two calls had run one after the other.
 */
static bool
update_adopting(Payload *p, FoundLead *found, Datum *values, char *nulls)
{
	Adopting a = {p, found, values, nulls};
	ErrorData *edata;

	if (p->values[F_LEAD_ID] == NULL || found->column[FL_DIALER_LEAD_ID] != NULL)
	{
		update_locked(p, found, values, nulls);
		return true;
	}
	edata = li_subtransaction(adopting_update, &a);
	if (edata && edata->sqlerrcode != ERRCODE_UNIQUE_VIOLATION)
		ReThrowError(edata);
	return edata == NULL;
}

/*
 * Find the lead by the dialer's lead id, else by phone (the oldest), else create it. A
 * creation by phone first takes the phone's claim row, so concurrent callers for one number
 * queue there and then find the winner's lead; a creation by lead id relies on the unique
 * index. Both wait on tuples, never on a lock-table entry held to commit.
 */
static bool
upsert(Payload *p, Agent *agent, Datum *values, char *nulls)
{
	const char *lead_id = p->values[F_LEAD_ID];
	const char *e164 = p->phone_e164;
	FoundLead found;

	for (int attempt = 0; attempt < MAX_ATTEMPTS; attempt++)
	{
		if ((lead_id || e164) && li_find_lead(lead_id, e164, &found))
		{
			if (update_adopting(p, &found, values, nulls))
				return false;
			continue; /* its lead id was just created by another caller: merge into that */
		}
		/* Someone else created a lead for this phone, or is about to: queue, then re-read. */
		if (e164 && !claim_phone(e164) && li_find_lead(lead_id, e164, &found))
		{
			update_locked(p, &found, values, nulls);
			return false;
		}
		values[P_ID] = Int64GetDatum(agent->id);
		nulls[P_ID] = ' ';
		values[P_FULL_NAME] = text_or_null(p->full_name, &nulls[P_FULL_NAME]);
		values[P_PHONE_E164] = text_or_null(e164, &nulls[P_PHONE_E164]);
		if (insert_lead(values, nulls))
			return true;
		/* A concurrent caller created this lead id and has committed: update theirs. */
	}
	ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
					errmsg("could not store the lead because of concurrent changes"),
					errhint("Retry the request.")));
}

/*
 * NOTIFY leadintake_lead, once per stored call (notifier.c): sent only after commit, so a
 * dashboard never hears of a lead that was not stored.
 */
static void
notify(Intake *in, int64 log_id)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfo(&buf, "{\"id\": " INT64_FORMAT ", \"created\": %s, \"agent\": ", in->lead_id,
					 in->created ? "true" : "false");
	if (in->agent_username)
		escape_json(&buf, in->agent_username);
	else
		appendStringInfoString(&buf, "null");
	/* The log id makes each call's notification distinct: PostgreSQL folds equal ones. */
	appendStringInfo(&buf, ", \"log_id\": " INT64_FORMAT "}", log_id);
	li_notify(buf.data);
}

/*
 * The agent the stored lead is assigned to: on create the one just resolved; on update the
 * lead keeps its own, which is looked up only when it is another.
 */
static void
assigned_agent(LeadRow *lead, int ncols, Agent *resolved, LeadAgent *out)
{
	Datum id = lead->values[ncols - 1];

	out->username = out->name = NULL;
	if (lead->nulls[ncols - 1])
		return;
	if (DatumGetInt64(id) == resolved->id)
	{
		out->username = resolved->username;
		out->name = resolved->display_name ? resolved->display_name : resolved->username;
		return;
	}
	li_agent_by_id(DatumGetInt64(id), out);
}

/* "<prefix>: key, key, ..." */
static char *
field_list(const char *prefix, List *fields)
{
	StringInfoData buf;
	ListCell *lc;

	initStringInfo(&buf);
	appendStringInfo(&buf, "%s: ", prefix);
	foreach (lc, fields)
		appendStringInfo(&buf, "%s%s", foreach_current_index(lc) ? ", " : "",
						 ((FieldError *) lfirst(lc))->key);
	return buf.data;
}

static char *
error_message(Payload *p)
{
	if (p->identity_missing && list_length(p->errors) == 1)
		return pstrdup("Missing required fields: dialer_user_id or user");
	return field_list("Invalid fields", p->errors);
}

/*
 * The C core behind every entry: validate, resolve the agent, upsert. A client's mistake
 * ends in in->status 400 or 404, not in an error; the response is built in outer.
 */
void
li_process(Jsonb *jb, Intake *in, MemoryContext outer)
{
	Payload p;
	Agent agent;
	char *error;
	Datum values[MAX_PARAMS + 1];
	char nulls[MAX_PARAMS + 1];
	bool created;
	LeadRow lead;
	int ncols;
	LeadAgent lead_agent;
	MemoryContext old;

	li_read_payload(jb, &p);
	in->logged_payload = p.logged;
	if (p.not_object)
	{
		li_fail(in, 400, ERRCODE_INVALID_PARAMETER_VALUE, "Request body must be a JSON object",
				NIL);
		return;
	}
	if (p.errors)
	{
		li_fail(in, 400, ERRCODE_INVALID_PARAMETER_VALUE, error_message(&p), p.errors);
		return;
	}
	if (!li_resolve_agent(p.values[F_DIALER_USER_ID], p.values[F_USER], &agent, &error))
	{
		li_fail(in, 404, ERRCODE_NO_DATA_FOUND, error, NIL);
		return;
	}

	if (insert_plan == NULL)
		prepare_plans();
	values[P_PHONE] = text_or_null(p.phone, &nulls[P_PHONE]);
	values[P_EXTRA] = p.extra ? JsonbPGetDatum(p.extra) : (Datum) 0;
	nulls[P_EXTRA] = p.extra ? ' ' : 'n';
	values[P_DIALER_LEAD_ID] = text_or_null(p.values[F_LEAD_ID], &nulls[P_DIALER_LEAD_ID]);
	for (int i = P_FIRST_FIELD; i < nparams; i++)
		values[i] = text_or_null(p.values[param_field[i]], &nulls[i]);

	created = upsert(&p, &agent, values, nulls);
	lead_row(written_row, &lead);
	li_lead_columns(&ncols);
	assigned_agent(&lead, ncols, &agent, &lead_agent);

	old = MemoryContextSwitchTo(outer);
	in->status = 201;
	in->created = created;
	in->response = li_success_response(&lead, created, &lead_agent, in->minimal ? &p : NULL,
									   p.warnings, &in->lead_id);
	MemoryContextSwitchTo(old);
	in->agent_username = lead_agent.username;
	in->warnings = p.warnings;
}

/*
 * A failure as one line for intake_log and inbox: the sentence, then each field's reason.
 * A success that kept invalid values (leadintake.invalid_fields = keep) gets the same form,
 * "Invalid fields kept in extra._invalid: email (email: must be ...)"; other successes NULL.
 */
char *
li_error_text(Intake *in)
{
	StringInfoData buf;
	ListCell *lc;
	const char *sentence = in->error;
	List *fields = in->details;

	if (in->status == 201)
	{
		sentence =
			in->warnings ? field_list("Invalid fields kept in extra._invalid", in->warnings) : NULL;
		fields = in->warnings;
	}
	if (sentence == NULL)
		return NULL;
	initStringInfo(&buf);
	appendStringInfoString(&buf, sentence);
	foreach (lc, fields)
		appendStringInfo(&buf, "%s%s: %s", foreach_current_index(lc) ? "; " : " (",
						 ((FieldError *) lfirst(lc))->key, ((FieldError *) lfirst(lc))->reason);
	if (fields)
		appendStringInfoChar(&buf, ')');
	return buf.data;
}

/*
 * The intake_log row (contract section 2): every outcome that reaches the database; a
 * stored lead is also announced, once per call.
 */
void
li_log(Intake *in)
{
	static RowTarget *log_target = NULL;
	Datum values[LOG_NCOLS];
	char nulls[LOG_NCOLS];
	bool isnull[LOG_NCOLS];
	Datum log_id;

	memset(nulls, ' ', sizeof(nulls));
	values[0] = TimestampTzGetDatum(in->received_at);
	values[1] = CStringGetTextDatum(in->source);
	values[2] = text_or_null(in->key_name, &nulls[2]);
	values[3] = in->client_addr;
	nulls[3] = in->client_addr ? ' ' : 'n';
	values[4] = Int32GetDatum(in->status);
	values[5] = text_or_null(li_error_text(in), &nulls[5]);
	values[6] = Int64GetDatum(in->lead_id);
	nulls[6] = in->status == 201 ? ' ' : 'n';
	values[7] = BoolGetDatum(in->created);
	nulls[7] = in->status == 201 ? ' ' : 'n';
	values[8] = Float8GetDatum(
		(GetCurrentTimestamp() - (in->started_at ? in->started_at : in->received_at)) / 1000.0);
	values[9] = in->logged_payload ? JsonbPGetDatum(in->logged_payload) : (Datum) 0;
	nulls[9] = in->logged_payload ? ' ' : 'n';
	values[10] = text_or_null(in->raw_body, &nulls[10]);
	if (log_target == NULL)
		log_target = li_row_target("intake_log", LOG_NCOLS, log_columns, log_types, "id", NULL);
	for (int i = 0; i < LOG_NCOLS; i++)
		isnull[i] = nulls[i] == 'n';
	/* as COPY would insert it (rowwrite.c): the statement's start-up was a third of its cost */
	if (li_insert_row(log_target, values, isnull, &log_id) == ROW_BY_STATEMENT)
	{
		if (log_plan == NULL)
			prepare_plans();
		if (SPI_execute_plan(log_plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
			elog(ERROR, "could not write the intake log");
		log_id = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull[0]);
	}
	if (in->status == 201)
		notify(in, DatumGetInt64(log_id));
}
