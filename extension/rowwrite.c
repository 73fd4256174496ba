/*
 * rowwrite.c: one row inserted as COPY FROM inserts it (the relation's defaults, constraints,
 * indexes and row triggers), without planning or starting a statement for it.
 */
#include "leadintake.h"

#include "access/table.h"
#include "catalog/namespace.h"
#include "catalog/pg_class.h"
#include "commands/trigger.h"
#include "executor/executor.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
#include "rewrite/rewriteHandler.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/syscache.h"

#define MAX_TARGETS 2

/*
 * A table's columns as a caller gives them, mapped once and again after the table (or any
 * function, which a default may call) changes.
 */
struct RowTarget
{
	const char *relname; /* in schema leadintake */
	int n;
	const char *const *columns;
	const Oid *types; /* of the values given: a domain column takes its base type */
	const char *returning;
	Oid relid;   /* whose map this is; InvalidOid: map again */
	bool usable; /* false: the map found a column that only the statement can fill */
	MemoryContext cxt;
	AttrNumber *attnum;
	bool *domain; /* the column is a domain: its constraints are checked here */
	void **domain_cache;
	Expr **defaults; /* per attribute: the planned default of a column not given, or NULL */
	AttrNumber ret_attnum;
};

static RowTarget targets[MAX_TARGETS];
static int ntargets;

static void
forget_relation(Datum arg, Oid relid)
{
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
			  const char *returning)
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
	t->relid = InvalidOid;
	t->cxt = AllocSetContextCreate(TopMemoryContext, "leadintake row target", ALLOCSET_SMALL_SIZES);
	return t;
}

/* The column map of rel; usable stays false where a column's type is not the one given. */
static void
map_target(RowTarget *t, Relation rel)
{
	TupleDesc desc = RelationGetDescr(rel);
	MemoryContext old;

	MemoryContextReset(t->cxt);
	old = MemoryContextSwitchTo(t->cxt);
	t->attnum = palloc(t->n * sizeof(AttrNumber));
	t->domain = palloc0(t->n * sizeof(bool));
	t->domain_cache = palloc0(t->n * sizeof(void *));
	t->defaults = palloc0(desc->natts * sizeof(Expr *));
	t->relid = RelationGetRelid(rel);
	t->usable = true;
	t->ret_attnum = SPI_fnumber(desc, t->returning);
	if (t->ret_attnum <= 0 || !TupleDescAttr(desc, t->ret_attnum - 1)->attbyval)
		t->usable = false;
	for (int i = 0; i < t->n; i++)
	{
		Form_pg_attribute att;

		if ((t->attnum[i] = SPI_fnumber(desc, t->columns[i])) <= 0)
		{
			t->usable = false;
			continue;
		}
		att = TupleDescAttr(desc, t->attnum[i] - 1);
		/* a typmod (varchar(n)) or another type: the statement's cast decides */
		if (att->attgenerated || att->atttypmod != -1 || getBaseType(att->atttypid) != t->types[i])
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
	}
	MemoryContextSwitchTo(old);
}

/*
 * Whether a row inserted here is what the statement would insert: not where row-level
 * security, rules, statement or BEFORE triggers, partitions or column privileges take part.
 */
static bool
insertable(Relation rel)
{
	TriggerDesc *trig = rel->trigdesc;
	Oid relid = RelationGetRelid(rel);

	if (rel->rd_rel->relkind != RELKIND_RELATION || rel->rd_rel->relispartition ||
		rel->rd_rules != NULL || check_enable_rls(relid, InvalidOid, true) == RLS_ENABLED)
		return false;
	if (trig && (trig->trig_insert_before_row || trig->trig_insert_instead_row ||
				 trig->trig_insert_before_statement || trig->trig_insert_after_statement ||
				 trig->trig_insert_new_table))
		return false;
	/* (SELECT: the statement returns a column) */
	return pg_class_aclcheck(relid, GetUserId(), ACL_INSERT) == ACLCHECK_OK &&
		   pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK;
}

/*
 * Inserts one row: column i of the target gets values[i] (a domain's constraints checked,
 * as the cast to it would), every other column its default; *returned gets the stored
 * row's returning column. False, with nothing done, where only the statement can stand for
 * itself (map_target(), insertable()): the caller then runs it.
 */
bool
li_insert_row(RowTarget *t, const Datum *values, const bool *nulls, Datum *returned)
{
	Oid relid = get_relname_relid(t->relname, get_namespace_oid("leadintake", false));
	Relation rel;
	TupleDesc desc;
	EState *estate;
	ResultRelInfo *rri;
	RangeTblEntry *rte;
	TupleTableSlot *slot;
	ExprContext *econtext;
	MemoryContext old;
	bool isnull;

	if (!OidIsValid(relid))
		return false;
	rel = table_open(relid, RowExclusiveLock);
	if (t->relid != relid)
		map_target(t, rel);
	if (!t->usable || !insertable(rel))
	{
		table_close(rel, NoLock);
		return false;
	}
	desc = RelationGetDescr(rel);

	/* as SPI does before each statement: this row is one command, seeing the earlier ones */
	CommandCounterIncrement();
	estate = CreateExecutorState();
	old = MemoryContextSwitchTo(estate->es_query_cxt);
	rte = makeNode(RangeTblEntry);
	rte->rtekind = RTE_RELATION;
	rte->relid = relid;
	rte->relkind = rel->rd_rel->relkind;
	rte->rellockmode = RowExclusiveLock;
	ExecInitRangeTable(estate, list_make1(rte));
	rri = makeNode(ResultRelInfo);
	InitResultRelInfo(rri, rel, 1, NULL, 0);
	/* where the AFTER triggers look for it (as logical replication's apply does) */
	estate->es_opened_result_relations = list_make1(rri);
	estate->es_output_cid = GetCurrentCommandId(true);
	ExecOpenIndices(rri, false);

	slot = ExecInitExtraTupleSlot(estate, desc, &TTSOpsVirtual);
	ExecClearTuple(slot);
	econtext = GetPerTupleExprContext(estate);
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

		if (t->domain[i])
			domain_check(values[i], nulls[i], TupleDescAttr(desc, a)->atttypid, &t->domain_cache[i],
						 t->cxt);
		slot->tts_values[a] = values[i];
		slot->tts_isnull[a] = nulls[i];
	}
	ExecStoreVirtualTuple(slot);

	AfterTriggerBeginQuery();
	ExecSimpleRelationInsert(rri, estate, slot);
	AfterTriggerEndQuery(estate);
	*returned = slot_getattr(slot, t->ret_attnum, &isnull);
	if (isnull)
		*returned = (Datum) 0;

	/* its indexes, and what the triggers opened; rel itself is closed below */
	ExecCloseResultRelations(estate);
	ExecResetTupleTable(estate->es_tupleTable, false);
	MemoryContextSwitchTo(old);
	FreeExecutorState(estate);
	table_close(rel, NoLock);
	return true;
}
