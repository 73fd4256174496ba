/*
 * log.c: the intake_log row of every outcome that reaches the database (contract section 2),
 * its one-line error text, the NOTIFY of a stored lead and the open failure of a 4xx.
 */
#include "leadintake.h"

#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "lib/stringinfo.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/lsyscache.h"

/* intake_log's columns as li_log writes them: one parameter each. */
typedef enum LogColumn
{
	LOG_RECEIVED_AT,
	LOG_SOURCE,
	LOG_KEY_NAME,
	LOG_CLIENT_ADDR,
	LOG_STATUS,
	LOG_ERROR,
	LOG_CRM_LEAD_ID,
	LOG_CREATED,
	LOG_DURATION_MS,
	LOG_PAYLOAD,
	LOG_RAW_BODY,
	LOG_NCOLS
} LogColumn;

static const struct
{
	const char *name;
	Oid type;
} log_columns[LOG_NCOLS] = {
	[LOG_RECEIVED_AT] = {"received_at", TIMESTAMPTZOID},
	[LOG_SOURCE] = {"source", TEXTOID},
	[LOG_KEY_NAME] = {"key_name", TEXTOID},
	[LOG_CLIENT_ADDR] = {"client_addr", INETOID},
	[LOG_STATUS] = {"status", INT4OID},
	[LOG_ERROR] = {"error", TEXTOID},
	[LOG_CRM_LEAD_ID] = {"lead_id", INT8OID},
	[LOG_CREATED] = {"created", BOOLOID},
	[LOG_DURATION_MS] = {"duration_ms", FLOAT8OID},
	[LOG_PAYLOAD] = {"payload", JSONBOID},
	[LOG_RAW_BODY] = {"raw_body", TEXTOID},
};

/* INSERT INTO leadintake.intake_log (...) VALUES ($1, ...) RETURNING id */
static SPIPlanPtr
prepare_log_plan(void)
{
	StringInfoData sql;
	Oid types[LOG_NCOLS];

	initStringInfo(&sql);
	appendStringInfoString(&sql, "INSERT INTO leadintake.intake_log (");
	for (int i = 0; i < LOG_NCOLS; i++)
		appendStringInfo(&sql, "%s%s", i ? ", " : "", log_columns[i].name);
	appendStringInfoString(&sql, ") VALUES (");
	for (int i = 0; i < LOG_NCOLS; i++)
	{
		appendStringInfo(&sql, "%s$%d", i ? ", " : "", i + 1);
		types[i] = log_columns[i].type;
	}
	appendStringInfoString(&sql, ") RETURNING id");
	return li_keep_plan(sql.data, LOG_NCOLS, types);
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
	appendStringInfo(&buf,
					 "{\"id\": " INT64_FORMAT ", \"created\": %s, \"agent\": ", in->crm_lead_id,
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
		sentence = in->warnings
					   ? li_field_list("Invalid fields kept in extra._invalid", in->warnings)
					   : NULL;
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
 * A 4xx is an open failure until the console replays it: its entry in
 * leadintake.open_failures (1.6; docs/console.md, "Speed"). Written here, for the failures
 * alone, rather than by an insert trigger, whose WHEN clause every logged row would pay for
 * (it is parsed again for each statement). Before the update to 1.6 there is no such table.
 */
static void
log_open_failure(Intake *in, Datum *values, char *nulls)
{
	static SPIPlanPtr plan = NULL;
	Oid nsp = get_namespace_oid("leadintake", true);
	Oid types[5] = {INT8OID, INT4OID, TEXTOID, JSONBOID, TIMESTAMPTZOID};
	Datum args[5] = {Int64GetDatum(in->log_id), values[LOG_STATUS], values[LOG_ERROR],
					 values[LOG_PAYLOAD], values[LOG_RECEIVED_AT]};
	char arg_nulls[5] = {' ', ' ', nulls[LOG_ERROR], nulls[LOG_PAYLOAD], ' '};

	if (!OidIsValid(nsp) || !OidIsValid(get_relname_relid("open_failures", nsp)))
		return;
	if (plan == NULL)
		plan = li_keep_plan("INSERT INTO leadintake.open_failures"
							" (log_id, status, error, agent, received_at)"
							" VALUES ($1, $2, $3, leadintake.asked_agent($4), $5)",
							5, types);
	if (SPI_execute_plan(plan, args, arg_nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not record the open failure");
}

/*
 * The intake_log row (contract section 2): every outcome that reaches the database; a
 * stored lead is also announced, once per call; a 4xx is an open failure.
 */
void
li_log(Intake *in)
{
	static SPIPlanPtr log_plan = NULL;
	bool stored = in->status == 201;
	Datum values[LOG_NCOLS];
	char nulls[LOG_NCOLS];
	bool isnull;

	memset(nulls, ' ', sizeof(nulls));
	values[LOG_RECEIVED_AT] = TimestampTzGetDatum(in->received_at);
	values[LOG_SOURCE] = CStringGetTextDatum(in->source);
	values[LOG_KEY_NAME] = li_text_or_null(in->key_name, &nulls[LOG_KEY_NAME]);
	values[LOG_CLIENT_ADDR] = in->client_addr;
	nulls[LOG_CLIENT_ADDR] = in->client_addr ? ' ' : 'n';
	values[LOG_STATUS] = Int32GetDatum(in->status);
	values[LOG_ERROR] = li_text_or_null(li_error_text(in), &nulls[LOG_ERROR]);
	values[LOG_CRM_LEAD_ID] = Int64GetDatum(in->crm_lead_id);
	nulls[LOG_CRM_LEAD_ID] = stored ? ' ' : 'n';
	values[LOG_CREATED] = BoolGetDatum(in->created);
	nulls[LOG_CREATED] = stored ? ' ' : 'n';
	values[LOG_DURATION_MS] = Float8GetDatum(
		(GetCurrentTimestamp() - (in->started_at ? in->started_at : in->received_at)) / 1000.0);
	values[LOG_PAYLOAD] = in->logged_payload ? JsonbPGetDatum(in->logged_payload) : (Datum) 0;
	nulls[LOG_PAYLOAD] = in->logged_payload ? ' ' : 'n';
	values[LOG_RAW_BODY] = li_text_or_null(in->raw_body, &nulls[LOG_RAW_BODY]);

	if (log_plan == NULL)
		log_plan = prepare_log_plan();
	if (SPI_execute_plan(log_plan, values, nulls, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not write the intake log");
	in->log_id =
		DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (stored)
		notify(in, in->log_id);
	else if (in->status >= 400 && in->status < 500)
		log_open_failure(in, values, nulls);
}
