/*
 * spi.c: the SPI helpers every other file uses: a statement prepared once per backend and
 * kept, a function run in a subtransaction that hands back its error, a text parameter.
 */
#include "leadintake.h"

#include "access/xact.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

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

/*
 * Runs fn(arg) in a subtransaction: NULL when it succeeded, else its error (copied into the
 * caller's memory context), everything it did rolled back. The caller's memory context and
 * resource owner are current again either way; an enclosing subtransaction is untouched.
 */
ErrorData *
li_subtransaction(void (*fn)(void *), void *arg)
{
	MemoryContext context = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	ErrorData *volatile edata = NULL;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(context);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(context);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
	}
	PG_END_TRY();
	MemoryContextSwitchTo(context);
	CurrentResourceOwner = owner;
	return edata;
}

/* A text parameter as SPI_execute_plan takes it: NULL is the flag 'n' beside no value. */
Datum
li_text_or_null(const char *s, char *null)
{
	*null = s ? ' ' : 'n';
	return s ? CStringGetTextDatum(s) : (Datum) 0;
}
