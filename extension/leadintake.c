/*
 * leadintake.c: the module's entry points, one per kind of caller: leadintake_from_dialer and
 * replay (SQL), http_intake (the shim), replay_outcome (the console), process_inbox and the
 * inbox's redacting trigger.
 */
#include "leadintake.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_type_d.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

PG_MODULE_MAGIC;

void _PG_init(void);

void
_PG_init(void)
{
	li_define_phone_guc();
	li_define_payload_guc();
	li_define_notifier();
	li_define_agent_cache();
	MarkGUCPrefixReserved("leadintake");
}

/*
 * Errors that mean the database cannot serve now rather than that the request is wrong:
 * the shim answers 503 and the client retries.
 */
static bool
unavailable(int sqlerrcode)
{
	/*
	 * Connection (08), resources (53), operator or timeout (57), system (58), serialization
	 * or deadlock (40), read-only (25006), lock timeout (55P03): a class, or a whole code.
	 * The shim keeps the same list (shim/db.c); test/e2e/twin_lists.sh checks the two.
	 */
	static const char *const unavailable_sqlstates[] = {"08", "53",    "57",   "58",
														"40", "25006", "55P03"};
	const char *code = unpack_sql_state(sqlerrcode);

	for (int i = 0; i < lengthof(unavailable_sqlstates); i++)
		if (strncmp(code, unavailable_sqlstates[i], strlen(unavailable_sqlstates[i])) == 0)
			return true;
	return false;
}

/* A body that is not text as it came, made storable: bad bytes become U+FFFD. */
static char *
storable_text(const char *data, int len)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int i = 0; i < len;)
	{
		int n = pg_utf_mblen((const unsigned char *) data + i);

		if (data[i] != '\0' && i + n <= len && pg_utf8_islegal((const unsigned char *) data + i, n))
		{
			appendBinaryStringInfo(&buf, data + i, n);
			i += n;
		}
		else
		{
			appendStringInfoString(&buf, "\xEF\xBF\xBD");
			i++;
		}
	}
	return buf.data;
}

typedef struct Guarded
{
	Intake *in;
	MemoryContext outer;
	Jsonb *jb;
	const char *body;
	int len;
	bool parsing; /* still parsing body when it failed */
} Guarded;

static void
guarded_core(void *arg)
{
	Guarded *g = arg;
	Jsonb *doc = g->jb ? g->jb
					   : DatumGetJsonbP(DirectFunctionCall1(
							 jsonb_in, CStringGetDatum(pnstrdup(g->body, g->len))));

	g->parsing = false;
	li_process(doc, g->in, g->outer);
}

/*
 * Runs the core in a subtransaction, parsing body first when jb is NULL, so that even an
 * unexpected failure ends as a status (400 for a body that does not parse, else 500, its
 * cause kept for the log) with nothing half-written. Only an unavailable database raises.
 */
static void
process_guarded(Intake *in, MemoryContext outer, Jsonb *jb, const char *body, int len)
{
	Guarded g = {in, outer, jb, body, len, jb == NULL};
	ErrorData *edata = li_subtransaction(guarded_core, &g);

	if (edata == NULL)
		return;
	if (unavailable(edata->sqlerrcode))
		ReThrowError(edata);
	in->response = NULL;
	if (g.parsing)
	{
		FieldError *e = palloc0(sizeof(FieldError));

		e->key = "body";
		e->reason = edata->detail ? edata->detail : edata->message;
		in->raw_body = li_redact_text(pnstrdup(body, len));
		li_fail(in, 400, edata->sqlerrcode, "Request body is not valid JSON", list_make1(e));
	}
	else
	{
		li_fail(in, 500, edata->sqlerrcode, edata->message, NIL);
		elog(LOG, "leadintake: %s intake failed: %s", in->source, edata->message);
	}
}

/* The start of an entry that answers with a row (status, response, ...): its shape, the clock. */
static TupleDesc
start_row_entry(FunctionCallInfo fcinfo, Intake *in, const char *source)
{
	TupleDesc desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	in->source = source;
	in->started_at = in->received_at = GetCurrentTimestamp();
	return desc;
}

/* Logs the outcome, then makes an error's body; a 500's cause stays in the log, not the body. */
static void
log_and_answer(Intake *in, MemoryContext outer)
{
	li_log(in);
	if (in->status == 500)
		in->error = "Internal server error";
	if (in->status != 201)
		li_error_response(in, outer);
}

PG_FUNCTION_INFO_V1(leadintake_http_intake);

/*
 * The shim's entry: returns (status, response, dashboard_query) and raises only when the
 * database cannot serve (see unavailable()). Every outcome is logged. With minimal (a key
 * from the URL), the success body and the dashboard query built from it carry only what
 * the request sent (result.c, minimal_shows()).
 */
Datum
leadintake_http_intake(PG_FUNCTION_ARGS)
{
	bytea *body = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0);
	const char *data = body ? VARDATA_ANY(body) : "";
	int len = body ? VARSIZE_ANY_EXHDR(body) : 0;
	MemoryContext outer = CurrentMemoryContext;
	Intake in = {0};
	TupleDesc desc = start_row_entry(fcinfo, &in, "http");
	Datum values[3];
	bool nulls[3] = {false, false, true};

	in.key_name = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	in.client_addr = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);
	/* (body, key_name, client_addr, minimal) since 1.4; NULL errs on the side of less */
	in.minimal = PG_NARGS() > 3 && (PG_ARGISNULL(3) || PG_GETARG_BOOL(3));
	/* spool_intake: the same with the time the shim received the request it spooled */
	if (PG_NARGS() > 4 && !PG_ARGISNULL(4))
	{
		in.source = "spool";
		in.received_at = PG_GETARG_TIMESTAMPTZ(4);
	}

	SPI_connect();
	if (memchr(data, '\0', len) != NULL || !pg_verifymbstr(data, len, true))
	{
		in.raw_body = li_redact_text(storable_text(data, len));
		li_fail(&in, 400, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
				"Request body must be UTF-8 text without NUL bytes", NIL);
	}
	else
		process_guarded(&in, outer, NULL, data, len);
	log_and_answer(&in, outer);
	SPI_finish();

	values[0] = Int32GetDatum(in.status);
	values[1] = JsonbPGetDatum(in.response);
	if (in.status == 201)
	{
		JsonbValue *lead = getKeyJsonValueFromContainer(&in.response->root, "lead", 4, NULL);

		values[2] = CStringGetTextDatum(li_dashboard_query(lead->val.binary.data));
		nulls[2] = false;
	}
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(leadintake_process_inbox);

/*
 * leadintake.process_inbox(batch_size): the oldest pending rows, locked with SKIP LOCKED so
 * that two workers never take the same row, each run through the core in its own
 * subtransaction; the row records its outcome whatever it is.
 */
Datum
leadintake_process_inbox(PG_FUNCTION_ARGS)
{
	static SPIPlanPtr take_plan = NULL, done_plan = NULL;
	int32 batch_size = PG_GETARG_INT32(0);
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	MemoryContext row_context;
	SPITupleTable *pending;
	uint64 n;
	Datum *done[4]; /* the batch's outcomes: id, status, error, lead_id */
	bool *done_nulls[4];

	if (batch_size < 1)
		ereport(ERROR, (errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						errmsg("batch_size must be at least 1")));
	InitMaterializedSRF(fcinfo, 0);
	SPI_connect();
	if (take_plan == NULL)
	{
		Oid take_types[1] = {INT4OID};
		Oid done_types[4] = {INT8ARRAYOID, INT4ARRAYOID, TEXTARRAYOID, INT8ARRAYOID};

		take_plan = li_keep_plan("SELECT id, payload FROM leadintake.inbox"
								 " WHERE processed_at IS NULL ORDER BY id LIMIT $1"
								 " FOR UPDATE SKIP LOCKED",
								 1, take_types);
		/* One statement records the whole batch's outcomes, not one per row. */
		done_plan = li_keep_plan("UPDATE leadintake.inbox AS i SET processed_at = pg_catalog.now(),"
								 " status = d.status, error = d.error, lead_id = d.lead_id"
								 "  FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2),"
								 "                 pg_catalog.unnest($3), pg_catalog.unnest($4))"
								 "       AS d (id, status, error, lead_id)"
								 " WHERE i.id OPERATOR(pg_catalog.=) d.id",
								 4, done_types);
	}
	{
		Datum limit = Int32GetDatum(batch_size);

		if (SPI_execute_plan(take_plan, &limit, NULL, false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read the inbox");
	}
	pending = SPI_tuptable;
	n = SPI_processed;
	if (n == 0)
	{
		SPI_finish();
		return (Datum) 0;
	}
	for (int c = 0; c < 4; c++)
	{
		done[c] = palloc(n * sizeof(Datum));
		done_nulls[c] = palloc(n * sizeof(bool));
	}
	row_context =
		AllocSetContextCreate(CurrentMemoryContext, "leadintake inbox row", ALLOCSET_DEFAULT_SIZES);

	for (uint64 i = 0; i < n; i++)
	{
		MemoryContext old = MemoryContextSwitchTo(row_context);
		Intake in = {0};
		bool isnull;
		Datum id = SPI_getbinval(pending->vals[i], pending->tupdesc, 1, &isnull);
		Jsonb *jb = DatumGetJsonbP(SPI_getbinval(pending->vals[i], pending->tupdesc, 2, &isnull));
		Datum out[4];
		bool out_nulls[4] = {false, false, false, false};
		char *error;

		in.source = "inbox";
		in.received_at = GetCurrentTimestamp();
		process_guarded(&in, row_context, jb, NULL, 0);
		li_log(&in);

		error = li_error_text(&in);
		out[0] = id;
		out[1] = Int32GetDatum(in.status);
		/* made outside the row's context: the batch's UPDATE uses it after the row */
		MemoryContextSwitchTo(old);
		out[2] = error ? CStringGetTextDatum(error) : (Datum) 0;
		MemoryContextSwitchTo(row_context);
		out_nulls[2] = (error == NULL);
		out[3] = Int64GetDatum(in.crm_lead_id);
		out_nulls[3] = in.status != 201;
		for (int c = 0; c < 4; c++)
		{
			done[c][i] = out[c];
			done_nulls[c][i] = out_nulls[c];
		}
		/* (inbox_id, status, lead_id, error) */
		{
			Datum row[4] = {out[0], out[1], out[3], out[2]};
			bool row_nulls[4] = {false, false, out_nulls[3], out_nulls[2]};

			tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, row, row_nulls);
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_context);
	}
	{
		static const Oid elem[4] = {INT8OID, INT4OID, TEXTOID, INT8OID};
		Datum arrays[4];
		int dims[1] = {(int) n};
		int lbs[1] = {1};

		for (int c = 0; c < 4; c++)
		{
			int16 len;
			bool byval;
			char align;

			get_typlenbyvalalign(elem[c], &len, &byval, &align);
			arrays[c] = PointerGetDatum(construct_md_array(done[c], done_nulls[c], 1, dims, lbs,
														   elem[c], len, byval, align));
		}
		if (SPI_execute_plan(done_plan, arrays, NULL, false, 0) != SPI_OK_UPDATE ||
			SPI_processed != n)
			elog(ERROR, "could not record the outcomes of the inbox rows");
	}
	SPI_finish();
	return (Datum) 0;
}

/* The DBA's entries share this: the success body, or an error with the contract's SQLSTATE. */
static Jsonb *
sql_entry(Jsonb *jb, const char *source)
{
	MemoryContext outer = CurrentMemoryContext;
	Intake in = {0};

	in.source = source;
	in.received_at = GetCurrentTimestamp();
	SPI_connect();
	li_process(jb, &in, outer);
	/* A failure's log row would roll back with the error: SQL semantics win. */
	if (in.status != 201)
		li_raise(&in);
	li_log(&in);
	SPI_finish();
	return in.response;
}

PG_FUNCTION_INFO_V1(leadintake_from_dialer);

/* The DBA's entry. */
Datum
leadintake_from_dialer(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(sql_entry(PG_GETARG_JSONB_P(0), "sql"));
}

/*
 * The payload logged in intake_log row log_id, copied into the caller's memory context:
 * P0002 when there is no such row, 55000 when it has no payload (a body that was not JSON).
 */
static Jsonb *
logged_payload(int64 log_id)
{
	Datum arg = Int64GetDatum(log_id);
	Oid argtype = INT8OID;
	bool isnull;
	Datum value;
	Jsonb *payload;
	MemoryContext outer = CurrentMemoryContext, old;

	SPI_connect();
	if (SPI_execute_with_args("SELECT payload FROM leadintake.intake_log"
							  " WHERE id OPERATOR(pg_catalog.=) $1",
							  1, &argtype, &arg, NULL, true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the intake log");
	if (SPI_processed == 0)
		ereport(ERROR, (errcode(ERRCODE_NO_DATA_FOUND),
						errmsg("intake log row " INT64_FORMAT " does not exist", log_id)));
	value = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		ereport(ERROR, (errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
						errmsg("intake log row " INT64_FORMAT " has no stored payload", log_id),
						errdetail("Its body was not valid JSON; it is kept in raw_body only.")));
	/* SPI_finish frees what SPI allocated: the payload must outlive it. */
	old = MemoryContextSwitchTo(outer);
	payload = DatumGetJsonbPCopy(value);
	MemoryContextSwitchTo(old);
	SPI_finish();
	return payload;
}

PG_FUNCTION_INFO_V1(leadintake_replay);

/* leadintake.replay(log_id): a logged request's payload again, logged as source 'replay'. */
Datum
leadintake_replay(PG_FUNCTION_ARGS)
{
	PG_RETURN_JSONB_P(sql_entry(logged_payload(PG_GETARG_INT64(0)), "replay"));
}

PG_FUNCTION_INFO_V1(leadintake_replay_outcome);

/*
 * leadintake.replay_outcome(log_id): the same replay run as the shim's entry runs a request
 * (the console's): every outcome is logged (source 'replay') and returned as (status,
 * response, id of the new log row); it raises only for a missing row or payload and when
 * the database cannot serve.
 */
Datum
leadintake_replay_outcome(PG_FUNCTION_ARGS)
{
	Jsonb *payload = logged_payload(PG_GETARG_INT64(0));
	MemoryContext outer = CurrentMemoryContext;
	Intake in = {0};
	TupleDesc desc = start_row_entry(fcinfo, &in, "replay");
	Datum values[3];
	bool nulls[3] = {false, false, false};

	SPI_connect();
	process_guarded(&in, outer, payload, NULL, 0);
	log_and_answer(&in, outer);
	SPI_finish();

	values[0] = Int32GetDatum(in.status);
	values[1] = JsonbPGetDatum(in.response);
	values[2] = Int64GetDatum(in.log_id);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

PG_FUNCTION_INFO_V1(leadintake_inbox_redact);

/* BEFORE INSERT OR UPDATE OF payload ON leadintake.inbox: secrets never reach the table. */
Datum
leadintake_inbox_redact(PG_FUNCTION_ARGS)
{
	TriggerData *trigdata = (TriggerData *) fcinfo->context;
	HeapTuple tuple;
	int col;
	bool isnull, changed;
	Datum value;
	Jsonb *clean;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(trigdata->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(trigdata->tg_event))
		elog(ERROR, "leadintake_inbox_redact must be a BEFORE ROW trigger");
	tuple = TRIGGER_FIRED_BY_UPDATE(trigdata->tg_event) ? trigdata->tg_newtuple
														: trigdata->tg_trigtuple;
	col = SPI_fnumber(trigdata->tg_relation->rd_att, "payload");
	if (col <= 0)
		elog(ERROR, "table \"%s\" has no column \"payload\"",
			 RelationGetRelationName(trigdata->tg_relation));
	value = heap_getattr(tuple, col, trigdata->tg_relation->rd_att, &isnull);
	if (isnull)
		return PointerGetDatum(tuple);
	clean = li_redact(DatumGetJsonbP(value), &changed);
	if (changed)
	{
		Datum replace = JsonbPGetDatum(clean);
		bool replace_null = false;

		tuple = heap_modify_tuple_by_cols(tuple, trigdata->tg_relation->rd_att, 1, &col, &replace,
										  &replace_null);
	}
	return PointerGetDatum(tuple);
}
