/*
 * leadintake.c: the module's entry points: leadintake_from_dialer for SQL callers, the
 * never-raising http_intake for the shim, and the trigger that redacts inbox rows.
 */
#include "leadintake.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "funcapi.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/resowner.h"

PG_MODULE_MAGIC;

void _PG_init(void);

void
_PG_init(void)
{
	li_define_phone_guc();
	MarkGUCPrefixReserved("leadintake");
}

PG_FUNCTION_INFO_V1(leadintake_from_dialer);

/* The DBA's entry: the success body, or an error with the contract's SQLSTATE. */
Datum
leadintake_from_dialer(PG_FUNCTION_ARGS)
{
	Jsonb *jb = PG_GETARG_JSONB_P(0);
	MemoryContext outer = CurrentMemoryContext;
	Intake in = {0};

	in.source = "sql";
	in.received_at = GetCurrentTimestamp();
	SPI_connect();
	li_process(jb, &in, outer);
	/* A failure's log row would roll back with the error: SQL semantics win. */
	if (in.status != 201)
		li_raise(&in);
	li_log(&in);
	SPI_finish();
	PG_RETURN_JSONB_P(in.response);
}

/*
 * Errors that mean the database cannot serve now rather than that the request is wrong:
 * the shim answers 503 and the client retries.
 */
static bool
unavailable(int sqlerrcode)
{
	switch (ERRCODE_TO_CATEGORY(sqlerrcode))
	{
		case ERRCODE_CONNECTION_EXCEPTION:
		case ERRCODE_INSUFFICIENT_RESOURCES:
		case ERRCODE_OPERATOR_INTERVENTION:
		case ERRCODE_SYSTEM_ERROR:
		case ERRCODE_TRANSACTION_ROLLBACK:
			return true;
		default:
			return sqlerrcode == ERRCODE_READ_ONLY_SQL_TRANSACTION ||
				   sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
	}
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

PG_FUNCTION_INFO_V1(leadintake_http_intake);

/*
 * The shim's entry: parses the body, runs the core in a subtransaction so that even an
 * unexpected failure is logged (as a 500), and returns (status, response, dashboard_query).
 * It raises only when the database cannot serve (see unavailable()).
 */
Datum
leadintake_http_intake(PG_FUNCTION_ARGS)
{
	bytea *body = PG_ARGISNULL(0) ? NULL : PG_GETARG_BYTEA_PP(0);
	const char *data = body ? VARDATA_ANY(body) : "";
	int len = body ? VARSIZE_ANY_EXHDR(body) : 0;
	MemoryContext outer = CurrentMemoryContext;
	MemoryContext spi_context;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool parsing = true;
	Intake in = {0};
	TupleDesc desc;
	Datum values[3];
	bool nulls[3] = {false, false, true};

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	in.source = "http";
	in.received_at = GetCurrentTimestamp();
	in.key_name = PG_ARGISNULL(1) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(1));
	in.client_addr = PG_ARGISNULL(2) ? (Datum) 0 : PG_GETARG_DATUM(2);

	SPI_connect();
	spi_context = CurrentMemoryContext;
	if (memchr(data, '\0', len) != NULL || !pg_verifymbstr(data, len, true))
	{
		in.raw_body = li_redact_text(storable_text(data, len));
		li_fail(&in, 400, ERRCODE_CHARACTER_NOT_IN_REPERTOIRE,
				"Request body must be UTF-8 text without NUL bytes", NIL);
	}
	else
	{
		BeginInternalSubTransaction(NULL);
		MemoryContextSwitchTo(spi_context);
		PG_TRY();
		{
			Jsonb *jb =
				DatumGetJsonbP(DirectFunctionCall1(jsonb_in, CStringGetDatum(pnstrdup(data, len))));

			parsing = false;
			li_process(jb, &in, outer);
			ReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(spi_context);
			CurrentResourceOwner = owner;
		}
		PG_CATCH();
		{
			ErrorData *edata;

			MemoryContextSwitchTo(spi_context);
			edata = CopyErrorData();
			FlushErrorState();
			RollbackAndReleaseCurrentSubTransaction();
			MemoryContextSwitchTo(spi_context);
			CurrentResourceOwner = owner;

			if (unavailable(edata->sqlerrcode))
				ReThrowError(edata);
			in.response = NULL;
			in.dashboard_query = NULL;
			if (parsing)
			{
				FieldError *e = palloc(sizeof(FieldError));

				e->key = "body";
				e->reason = edata->detail ? edata->detail : edata->message;
				in.raw_body = li_redact_text(pnstrdup(data, len));
				li_fail(&in, 400, edata->sqlerrcode, "Request body is not valid JSON",
						list_make1(e));
			}
			else
			{
				/* The cause goes to the log and the server log, never to the client. */
				li_fail(&in, 500, edata->sqlerrcode, edata->message, NIL);
				elog(LOG, "leadintake: request failed: %s", edata->message);
			}
		}
		PG_END_TRY();
	}

	li_log(&in);
	if (in.status == 500)
		in.error = "Internal server error";
	if (in.status != 201)
		li_error_response(&in, outer);
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
