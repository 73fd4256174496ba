/*
 * rowwrite.c: one row inserted as COPY FROM inserts it (the relation's defaults, constraints,
 * indexes and row triggers), or as INSERT ... ON CONFLICT DO NOTHING does, or one locked row
 * updated as logical replication's apply updates it, without a plan.
 */
#include "leadintake.h"

#include "access/genam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/nodeModifyTable.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "storage/lmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#define MAX_TARGETS 3 /* intake_log, a lead inserted, a lead updated */

/*
 * A table's columns as a caller gives them, mapped once and again after the table (or any
 * function, which a default may call) changes.
 */
struct RowTarget
{
	const char *relname; /* in schema leadintake */
	int n;
	const char *const *columns;
	const Oid *types;      /* of the values given: a domain column takes its base type */
	const char *returning; /* a by-value column, or "*" for the whole row */
	const char *arbiter;   /* the column whose unique index ON CONFLICT names, or NULL */
	Oid relid;             /* whose map this is; InvalidOid: map again */
	bool usable;           /* false: the map found a column that only the statement can fill */
	MemoryContext cxt;
	AttrNumber *attnum;
	bool *domain; /* the column is a domain: its constraints are checked here */
	void **domain_cache;
	Expr **defaults; /* per attribute: the planned default of a column not given, or NULL */
	AttrNumber ret_attnum;
	Oid arbiter_index;
};

static RowTarget targets[MAX_TARGETS];
static int ntargets;
static uint64 invalidations; /* so that a map made while one arrived is not kept */

static void
forget_relation(Datum arg, Oid relid)
{
	invalidations++;
	for (int i = 0; i < ntargets; i++)
		if (relid == InvalidOid || targets[i].relid == relid)
			targets[i].relid = InvalidOid;
}

static void
forget_all(Datum arg, int cacheid, uint32 hashvalue)
{
	forget_relation(arg, InvalidOid);
}

RowTarget *
li_row_target(const char *relname, int n, const char *const *columns, const Oid *types,
			  const char *returning, const char *arbiter)
{
	RowTarget *t;

	if (ntargets == 0)
	{
		CacheRegisterRelcacheCallback(forget_relation, (Datum) 0);
		CacheRegisterSyscacheCallback(PROCOID, forget_all, (Datum) 0);
	}
	if (ntargets == MAX_TARGETS)
		elog(ERROR, "too many row targets");
	t = &targets[ntargets++];
	t->relname = relname;
	t->n = n;
	t->columns = columns;
	t->types = types;
	t->returning = returning;
	t->arbiter = arbiter;
	t->ret_attnum = 0;
	t->relid = InvalidOid;
	t->cxt = AllocSetContextCreate(TopMemoryContext, "leadintake row target", ALLOCSET_SMALL_SIZES);
	return t;
}

/*
 * The one index ON CONFLICT (column) would take as its arbiter: unique, valid, immediate,
 * on exactly that column, with no expression or predicate. InvalidOid when there is none
 * or more than one: the statement's inference then decides.
 */
static Oid
arbiter_index(Relation rel, const char *column)
{
	AttrNumber attnum = SPI_fnumber(RelationGetDescr(rel), column);
	List *indexes = RelationGetIndexList(rel);
	ListCell *lc;
	Oid found = InvalidOid;
	int n = 0;

	foreach (lc, indexes)
	{
		Relation index = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index form = index->rd_index;

		if (form->indisunique && form->indnkeyatts == 1 && form->indkey.values[0] == attnum &&
			RelationGetIndexExpressions(index) == NIL && RelationGetIndexPredicate(index) == NIL)
		{
			n++;
			if (form->indisvalid && form->indimmediate)
				found = RelationGetRelid(index);
		}
		index_close(index, AccessShareLock);
	}
	list_free(indexes);
	return n == 1 ? found : InvalidOid;
}

/*
 * The column map of rel; usable stays false where a column's type is not the one given. The
 * map counts as made (t->relid) only once it is whole and nothing was invalidated meanwhile:
 * an error half-way, or an invalidation, makes the next call map again. False when this
 * call must not use it.
 */
static bool
map_target(RowTarget *t, Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	uint64 seen = invalidations;
	MemoryContext old;

	t->relid = InvalidOid;
	MemoryContextReset(t->cxt);
	old = MemoryContextSwitchTo(t->cxt);
	t->attnum = palloc0(t->n * sizeof(AttrNumber));
	t->domain = palloc0(t->n * sizeof(bool));
	t->domain_cache = palloc0(t->n * sizeof(void *));
	t->defaults = palloc0(desc->natts * sizeof(Expr *));
	t->usable = true;
	t->ret_attnum = 0;
	if (strcmp(t->returning, "*") != 0)
	{
		t->ret_attnum = SPI_fnumber(desc, t->returning);
		if (t->ret_attnum <= 0 || !TupleDescAttr(desc, t->ret_attnum - 1)->attbyval)
			t->usable = false;
	}
	if (t->arbiter)
		t->usable &= OidIsValid(t->arbiter_index = arbiter_index(rel, t->arbiter));
	for (int i = 0; i < t->n; i++)
	{
		Form_pg_attribute att;
		int32 typmod = -1;

		if ((t->attnum[i] = SPI_fnumber(desc, t->columns[i])) <= 0)
		{
			t->usable = false;
			continue;
		}
		att = TupleDescAttr(desc, t->attnum[i] - 1);
		/* a typmod (varchar(n), or a domain's numeric(4,2)) or another type: the cast decides */
		/* (an ALWAYS identity given a value is the statement's error, 428C9) */
		if (att->attgenerated || att->attidentity == ATTRIBUTE_IDENTITY_ALWAYS ||
			att->atttypmod != -1 || getBaseTypeAndTypmod(att->atttypid, &typmod) != t->types[i] ||
			typmod != -1)
			t->usable = false;
		t->domain[i] = att->atttypid != t->types[i];
	}
	for (int a = 0; a < desc->natts && t->usable; a++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, a);
		Node *def;
		bool given = false;

		for (int i = 0; i < t->n; i++)
			given |= t->attnum[i] == a + 1;
		if (given || att->attisdropped || att->attgenerated)
			continue;
		if ((def = build_column_default(rel, a + 1)) != NULL)
			t->defaults[a] = expression_planner((Expr *) def);
		else if (get_typtype(att->atttypid) == TYPTYPE_DOMAIN)
			t->usable = false; /* the statement checks the domain on the NULL it stores */
	}
	MemoryContextSwitchTo(old);
	if (invalidations != seen)
		return false;
	t->relid = RelationGetRelid(rel);
	return true;
}

/*
 * Whether a row written here is what the statement would write: not where row-level
 * security, rules, statement or BEFORE triggers, transition tables, partitions, stored
 * generated columns (an update) or column privileges take part.
 */
static bool
writable(Relation rel, CmdType cmd)
{
	TriggerDesc *trig = rel->trigdesc;
	Oid relid = RelationGetRelid(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rules != NULL || check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	if (cmd == CMD_INSERT && trig &&
		(trig->trig_insert_before_row || trig->trig_insert_instead_row ||
		 trig->trig_insert_before_statement || trig->trig_insert_after_statement ||
		 trig->trig_insert_new_table))
		return false;
	if (cmd == CMD_UPDATE && trig &&
		(trig->trig_update_before_row || trig->trig_update_instead_row ||
		 trig->trig_update_before_statement || trig->trig_update_after_statement ||
		 trig->trig_update_old_table || trig->trig_update_new_table))
		return false;
	if (cmd == CMD_UPDATE && rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		return false;
	/* (SELECT: the statement's RETURNING reads what it returns, its update the stored row) */
	return pg_class_aclcheck(relid, GetUserId(), cmd == CMD_INSERT ? ACL_INSERT : ACL_UPDATE) ==
			   ACLCHECK_OK &&
		   pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

/*
 * Under REPEATABLE READ and SERIALIZABLE a row that is in the way but not in the snapshot is a
 * serialization failure, as it is for the statement (nodeModifyTable.c, ExecCheckTIDVisible).
 */
static void
check_visible(EState *estate, Relation rel, ItemPointer tid)
{
	TupleTableSlot *slot;
	bool isnull;

	if (!IsolationUsesXactSnapshot())
		return;
	slot = table_slot_create(rel, &estate->es_tupleTable);
	if (!table_tuple_fetch_row_version(rel, tid, SnapshotAny, slot))
		elog(ERROR, "failed to fetch conflicting tuple for ON CONFLICT");
	if (!table_tuple_satisfies_snapshot(rel, slot, GetTransactionSnapshot()) &&
		!TransactionIdIsCurrentTransactionId(
			DatumGetTransactionId(slot_getsysattr(slot, MinTransactionIdAttributeNumber, &isnull))))
		ereport(ERROR, (errcode(ERRCODE_T_R_SERIALIZATION_FAILURE),
						errmsg("could not serialize access due to concurrent update")));
}

/*
 * The insert of INSERT ... ON CONFLICT (arbiter) DO NOTHING, as ExecInsert makes it: a row
 * the arbiter already has, or gets meanwhile from another inserter, is not inserted.
 */
static bool
insert_unless_present(ResultRelInfo *rri, EState *estate, TupleTableSlot *slot, Oid arbiter)
{
	Relation rel = rri->ri_RelationDesc;
	List *arbiters = list_make1_oid(arbiter);
	List *recheck;
	ItemPointerData conflict_tid;
	bool conflict;

	CheckCmdReplicaIdentity(rel, CMD_INSERT);
	if (rel->rd_att->constr && rel->rd_att->constr->has_generated_stored)
		ExecComputeStoredGenerated(rri, estate, slot, CMD_INSERT);
	if (rel->rd_att->constr)
		ExecConstraints(rri, slot, estate);
	for (;;)
	{
		uint32 token;

		if (!ExecCheckIndexConstraints(rri, slot, estate, &conflict_tid, arbiters))
		{
			check_visible(estate, rel, &conflict_tid);
			return false;
		}
		/* others wait on the token for our decision, not for our transaction */
		conflict = false; /* ExecInsertIndexTuples only ever sets it */
		token = SpeculativeInsertionLockAcquire(GetCurrentTransactionId());
		table_tuple_insert_speculative(rel, slot, estate->es_output_cid, 0, NULL, token);
		recheck = ExecInsertIndexTuples(rri, slot, estate, false, true, &conflict, arbiters);
		table_tuple_complete_speculative(rel, slot, token, !conflict);
		SpeculativeInsertionLockRelease(GetCurrentTransactionId());
		if (!conflict)
			break;
		/* another inserter got there between the check and our index entry: look again */
		list_free(recheck);
	}
	ExecARInsertTriggers(estate, rri, slot, recheck, NULL);
	list_free(recheck);
	return true;
}

/* One write's executor state: what the statement's ExecutorStart would have set up. */
typedef struct Write
{
	Relation rel;
	EState *estate;
	ResultRelInfo *rri;
	RangeTblEntry *rte;
	MemoryContext caller;
} Write;

/*
 * Opens t's table for a write of kind cmd; false (nothing open) where only the statement
 * can stand for itself (map_target(), writable()).
 */
static bool
begin_write(RowTarget *t, CmdType cmd, Write *w)
{
	Oid relid = get_relname_relid(t->relname, get_namespace_oid("leadintake", false));

	/* a read-only transaction: the statement's own check refuses it (25006) */
	if (!OidIsValid(relid) || XactReadOnly)
		return false;
	w->rel = table_open(relid, RowExclusiveLock);
	if ((t->relid != relid && !map_target(t, w->rel)) || !t->usable || !writable(w->rel, cmd))
	{
		table_close(w->rel, NoLock);
		return false;
	}
	w->caller = CurrentMemoryContext;

	/*
	 * As SPI does before each statement: this row is one command, and what it runs (a
	 * default, a CHECK, a trigger) sees the earlier ones through a snapshot of its own.
	 */
	CommandCounterIncrement();
	PushActiveSnapshot(GetTransactionSnapshot());
	w->estate = CreateExecutorState();
	MemoryContextSwitchTo(w->estate->es_query_cxt);
	w->estate->es_snapshot = GetActiveSnapshot();
	w->rte = makeNode(RangeTblEntry);
	w->rte->rtekind = RTE_RELATION;
	w->rte->relid = relid;
	w->rte->relkind = w->rel->rd_rel->relkind;
	w->rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(w->estate, list_make1(w->rte));
	w->rri = makeNode(ResultRelInfo);
	InitResultRelInfo(w->rri, w->rel, 1, NULL, 0);
	/* where the AFTER triggers look for it (as logical replication's apply does) */
	w->estate->es_opened_result_relations = list_make1(w->rri);
	w->estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(w->rri, cmd == CMD_INSERT && t->arbiter != NULL);
	return true;
}

/* *returned gets slot's returning column, or the whole row, in the caller's context. */
static void
return_row(RowTarget *t, Write *w, TupleTableSlot *slot, Datum *returned)
{
	MemoryContextSwitchTo(w->caller);
	if (t->ret_attnum > 0)
	{
		bool isnull;

		*returned = slot_getattr(slot, t->ret_attnum, &isnull);
		if (isnull)
			*returned = (Datum) 0;
	}
	else
		*returned = ExecFetchSlotHeapTupleDatum(slot);
	MemoryContextSwitchTo(w->estate->es_query_cxt);
}

static void
end_write(Write *w)
{
	/* its indexes, and what the triggers opened; rel itself is closed below */
	ExecCloseResultRelations(w->estate);
	ExecResetTupleTable(w->estate->es_tupleTable, false);
	MemoryContextSwitchTo(w->caller);
	FreeExecutorState(w->estate);
	PopActiveSnapshot();
	table_close(w->rel, NoLock);
}

/* value for column i of t, its domain's constraints checked as the cast to it would. */
static Datum
checked(RowTarget *t, Relation rel, int i, Datum value, bool isnull)
{
	if (t->domain[i])
		domain_check(value, isnull,
					 TupleDescAttr(RelationGetDescr(rel), t->attnum[i] - 1)->atttypid,
					 &t->domain_cache[i], t->cxt);
	return value;
}

/*
 * Inserts one row: column i of the target gets values[i] (a domain's constraints checked,
 * as the cast to it would), every other column its default; with an arbiter, not when its
 * unique index already holds the row's value (ROW_PRESENT). *returned gets the stored
 * row's returning column, or the whole row (in the caller's memory context). Nothing is
 * done where only the statement can stand for itself: ROW_BY_STATEMENT, and the caller
 * runs it.
 */
RowOutcome
li_insert_row(RowTarget *t, const Datum *values, const bool *nulls, Datum *returned)
{
	Write w;
	TupleDesc desc;
	TupleTableSlot *slot;
	ExprContext *econtext;
	bool inserted = true;

	if (!begin_write(t, CMD_INSERT, &w))
		return ROW_BY_STATEMENT;
	desc = RelationGetDescr(w.rel);
	slot = ExecInitExtraTupleSlot(w.estate, desc, &TTSOpsVirtual);
	ExecClearTuple(slot);
	econtext = GetPerTupleExprContext(w.estate);
	for (int a = 0; a < desc->natts; a++)
	{
		slot->tts_isnull[a] = true;
		if (t->defaults[a])
			slot->tts_values[a] =
				ExecEvalExpr(ExecInitExpr(t->defaults[a], NULL), econtext, &slot->tts_isnull[a]);
	}
	for (int i = 0; i < t->n; i++)
	{
		AttrNumber a = t->attnum[i] - 1;

		slot->tts_values[a] = checked(t, w.rel, i, values[i], nulls[i]);
		slot->tts_isnull[a] = nulls[i];
	}
	ExecStoreVirtualTuple(slot);
	slot->tts_tableOid = RelationGetRelid(w.rel); /* for a CHECK that reads tableoid */

	AfterTriggerBeginQuery();
	if (t->arbiter)
		inserted = insert_unless_present(w.rri, w.estate, slot, t->arbiter_index);
	else
		ExecSimpleRelationInsert(w.rri, w.estate, slot);
	AfterTriggerEndQuery(w.estate);
	if (inserted)
		return_row(t, &w, slot, returned);
	end_write(&w);
	return inserted ? ROW_INSERTED : ROW_PRESENT;
}

/*
 * Updates the row version at tid, which the caller has locked (so it is the row's latest
 * version and nobody else's to change): column i of the target set as how[i] says, from
 * values[i] (SET_KEEP ignores it), every other column kept; indexes, constraints and AFTER
 * triggers as the UPDATE statement that sets those columns. *returned as li_insert_row's.
 * ROW_BY_STATEMENT where only the statement can stand for itself.
 */
RowOutcome
li_update_row(RowTarget *t, ItemPointer tid, const Datum *values, const bool *nulls,
			  const RowSet *how, Datum *returned)
{
	Write w;
	TupleDesc desc;
	TupleTableSlot *stored;
	TupleTableSlot *slot;
	EPQState epq;

	if (!begin_write(t, CMD_UPDATE, &w))
		return ROW_BY_STATEMENT;
	desc = RelationGetDescr(w.rel);
	stored = table_slot_create(w.rel, &w.estate->es_tupleTable);
	if (!table_tuple_fetch_row_version(w.rel, tid, SnapshotAny, stored))
		elog(ERROR, "locked lead disappeared");
	slot_getallattrs(stored);
	slot = ExecInitExtraTupleSlot(w.estate, desc, &TTSOpsVirtual);
	ExecClearTuple(slot);
	memcpy(slot->tts_values, stored->tts_values, desc->natts * sizeof(Datum));
	memcpy(slot->tts_isnull, stored->tts_isnull, desc->natts * sizeof(bool));
	for (int i = 0; i < t->n; i++)
	{
		AttrNumber a = t->attnum[i] - 1;
		Datum value = values[i];
		bool isnull = nulls[i];

		if (how[i] == SET_KEEP)
			continue;
		/* for UPDATE OF triggers: the columns the statement's SET names */
		w.rte->updatedCols =
			bms_add_member(w.rte->updatedCols, t->attnum[i] - FirstLowInvalidHeapAttributeNumber);
		if (how[i] == SET_IF_NULL && !slot->tts_isnull[a])
		{
			/* the statement assigns coalesce(stored, given): its domain judges the stored */
			value = slot->tts_values[a];
			isnull = false;
		}
		if (how[i] == SET_CONCAT)
		{
			/* jsonb || is strict */
			isnull = isnull || slot->tts_isnull[a];
			if (!isnull)
				value = DirectFunctionCall2(jsonb_concat, slot->tts_values[a], value);
		}
		slot->tts_values[a] = checked(t, w.rel, i, value, isnull);
		slot->tts_isnull[a] = isnull;
	}
	ExecStoreVirtualTuple(slot);
	slot->tts_tableOid = RelationGetRelid(w.rel);

	EvalPlanQualInit(&epq, w.estate, NULL, NIL, -1); /* (for BEFORE triggers, never here) */
	AfterTriggerBeginQuery();
	ExecSimpleRelationUpdate(w.rri, w.estate, &epq, stored, slot);
	AfterTriggerEndQuery(w.estate);
	EvalPlanQualEnd(&epq);
	return_row(t, &w, slot, returned);
	end_write(&w);
	return ROW_UPDATED;
}
