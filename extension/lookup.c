/*
 * lookup.c: the lead a call merges into (contract section 5), found by the dialer's lead id
 * or else the oldest with the phone, and locked, by one statement.
 */
#include "leadintake.h"

#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "utils/builtins.h"

/* The statement's columns after the id, in FoundColumn order; then the ctid. */
#define FIND_SQL                                                                                   \
	"SELECT id, first_name, middle_initial, last_name, phone, phone_code, dialer_lead_id, ctid"    \
	" FROM leadintake.leads WHERE id OPERATOR(pg_catalog.=) coalesce("                             \
	"(SELECT id FROM leadintake.leads WHERE dialer_lead_id OPERATOR(pg_catalog.=) $1),"            \
	"(SELECT id FROM leadintake.leads WHERE phone_e164 OPERATOR(pg_catalog.=) $2"                  \
	" ORDER BY created_at, id LIMIT 1)) FOR UPDATE"
#define FIND_CTID (FL_NCOLUMNS + 2)

/*
 * The lead to merge into, locked until the transaction ends. FOR UPDATE waits for a
 * concurrent writer and, under READ COMMITTED, goes on to its newest version (the id does
 * not change); under REPEATABLE READ such a change is a serialization failure.
 */
bool
li_find_lead(const char *dialer_lead_id, const char *e164, FoundLead *out)
{
	static SPIPlanPtr find_plan = NULL;
	Datum values[2];
	char nulls[2];
	HeapTuple row;
	TupleDesc desc;
	bool isnull;

	if (find_plan == NULL)
	{
		Oid two_text[2] = {TEXTOID, TEXTOID};

		find_plan = li_keep_plan(FIND_SQL, 2, two_text);
	}
	values[0] = li_text_or_null(dialer_lead_id, &nulls[0]);
	values[1] = li_text_or_null(e164, &nulls[1]);
	if (SPI_execute_plan(find_plan, values, nulls, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "lead look-up failed");
	if (SPI_processed != 1)
		return false;
	row = SPI_tuptable->vals[0];
	desc = SPI_tuptable->tupdesc;
	out->crm_lead_id = DatumGetInt64(SPI_getbinval(row, desc, 1, &isnull));
	for (int i = 0; i < FL_NCOLUMNS; i++)
		out->column[i] = SPI_getvalue(row, desc, i + 2);
	out->tid = *(ItemPointer) DatumGetPointer(SPI_getbinval(row, desc, FIND_CTID, &isnull));
	return true;
}
